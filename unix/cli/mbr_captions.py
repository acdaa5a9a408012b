"""Rerank the n-best captions of a ``fairseq-generate`` output by minimum Bayes risk (MBR).

``fairseq-generate --task unix_caption --mbr-utility bleu`` reranks while decoding; this script
does the same to a saved ``--nbest K`` output (``H-``/``D-``/``P-`` lines of every hypothesis),
so utilities, weights and candidate counts can be compared without decoding again. For each
sample it keeps the hypothesis of highest expected utility against the sample's hypotheses
(:func:`unix.generation.mbr.mbr_order`; evidence weights ``softmax(alpha x log p)``, ``log p``
the sum of the hypothesis' ``P-`` scores, which fairseq-generate prints in base 2 and this script
turns back into natural logarithms, as the task's ``--mbr-utility`` sees them) and writes a
generate output with that hypothesis only, which ``unix-score-captions`` reads.

Example::

    fairseq-generate data-bin/captions --user-dir fairseq_plugins --task unix_caption --path M.pt \\
        --gen-subset valid_en --beam 10 --nbest 10 --post-process sentencepiece ... > nbest.txt
    unix-mbr-captions --generate-output nbest.txt --utility bleu --alpha 1 --out mbr.txt
    unix-score-captions --generate-output mbr.txt --references data-bin/captions/valid_en.refs.txt
"""

import argparse
import logging
import math
import sys
from typing import Dict, List, Optional

from unix.data.captions import CaptionDataError, read_caption_samples
from unix.generation.mbr import UTILITIES, mbr_order, words
from unix.data.caption_outputs import hypothesis

logger = logging.getLogger("mbr_captions")
LN2 = math.log(2.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generate-output", required=True, help="fairseq-generate --nbest K output (with P- lines)")
    p.add_argument("--utility", default="bleu", choices=sorted(UTILITIES))
    p.add_argument("--alpha", type=float, default=1.0,
                   help="scale of the log-probabilities in the evidence weights (0: uniform)")
    p.add_argument("--weights", default="logprob", choices=["logprob", "score"],
                   help="what alpha scales: the total log-probability (sum of the P- scores) or fairseq's "
                        "length-normalised score of the H- line")
    p.add_argument("--candidates", type=int, default=0, metavar="K",
                   help="use only the first K hypotheses of each sample (default: all)")
    p.add_argument("--evidence", default=None, metavar="GEN",
                   help="another generate output of the same split (e.g. fairseq-generate --sampling --beam M "
                        "--nbest M): its hypotheses are the evidence, weighted by --evidence-alpha; default: "
                        "the candidates themselves")
    p.add_argument("--evidence-alpha", type=float, default=0.0,
                   help="with --evidence: scale of the evidence log-probabilities (0, uniform, for samples)")
    p.add_argument("--out", required=True, help="generate output with the chosen hypothesis of each sample")
    return p.parse_args(argv)


def read_nbest(path: str) -> Dict[int, Dict[str, object]]:
    """Sample id -> ``{"S": str, "T": str, "hyps": [{"H", "D", "score", "logprob", "P"}, ...]}`` in file order.

    ``logprob`` is the hypothesis' total log-probability in nats; ``score`` and ``P`` are the
    line's text (base 2, as fairseq-generate prints them). Read by
    :func:`unix.data.generate_output.read_generate_output`.

    Raises:
        CaptionDataError: naming file and line for a malformed line, a ``P-`` line without its
            hypothesis, or a hypothesis without ``P-`` scores.
    """
    samples = read_caption_samples(path)
    out: Dict[int, Dict[str, object]] = {}
    for sid, sample in samples.items():
        entry: Dict[str, object] = {"hyps": []}
        if sample.source is not None:
            entry["S"] = sample.source
        if sample.target is not None:
            entry["T"] = sample.target
        for h in sample.hyps:
            if h.positional is None:
                raise CaptionDataError(f"{path}:{h.line}: H-{sid} has no P- line (positional scores); "
                                       "was it written by fairseq-generate without --quiet?")
            hyp = {"H": h.text, "score": h.score, "line": h.line, "P": h.positional,
                   "logprob": sum(float(x) for x in h.positional.split()) * LN2}  # fairseq prints base 2
            if h.detok is not None:
                hyp["D"] = h.detok
            entry["hyps"].append(hyp)  # type: ignore[union-attr]
        out[sid] = entry
    return out


def _texts(hyps) -> List[List[str]]:
    return [words(hypothesis(h)) for h in hyps]


def rerank(samples: Dict[int, Dict[str, object]], utility: str, alpha: float,
           candidates: int = 0, weights: str = "logprob",
           evidence: Optional[Dict[int, Dict[str, object]]] = None, evidence_alpha: float = 0.0,
           evidence_path: Optional[str] = None) -> Dict[int, int]:
    """Sample id -> index of its MBR hypothesis (among the first ``candidates``; 0 = all).

    ``weights``: ``"logprob"`` (total log-probability) or ``"score"`` (fairseq's normalised score).
    ``evidence``: :func:`read_nbest` of another output (read from ``evidence_path``); a sample's
    hypotheses there are its evidence.
    """
    chosen = {}
    for sid, v in samples.items():
        hyps = v["hyps"][:candidates] if candidates > 0 else v["hyps"]
        if not hyps:
            continue
        log_w = [h["logprob"] if weights == "logprob" else float(h["score"]) * LN2 for h in hyps]
        ev = ev_lp = None
        if evidence is not None:
            if not evidence.get(sid, {}).get("hyps"):
                raise CaptionDataError(f"{evidence_path}: no hypothesis for sample id {sid}")
            ev = _texts(evidence[sid]["hyps"])
            ev_lp = [h["logprob"] for h in evidence[sid]["hyps"]]
        order, _ = mbr_order(_texts(hyps), log_w, utility, evidence_alpha if ev is not None else alpha,
                             evidence=ev, evidence_logprobs=ev_lp)
        chosen[sid] = order[0]
    return chosen


def write_output(samples: Dict[int, Dict[str, object]], chosen: Dict[int, int], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for sid in sorted(chosen):
            v = samples[sid]
            h = v["hyps"][chosen[sid]]
            for kind in "ST":
                if kind in v:
                    f.write(f"{kind}-{sid}\t{v[kind]}\n")
            f.write(f"H-{sid}\t{h['score']}\t{h['H']}\n")
            if "D" in h:
                f.write(f"D-{sid}\t{h['score']}\t{h['D']}\n")
            f.write(f"P-{sid}\t{h['P']}\n")


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = parse_args(argv)
    samples = read_nbest(args.generate_output)
    evidence = read_nbest(args.evidence) if args.evidence else None
    chosen = rerank(samples, args.utility, args.alpha, args.candidates, args.weights, evidence,
                    args.evidence_alpha, args.evidence)
    counts = [len(v["hyps"]) for v in samples.values()]
    moved = sum(1 for i in chosen.values() if i != 0)
    weighting = (f"evidence {args.evidence}, alpha {args.evidence_alpha:g}" if args.evidence
                 else f"{args.weights} alpha {args.alpha:g}")
    logger.info("%d samples, %d-%d hypotheses each; MBR (%s, %s) chose another than the first for %d",
                len(chosen), min(counts), max(counts), args.utility, weighting, moved)
    write_output(samples, chosen, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
