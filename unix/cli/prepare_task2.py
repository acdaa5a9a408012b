"""Multi30K Task 2 captions in the published protocol: back-translation data and a caption stream.

Multi30K Task 2 has five independent English and five independent German captions per photo
(``captions/train.<k>.<lang>``, the Task 1 training photos; no validation or test photo, which is
checked, not assumed). Turned into the published protocol's text (:func:`unix.data.bpe.
multi30k_tokenize`, the pair's ``bpe.codes`` and dictionary), they are extra in-domain data; rows
trained on them are *with extra data*, not constrained. Four steps:

1. ``bt-source``: the German captions as ``mono.bpe.de`` + ``mono.images.txt``, binarized as the
   ``test`` split of a source-only De->En data directory, to back-translate::

       unix-prepare-task2 bt-source --data ../shared/data --pair-data data-bin/multi30k_tok_ende \
           --lang de --out data-bin/bt_de
       fairseq-generate data-bin/bt_de --user-dir fairseq_plugins --task translation -s de -t en --gen-subset test \
           --path checkpoints/pub_transformer_deen_s1/avg10.pt --beam 5 --max-tokens 8192 \
           --required-batch-size-multiple 1 > data-bin/bt_de/generate.txt

2. ``bt-assemble``: Task 1 train (``--real-copies`` times) + the synthetic pairs (the hypotheses
   de-BPE'd and BPE'd again with the pair's codes, so that their segmentation is the one a test
   sentence gets; each source starts with the tag ``<BT>``, tagged back-translation, Caswell et al.
   2019, unless ``--no-tag-synthetic``), binarized with the pair's dictionary (+ the tag); valid, test, ``dict.txt``, ``bpe.codes``
   and the image lists of ``--pair-data`` copied, so the output trains with the same scripts and
   scores on the same test set::

       unix-prepare-task2 bt-assemble --pair-data data-bin/multi30k_tok_ende \
           --bt-data data-bin/bt_de --generated data-bin/bt_de/generate.txt --out data-bin/multi30k_tok_ende_bt

3. ``bt-finetune``: Task 1 alone (train, valid, test and image lists of ``--pair-data``) with the
   dictionaries of a tagged ``bt-assemble`` output, whose last symbol is the tag: a model trained on
   the back-translated data goes on training on the real pairs (``CONTINUE_FROM`` of
   ``examples/multi30k_mmt/train_published_unix.sh``: the second stage of back-translation)::

       unix-prepare-task2 bt-finetune --pair-data data-bin/multi30k_tok_ende \
           --bt-assembled data-bin/multi30k_tok_ende_bt --out data-bin/multi30k_tok_ende_btft

4. ``captions``: the English and German captions of the photos available in Flickr8k as a
   ``tag-cap`` caption stream of ``unix_pretrain`` (source = the language tag, target = the
   caption; ``train.images.txt``), in the pair's vocabulary, so that a model pre-trained on them
   fine-tunes on ``--pair-data`` with ``--finetune-from-model``::

       unix-prepare-task2 captions --pair-data data-bin/multi30k_tok_ende --out data-bin/task2_captions_ende
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import tempfile
from typing import List, Tuple

from unix.data.bpe import load_bpe, multi30k_tokenize, remove_bpe
from unix.data.caption_sources import binarize as binarize_captions
from unix.data.caption_sources import write_rows
from unix.data.captions import multi30k_dir
from unix.data.generate_output import read_generate_output
from unix.data.images import flickr8k_index, multi30k_to_flickr8k
from unix.data.tokenizer import lang_tag, read_lines

logger = logging.getLogger("unix-prepare-task2")

MANIFEST = "manifest.json"
# first source token of every synthetic pair (tagged back-translation, Caswell et al. 2019): tells the model
# which sources are machine output; a raw sentence never becomes it (Moses escapes "<" and ">")
BT_TAG = "<BT>"
EVAL_LISTS = ("val.txt", "test_2016_flickr.txt", "test_2017_flickr.txt", "test_2017_mscoco.txt", "test_2018_flickr.txt")


def eval_photos(m30k: str) -> set:
    """Photos of every Multi30K validation and test list present (none of them may be trained on)."""
    out = set()
    for name in EVAL_LISTS:
        path = os.path.join(m30k, "image_splits", name)
        if os.path.exists(path):
            out |= set(read_lines(path))
    return out


def task2_captions(data: str, lang: str) -> Tuple[List[str], List[str]]:
    """``(captions, Multi30K photo names)`` of Task 2 train in ``lang``: caption k of every photo, k = 1..5.

    Captions of a validation or test photo are left out (Task 2 train has none; checked, not assumed);
    empty captions are left out and counted in the log.

    Raises:
        FileNotFoundError: a missing captions file, naming it.
        ValueError: a captions file not aligned with ``captions/train_images.txt``, naming both.
    """
    m30k = multi30k_dir(data)
    images_path = os.path.join(m30k, "captions", "train_images.txt")
    if not os.path.exists(images_path):
        raise FileNotFoundError(f"missing Multi30K Task 2 image list {images_path}")
    images = read_lines(images_path)
    held = eval_photos(m30k)
    caps, names, empty, dropped = [], [], 0, 0
    for k in range(1, 6):
        path = os.path.join(m30k, "captions", f"train.{k}.{lang}")
        if not os.path.exists(path):
            raise FileNotFoundError(f"missing Multi30K Task 2 captions {path}")
        lines = read_lines(path)
        if len(lines) != len(images):
            raise ValueError(f"{path}: {len(lines)} lines, {images_path}: {len(images)}: not aligned")
        for text, name in zip(lines, images):
            if not text.strip():
                empty += 1
            elif name in held:
                dropped += 1
            else:
                caps.append(text)
                names.append(name)
    logger.info("Task 2 train %s: %d captions (%d empty and %d of evaluation photos left out)",
                lang, len(caps), empty, dropped)
    return caps, names


def pair_manifest(pair_data: str) -> dict:
    path = os.path.join(pair_data, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; --pair-data is the output of unix-prepare-multi30k --protocol tok-bpe")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("protocol") != "tok-bpe":
        raise ValueError(f"{path}: protocol {manifest.get('protocol')!r}, expected tok-bpe")
    return manifest


def write_lines(path: str, lines: List[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def copy_splits(pair_data: str, out: str, src: str, tgt: str, splits) -> None:
    """Copy the binarized ``splits`` of both languages and their image lists from ``pair_data`` to ``out``."""
    names = [f"{split}.{src}-{tgt}.{lang}.{ext}" for split in splits for lang in (src, tgt) for ext in ("bin", "idx")]
    for name in names + [f"{split}.images.txt" for split in splits]:
        shutil.copyfile(os.path.join(pair_data, name), os.path.join(out, name))


def binarize(args: List[str]) -> None:
    subprocess.run(["fairseq-preprocess"] + args, check=True, stdout=subprocess.DEVNULL)


def prepare_source(args) -> dict:
    manifest = pair_manifest(args.pair_data)
    src, tgt = manifest["pair"].split("-")
    if args.lang != tgt:
        raise ValueError(f"--lang {args.lang}: back-translation of {manifest['pair']} data needs the target "
                         f"language's captions ({tgt})")
    caps, names = task2_captions(args.data, args.lang)
    bpe = load_bpe(os.path.join(args.pair_data, manifest["bpe"]["codes"]))
    os.makedirs(args.out, exist_ok=True)
    pieces = [bpe.process_line(multi30k_tokenize(c, args.lang)).strip() for c in caps]
    write_lines(os.path.join(args.out, f"mono.bpe.{tgt}"), pieces)
    index = flickr8k_index(os.path.join(args.data, "flickr8k", "images"))
    write_lines(os.path.join(args.out, "mono.images.txt"), [m or "" for m in multi30k_to_flickr8k(names, index)])
    plain = os.path.join(args.pair_data, f"dict.{tgt}.txt")
    for lang in (src, tgt):
        shutil.copyfile(plain, os.path.join(args.out, f"dict.{lang}.txt"))
    binarize(["--only-source", "--source-lang", tgt, "--target-lang", src, "--srcdict", plain,
              "--testpref", os.path.join(args.out, "mono.bpe"), "--destdir", args.out, "--workers", str(args.workers)])
    return {"kind": "back-translation source", "pair": manifest["pair"], "lang": tgt, "sentences": len(pieces),
            "source": f"captions/train.{{1..5}}.{tgt}", "pair_data": os.path.abspath(args.pair_data),
            "generate": f"fairseq-generate {args.out} --user-dir fairseq_plugins --task translation -s {tgt} -t {src} "
                        f"--gen-subset test --path DE_EN_CHECKPOINT --beam 5 --max-tokens 8192 "
                        f"--required-batch-size-multiple 1 > {args.out}/generate.txt"}


def same_source(printed: str, ours: str) -> bool:
    """fairseq-generate's ``S-`` text is our source line, but for pieces it printed as ``<unk>``."""
    a, b = printed.split(), ours.split()
    return len(a) == len(b) and all(x == y or x == "<unk>" for x, y in zip(a, b))


