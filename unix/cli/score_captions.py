"""Score generated captions: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D (pycocoevalcap).

Reads a ``fairseq-generate`` output (``D-<id>`` lines) and the references of the same split:
``<split>.refs.txt`` written by ``unix-prepare-captions`` (line ``id + 1`` holds the
``<sep>``-joined references of sample ``id``), or else the ``T-`` lines of the output itself.
Captions are lowercased and PTB-tokenized as in the COCO caption evaluation; scores are printed
x100. English gets every metric; other languages BLEU and CIDEr only, because pycocoevalcap's
METEOR has English resources only. SPICE is skipped (it downloads Stanford CoreNLP models).

Example::

    unix-score-captions --generate-output runs/cap/gen_test_en.txt \\
        --references data-bin/captions/test_en.refs.txt --json runs/cap/scores_test_en.json

    # 95% intervals over the images, and how often a resample scores at or below a published figure
    unix-score-captions --generate-output runs/cap/gen_test_en.txt \\
        --references data-bin/captions/test_en.refs.txt --bootstrap 2000 --bootstrap-threshold BLEU-4=21.3

    # paired: is this output better than another one of the same images?
    unix-score-captions --generate-output runs/cap/gen_test_en.txt \\
        --references data-bin/captions/test_en.refs.txt --bootstrap 2000 --bootstrap-baseline runs/cap/other.txt
"""

import argparse
import json
import logging
import sys
from typing import Dict, List, Sequence

from unix.data.captions import CaptionDataError, lang_of_source, parse_generate_output
from unix.metrics.caption import bleu_statistics, cider_d, coco_scores, ptb_tokenize, ptb_tokenize_groups
from unix.data.caption_outputs import hypothesis, pair_up
from unix.metrics.meteor import MeteorStatistics

logger = logging.getLogger("score_captions")
ORDER = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE")
BOOTSTRAP_METRICS = ("BLEU-4", "METEOR", "CIDEr")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generate-output", required=True, help="stdout of fairseq-generate (with D- lines)")
    p.add_argument("--references", default=None,
                   help="<split>.refs.txt of unix-prepare-captions (default: the T- lines of the output)")
    p.add_argument("--lang", default=None, help="language of the captions (default: from the S- tags)")
    p.add_argument("--allow-partial", action="store_true",
                   help="score only the samples generated, even if the references have more")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="also print 95%% intervals of BLEU-4, METEOR (English) and CIDEr-D from N bootstrap "
                        "resamples of the images (the same draws for every metric)")
    p.add_argument("--bootstrap-baseline", default=None, metavar="GEN",
                   help="with --bootstrap: another fairseq-generate output of the same split; also print the "
                        "paired intervals of the differences (this output minus GEN) and their share <= 0")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--bootstrap-threshold", nargs="+", default=[], metavar="METRIC=VALUE",
                   help="with --bootstrap: also print the share of resamples at or below VALUE (x100 scale), "
                        "e.g. BLEU-4=21.3 METEOR=20.30 (a published score)")
    return p.parse_args(argv)


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


