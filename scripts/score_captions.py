#!/usr/bin/env python
"""Score generated captions: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D (pycocoevalcap).

Reads a ``fairseq-generate`` output (``D-<id>`` lines) and the references of the same split:
``<split>.refs.txt`` written by ``scripts/prepare_captions.py`` (line ``id + 1`` holds the
``<sep>``-joined references of sample ``id``), or else the ``T-`` lines of the output itself.
Captions are lowercased and PTB-tokenized as in the COCO caption evaluation; scores are printed
x100. English gets every metric; other languages BLEU and CIDEr only, because pycocoevalcap's
METEOR has English resources only. SPICE is skipped (it downloads Stanford CoreNLP models).

Example::

    python scripts/score_captions.py --generate-output runs/cap/gen_test_en.txt \\
        --references data-bin/captions/test_en.refs.txt --json runs/cap/scores_test_en.json
"""

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

from unix.data.captions import CaptionDataError, join_pieces, lang_of_source, parse_generate_output
from unix.metrics.caption import (MissingReferenceError, bleu_statistics, bootstrap_bleu, coco_scores, ptb_tokenize,
                                  ptb_tokenize_groups)
from unix.metrics.references import split_references

logger = logging.getLogger("score_captions")
ORDER = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generate-output", required=True, help="stdout of fairseq-generate (with D- lines)")
    p.add_argument("--references", default=None,
                   help="<split>.refs.txt of prepare_captions.py (default: the T- lines of the output)")
    p.add_argument("--lang", default=None, help="language of the captions (default: from the S- tags)")
    p.add_argument("--allow-partial", action="store_true",
                   help="score only the samples generated, even if the references have more")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="also print a 95%% interval of BLEU-4 from N bootstrap resamples of the images")
    p.add_argument("--bootstrap-baseline", default=None, metavar="GEN",
                   help="with --bootstrap: another fairseq-generate output of the same split; print the "
                        "paired interval of the BLEU-4 difference (this output minus GEN)")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    return p.parse_args(argv)


def read_references(path: str) -> List[List[str]]:
    """One ``<sep>``-joined reference set a line; an empty line is an error naming file and line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"references not found: {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            refs = split_references(line.rstrip("\n"))
            if not refs:
                raise MissingReferenceError(f"{path}:{i}: no reference for sample {i - 1}")
            out.append(refs)
    return out


def hypothesis(entry: Dict[str, str]) -> Optional[str]:
    """The caption of one sample of a generate output (its ``D-`` line, else ``H-``), or None."""
    text = entry.get("D", entry.get("H"))
    return None if text is None else join_pieces(text)


def pair_up(gen: Dict[int, Dict[str, str]], gen_path: str, refs_path: Optional[str],
            allow_partial: bool = False) -> Tuple[List[int], List[str], List[List[str]]]:
    """Match hypotheses with their references by sample id; returns (ids, hyps, refs)."""
    ids = sorted(i for i, v in gen.items() if hypothesis(v) is not None)
    hyps = [hypothesis(gen[i]) for i in ids]
    if refs_path:
        all_refs = read_references(refs_path)
        beyond = [i for i in ids if i >= len(all_refs)]
        if beyond:
            raise CaptionDataError(f"{gen_path}: sample id {beyond[0]} has no line in {refs_path} "
                                   f"({len(all_refs)} lines): references of another split?")
        missing = sorted(set(range(len(all_refs))) - set(ids))
        if missing and not allow_partial:
            raise CaptionDataError(f"{refs_path}:{missing[0] + 1}: no hypothesis for sample {missing[0]} in "
                                   f"{gen_path} ({len(missing)} missing); pass --allow-partial to score the rest")
        refs = [all_refs[i] for i in ids]
    else:
        refs = []
        for i in ids:
            r = split_references(join_pieces(gen[i].get("T", "")))
            if not r:
                raise MissingReferenceError(f"{gen_path}: sample {i} has no T- line (no reference); "
                                            "pass --references")
            refs.append(r)
    return ids, hyps, refs


def infer_lang(gen: Dict[int, Dict[str, str]], gen_path: str) -> str:
    langs = {lang_of_source(v["S"]) for v in gen.values() if "S" in v}
    langs.discard(None)
    if len(langs) != 1:
        raise CaptionDataError(f"{gen_path}: cannot tell the caption language from the S- lines "
                               f"(found {sorted(langs) or 'none'}); pass --lang")
    return langs.pop()


def format_table(scores: Dict[str, object], lang: str, source: str) -> str:
    lines = [f"Captioning scores of {source} (lang {lang}, {scores['images']} images, "
             f"{scores['refs_per_image']:.2f} references per image; pycocoevalcap on lowercased PTB tokens; x100)"]
    for name in ORDER:
        if name in scores:
            lines.append(f"{name:8s} {100.0 * scores[name]:6.2f}")
        elif name in scores["skipped"]:
            lines.append(f"{name:8s} {scores['skipped'][name]}")
    return "\n".join(lines)


def bootstrap_report(args, ids, hyps, refs) -> Dict[str, object]:
    """95% bootstrap interval of BLEU-4 over the images (paired with ``--bootstrap-baseline`` if given)."""
    import numpy as np

    refs_tok = ptb_tokenize_groups(refs)
    stats = bleu_statistics(ptb_tokenize(hyps), refs_tok)
    baseline = None
    if args.bootstrap_baseline:
        other = parse_generate_output(args.bootstrap_baseline)
        hyps_b = [hypothesis(other.get(i, {})) for i in ids]
        if None in hyps_b:
            raise CaptionDataError(f"{args.bootstrap_baseline}: no caption for sample id "
                                   f"{ids[hyps_b.index(None)]} (of {args.generate_output})")
        baseline = bleu_statistics(ptb_tokenize(hyps_b), refs_tok)
    draws = bootstrap_bleu(stats, args.bootstrap, args.bootstrap_seed, baseline=baseline)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    what = f"BLEU-4 minus that of {args.bootstrap_baseline}" if baseline is not None else "BLEU-4"
    text = (f"{what}: 95% bootstrap interval {lo:.2f} to {hi:.2f} ({args.bootstrap} resamples of the "
            f"{len(ids)} images, seed {args.bootstrap_seed})")
    return {"what": what, "low": float(lo), "high": float(hi), "resamples": args.bootstrap,
            "seed": args.bootstrap_seed, "text": text}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    gen = parse_generate_output(args.generate_output)
    lang = args.lang or infer_lang(gen, args.generate_output)
    ids, hyps, refs = pair_up(gen, args.generate_output, args.references, args.allow_partial)
    scores = coco_scores(hyps, refs, lang)
    table = format_table(scores, lang, args.generate_output)
    sys.stdout.write(table + "\n")
    if args.bootstrap > 0:
        scores["bootstrap"] = bootstrap_report(args, ids, hyps, refs)
        sys.stdout.write(scores["bootstrap"]["text"] + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"lang": lang, "generate_output": args.generate_output, "references": args.references,
                       "scale": "pycocoevalcap (multiply by 100 for the table)", **scores}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