def synthetic_sources(generated: str, sources: List[str], bpe) -> List[str]:
    """The first hypothesis for each line of ``sources`` in ``generated``, re-segmented with ``bpe``.

    Raises:
        ValueError: naming the file: sentences without a hypothesis, ids beyond ``sources`` or an
            ``S-`` line that is not the source line of its id (the output of another source file).
    """
    n = len(sources)
    samples = read_generate_output(generated)
    missing = [i for i in range(n) if i not in samples or not samples[i].hyps]
    extra = [i for i in samples if i >= n]
    if missing or extra:
        raise ValueError(f"{generated}: {len(missing)} of {n} sentences have no hypothesis (first id "
                         f"{missing[:1]}) and {len(extra)} ids are beyond them: not the output for this source")
    for i in range(n):
        printed = samples[i].source
        if printed is not None and not same_source(printed, sources[i]):
            raise ValueError(f"{generated}: S-{i} is {printed[:60]!r}, line {i + 1} of the source is "
                             f"{sources[i][:60]!r}: not the output for this source")
    out = []
    for i in range(n):
        words = remove_bpe(samples[i].hyps[0].text)
        out.append(bpe.process_line(words).strip())
    return out


def assemble(args) -> dict:
    manifest = pair_manifest(args.pair_data)
    src, tgt = manifest["pair"].split("-")
    codes = os.path.join(args.pair_data, manifest["bpe"]["codes"])
    bpe = load_bpe(codes)
    targets = read_lines(os.path.join(args.bt_data, f"mono.bpe.{tgt}"))
    images = read_lines(os.path.join(args.bt_data, "mono.images.txt"))
    if len(images) != len(targets):
        raise ValueError(f"{args.bt_data}/mono.images.txt: {len(images)} lines, mono.bpe.{tgt}: {len(targets)}")
    sources = synthetic_sources(args.generated, targets, bpe)
    empty = sum(1 for s in sources if not s)
    keep = [i for i, s in enumerate(sources) if s]
    tok_dir = os.path.join(args.data, "multi30k", "tok")
    real = {}
    for lang in (src, tgt):
        path = os.path.join(tok_dir, f"train.lc.norm.tok.{lang}")
        real[lang] = [bpe.process_line(line).strip() for line in read_lines(path)]
    real_images = read_lines(os.path.join(args.pair_data, "train.images.txt"))
    if not len(real[src]) == len(real[tgt]) == len(real_images):
        raise ValueError(f"{tok_dir}: train.{src} / train.{tgt} / {args.pair_data}/train.images.txt not aligned")
    os.makedirs(args.out, exist_ok=True)
    tag = BT_TAG + " " if args.tag_synthetic else ""
    with tempfile.TemporaryDirectory() as tmp:
        write_lines(os.path.join(tmp, f"train.{src}"), real[src] * args.real_copies + [tag + sources[i] for i in keep])
        write_lines(os.path.join(tmp, f"train.{tgt}"), real[tgt] * args.real_copies + [targets[i] for i in keep])
        write_lines(os.path.join(args.out, "train.images.txt"), real_images * args.real_copies + [images[i] for i in keep])
        dictionary, symbols = os.path.join(args.pair_data, f"dict.{src}.txt"), None
        if tag:  # one dictionary for both tasks: the unix one (language tags at the end) + the tag after it
            dictionary = os.path.join(args.out, "dict.txt")
            with open(os.path.join(args.pair_data, "dict.txt"), encoding="utf-8") as f:
                symbols = [line for line in f.read().split("\n") if line] + [f"{BT_TAG} 1"]
            write_lines(dictionary, symbols)
        binarize(["--source-lang", src, "--target-lang", tgt, "--srcdict", dictionary, "--tgtdict", dictionary,
                  "--trainpref", os.path.join(tmp, "train"), "--destdir", args.out, "--workers", str(args.workers)])
    copy_splits(args.pair_data, args.out, src, tgt, ("valid", "test"))
    shutil.copyfile(os.path.join(args.pair_data, manifest["bpe"]["codes"]), os.path.join(args.out, manifest["bpe"]["codes"]))
    for name in (f"dict.{src}.txt", f"dict.{tgt}.txt") if tag else ("dict.txt", f"dict.{src}.txt", f"dict.{tgt}.txt"):
        # tagged: dict.<lang>.txt = the dict.txt written above (language tags + the tag), the same symbols
        shutil.copyfile(os.path.join(args.out if tag else args.pair_data, "dict.txt" if tag else name),
                        os.path.join(args.out, name))
    n_real = len(real[src]) * args.real_copies
    logger.info("train: %d real pairs (%d x %d) + %d back-translated (%d empty hypotheses left out)",
                n_real, len(real[src]), args.real_copies, len(keep), empty)
    out = dict(manifest)
    out["lines"] = dict(manifest.get("lines") or {}, train=n_real + len(keep))
    pair_sources = manifest.get("sources") or {}
    real_files = {lang: pair_sources.get(f"train.{lang}", f"multi30k/tok/train.lc.norm.tok.{lang}")
                  for lang in (src, tgt)}
    out["sources"] = dict(pair_sources, **{f"train.{lang}": f"{args.real_copies} x {path} + the {len(keep)} pairs of "
                                           f"extra_data" for lang, path in real_files.items()})
    if symbols:  # dict.txt gained the tag
        out["dictionary"] = dict(manifest.get("dictionary") or {}, symbols=len(symbols), synthetic_tag=BT_TAG)
    out["extra_data"] = {"kind": "back-translation", "constrained": False, "real_pairs": len(real[src]),
                         "real_copies": args.real_copies, "synthetic_pairs": len(keep), "empty_left_out": empty,
                         "synthetic_tag": BT_TAG if tag else None,
                         "synthetic_source": os.path.abspath(args.generated),
                         "synthetic_target": f"Multi30K Task 2 captions/train.{{1..5}}.{tgt} (no evaluation photo)",
                         "images": sum(1 for i in keep if images[i])}
    return out