def parse_thresholds(items: Sequence[str]) -> Dict[str, List[float]]:
    """``["BLEU-4=21.3", "METEOR=20.30"]`` -> {"BLEU-4": [21.3], "METEOR": [20.3]} (metrics of BOOTSTRAP_METRICS)."""
    out: Dict[str, List[float]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in BOOTSTRAP_METRICS:
            raise ValueError(f"--bootstrap-threshold {item!r}: expected METRIC=VALUE with METRIC one of "
                             f"{', '.join(BOOTSTRAP_METRICS)}")
        out.setdefault(name, []).append(float(value))
    return out


def bootstrap_report(args, ids, hyps_tok, refs_tok, thresholds: Dict[str, List[float]],
                     meteor=None) -> Dict[str, object]:
    """95% bootstrap intervals of BLEU-4, METEOR (with an open ``MeteorStatistics``, English) and CIDEr-D
    over the images, on the same draws, with the share of resamples at or below each threshold.

    With ``--bootstrap-baseline`` also the paired intervals of the differences (this output minus the
    baseline, the same draws again) and their share at or below 0, under ``"paired"``.
    ``hyps_tok``/``refs_tok`` are PTB-tokenized.
    """
    base_tok = None
    if args.bootstrap_baseline:
        other = parse_generate_output(args.bootstrap_baseline)
        hyps_b = [hypothesis(other.get(i, {})) for i in ids]
        if None in hyps_b:
            raise CaptionDataError(f"{args.bootstrap_baseline}: no caption for sample id "
                                   f"{ids[hyps_b.index(None)]} (of {args.generate_output})")
        base_tok = ptb_tokenize(hyps_b)
    report: Dict[str, object] = {"resamples": args.bootstrap, "seed": args.bootstrap_seed, "images": len(ids),
                                 "baseline": args.bootstrap_baseline}
    lines = []
    own = _statistics(hyps_tok, refs_tok, meteor)  # once: the METEOR statistics cost a jar call
    report["metrics"] = _intervals(_draws(args, own, meteor), thresholds, "", lines)
    if base_tok is not None:
        draws = _draws(args, own, meteor, _statistics(base_tok, refs_tok, meteor))
        report["paired"] = _intervals(draws, {name: [0.0] for name in draws},
                                      f" minus that of {args.bootstrap_baseline}", lines)
    lines.append(f"({args.bootstrap} resamples of the {len(ids)} images, seed {args.bootstrap_seed}; CIDEr-D with "
                 "document frequencies of the whole split)")
    report["text"] = "\n".join(lines)
    return report


def _statistics(hyps_tok, refs_tok, meteor) -> Dict[str, object]:
    """Per-image statistics of one output that the bootstrap resamples: BLEU n-gram counts, METEOR
    statistics (English, ``meteor`` open) and CIDEr-D scores."""
    stats = {"BLEU-4": bleu_statistics(hyps_tok, refs_tok)}
    if meteor is not None:
        stats["METEOR"] = meteor.statistics(hyps_tok, refs_tok)
    stats["CIDEr"] = cider_d(hyps_tok, refs_tok, tokenize=False)[1]
    return stats


def _draws(args, own, meteor, base=None) -> Dict[str, "np.ndarray"]:
    """Bootstrap values of each metric from :func:`_statistics` (differences to ``base`` when given), x100."""
    from unix.metrics.bootstrap import bootstrap_bleu, bootstrap_mean, bootstrap_meteor

    draw = dict(resamples=args.bootstrap, seed=args.bootstrap_seed)
    other = base or {}
    draws = {"BLEU-4": bootstrap_bleu(own["BLEU-4"], **draw, baseline=other.get("BLEU-4"))}
    if "METEOR" in own:
        draws["METEOR"] = bootstrap_meteor(meteor, own["METEOR"], **draw, baseline=other.get("METEOR"))
    draws["CIDEr"] = bootstrap_mean(own["CIDEr"], **draw, baseline=other.get("CIDEr"))
    return draws


def _intervals(draws, thresholds: Dict[str, List[float]], suffix: str, lines: List[str]) -> Dict[str, object]:
    """{metric: 95% interval, shares at or below the thresholds, text}; appends the texts to ``lines``."""
    import numpy as np

    from unix.metrics.bootstrap import interval

    out = {}
    for name, values in draws.items():
        lo, hi = interval(values)
        shares = {str(t): float(np.mean(values <= t)) for t in thresholds.get(name, [])}
        text = f"{name}{suffix}: 95% bootstrap interval {lo:.2f} to {hi:.2f}" + "".join(
            f"; {100 * share:.1f}% of resamples <= {t}" for t, share in shares.items())
        out[name] = {"low": lo, "high": hi, "at_or_below": shares, "text": text}
        lines.append(text)
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    thresholds = parse_thresholds(args.bootstrap_threshold)  # a typo fails before any scoring
    gen = parse_generate_output(args.generate_output)
    lang = args.lang or infer_lang(gen, args.generate_output)
    ids, hyps, refs = pair_up(gen, args.generate_output, args.references, args.allow_partial)
    hyps_tok, refs_tok = ptb_tokenize(hyps), ptb_tokenize_groups(refs)
    meteor = MeteorStatistics() if lang == "en" else None  # one METEOR process for the table and the bootstrap
    try:
        scores = coco_scores(hyps_tok, refs_tok, lang, tokenize=False, meteor_scorer=meteor)
        table = format_table(scores, lang, args.generate_output)
        sys.stdout.write(table + "\n")
        if args.bootstrap > 0:
            scores["bootstrap"] = bootstrap_report(args, ids, hyps_tok, refs_tok, thresholds, meteor)
            sys.stdout.write(scores["bootstrap"]["text"] + "\n")
    finally:
        if meteor is not None:
            meteor.close()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"lang": lang, "generate_output": args.generate_output, "references": args.references,
                       "scale": "pycocoevalcap (multiply by 100 for the table)", **scores}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