def finetune_data(args) -> dict:
    """Task 1 of ``--pair-data`` with the dictionaries of the tagged ``bt-assemble`` output ``--bt-assembled``.

    The pair's symbols keep their indices there (the tag comes last), so the binarized files are copied as
    they are. Raises ValueError (naming the manifest) for another pair, other BPE codes, or untagged data,
    whose dictionaries are the pair's: fine-tune on ``--pair-data`` itself then.
    """
    manifest = pair_manifest(args.pair_data)
    bt_manifest = pair_manifest(args.bt_assembled)
    bt_path = os.path.join(args.bt_assembled, MANIFEST)
    extra = bt_manifest.get("extra_data") or {}
    if extra.get("kind") != "back-translation" or bt_manifest.get("pair") != manifest["pair"]:
        raise ValueError(f"{bt_path}: not a bt-assemble output of {manifest['pair']} "
                         f"(pair {bt_manifest.get('pair')!r}, extra data {extra.get('kind')!r})")
    if not extra.get("synthetic_tag"):
        raise ValueError(f"{bt_path}: untagged back-translation has the pair's dictionaries; fine-tune on "
                         f"{args.pair_data} itself")
    codes = manifest["bpe"]["codes"]
    with open(os.path.join(args.pair_data, codes), "rb") as a, open(os.path.join(args.bt_assembled, codes), "rb") as b:
        if a.read() != b.read():
            raise ValueError(f"{bt_path}: its {codes} is not the one of {args.pair_data}")
    src, tgt = manifest["pair"].split("-")
    os.makedirs(args.out, exist_ok=True)
    copy_splits(args.pair_data, args.out, src, tgt, ("train", "valid", "test"))
    for name in ("dict.txt", f"dict.{src}.txt", f"dict.{tgt}.txt", codes):
        shutil.copyfile(os.path.join(args.bt_assembled, name), os.path.join(args.out, name))
    out = dict(manifest, dictionary=bt_manifest["dictionary"])
    out["finetune_of"] = {"data": os.path.abspath(args.bt_assembled), "extra_data": extra,
                          "note": "Task 1 pairs only; a model fine-tuned here from one trained on that data "
                                  "has seen its extra data (not constrained)"}
    logger.info("Task 1 %s with the dictionaries of %s (%d symbols)", manifest["pair"], args.bt_assembled,
                bt_manifest["dictionary"]["symbols"])
    return out


def caption_stream(args) -> dict:
    """Task 2 captions (``args.langs``) of the photos available in Flickr8k as a ``tag-cap`` train split."""
    manifest = pair_manifest(args.pair_data)
    bpe = load_bpe(os.path.join(args.pair_data, manifest["bpe"]["codes"]))
    dict_path = os.path.join(args.pair_data, "dict.txt")
    with open(dict_path, encoding="utf-8") as f:
        symbols = {line.split(" ")[0] for line in f}
    index = flickr8k_index(os.path.join(args.data, "flickr8k", "images"))
    rows, counts = [], {}  # (tag, caption pieces, photo): the rows of unix-prepare-captions
    for lang in args.langs:
        if lang_tag(lang) not in symbols:
            raise ValueError(f"{dict_path}: no language tag {lang_tag(lang)} for --langs {lang}")
        texts, names = task2_captions(args.data, lang)
        kept = [(t, m) for t, m in zip(texts, multi30k_to_flickr8k(names, index)) if m]
        rows += [(lang_tag(lang), bpe.process_line(multi30k_tokenize(t, lang)).strip(), m) for t, m in kept]
        counts[lang] = {"captions": len(kept), "photos": len({m for _, m in kept}),
                        "without_flickr8k_photo": len(texts) - len(kept)}
        logger.info("%s: %d captions of %d photos (%d captions have no Flickr8k photo)", lang, len(kept),
                    counts[lang]["photos"], counts[lang]["without_flickr8k_photo"])
    os.makedirs(args.out, exist_ok=True)
    shutil.copyfile(dict_path, os.path.join(args.out, "dict.txt"))
    with tempfile.TemporaryDirectory() as tmp:
        write_rows(tmp, args.out, "train", rows)
        binarize_captions(tmp, args.out, ["train"], args.workers)
    return {"kind": "caption stream (unix_pretrain)", "pair": manifest["pair"], "langs": list(args.langs),
            "splits": {"train": counts}, "source": "Multi30K Task 2 captions/train.{1..5}.<lang> (no evaluation photo)",
            "pair_data": os.path.abspath(args.pair_data), "preprocess": manifest.get("preprocess"),
            "image_root": os.path.abspath(os.path.join(args.data, "flickr8k", "images"))}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("bt-source", help="the Task 2 captions to back-translate, binarized")
    s.add_argument("--lang", default="de", help="language of the captions (the pair's target language)")
    a = sub.add_parser("bt-assemble", help="Task 1 train + the back-translated pairs, binarized")
    a.add_argument("--bt-data", required=True, help="the output of the bt-source step")
    a.add_argument("--generated", required=True, help="fairseq-generate output on the bt-source step's test split")
    a.add_argument("--real-copies", type=int, default=1, help="times the Task 1 pairs are repeated (up-sampling)")
    a.add_argument("--no-tag-synthetic", dest="tag_synthetic", action="store_false",
                   help=f"do not start the synthetic sources with {BT_TAG} (tagged back-translation is the default; "
                        "the dictionaries then have the tag as their last symbol)")
    f = sub.add_parser("bt-finetune", help="Task 1 alone with a tagged bt-assemble output's dictionaries")
    f.add_argument("--bt-assembled", required=True, help="the output of the bt-assemble step (tagged)")
    c = sub.add_parser("captions", help="a tag-cap caption stream of the captions with a Flickr8k photo")
    c.add_argument("--langs", nargs="+", default=["en", "de"], help="caption languages")
    for q in (s, a, f, c):
        q.add_argument("--data", default="../shared/data", help="root holding multi30k/ and flickr8k/")
        q.add_argument("--pair-data", required=True, help="unix-prepare-multi30k --protocol tok-bpe output of the pair")
        q.add_argument("--out", required=True, help="output directory")
        q.add_argument("--workers", type=int, default=2)
    return p.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    try:
        manifest = {"bt-source": prepare_source, "bt-assemble": assemble, "bt-finetune": finetune_data,
                    "captions": caption_stream}[args.step](args)
    except (FileNotFoundError, ValueError) as e:
        logger.error("%s", e)
        return 2
    with open(os.path.join(args.out, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    logger.info("done: %s", args.out)
    if args.step == "bt-source":
        logger.info("next: %s", manifest["generate"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
