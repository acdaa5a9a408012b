#!/usr/bin/env python
"""Score a fairseq-generate output of Multi30K two ways: (a) tokenized BLEU comparable with the
published tables (lowercased, Moses-tokenised like ``tok/``), (b) sacreBLEU on raw text.

Example::

    fairseq-generate ... --post-process sentencepiece > gen.txt
    python scripts/score_mmt.py gen.txt --ref ../shared/data/multi30k/test_2016_flickr.de \\
        --ref-tok ../shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.de --lang de
    # only the sentences that have an image:
    python scripts/score_mmt.py gen.txt ... --subset-image-list data-bin/multi30k/test.images.txt
"""

import argparse
import json
import logging
import sys

from unix.data.tokenizer import read_lines
from unix.metrics.bleu import ordered, read_generate_output, sacre_bleu, tokenized_bleu

logger = logging.getLogger("score_mmt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generate_output", help="fairseq-generate stdout (D- lines, sentencepiece removed)")
    p.add_argument("--ref", required=True, help="raw true-case references, one a line")
    p.add_argument("--ref-tok", default=None, help="lowercased tokenized references (Multi30K tok/)")
    p.add_argument("--lang", required=True, help="target language (Moses tokenizer)")
    p.add_argument("--subset-image-list", default=None,
                   help="score only the lines whose image list entry is not empty")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def score(generate_output, ref, lang, ref_tok=None, subset_image_list=None):
    refs = read_lines(ref)
    hyps = ordered(read_generate_output(generate_output), len(refs), generate_output)
    refs_tok = read_lines(ref_tok) if ref_tok else None
    keep = list(range(len(refs)))
    if subset_image_list:
        names = read_lines(subset_image_list)
        if len(names) != len(refs):
            raise ValueError(f"{subset_image_list}: {len(names)} lines for {len(refs)} references")
        keep = [i for i, n in enumerate(names) if n]
    pick = lambda xs: [xs[i] for i in keep]  # noqa: E731
    out = {"n": len(keep), "sacrebleu": sacre_bleu(pick(hyps), pick(refs))}
    if refs_tok is not None:
        if len(refs_tok) != len(refs):
            raise ValueError(f"{ref_tok}: {len(refs_tok)} lines, {ref}: {len(refs)}")
        out["tokenized_bleu"] = tokenized_bleu(pick(hyps), pick(refs_tok), lang)
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a = parse_args(argv)
    res = score(a.generate_output, a.ref, a.lang, a.ref_tok, a.subset_image_list)
    if a.json:
        sys.stdout.write(json.dumps(res) + "\n")
    else:
        if "tokenized_bleu" in res:
            sys.stdout.write(f"(a) tokenized BLEU-4 (lowercased, Moses-tokenised, comparable with the tables): "
                             f"{res['tokenized_bleu']['bleu']:.2f}  [{res['tokenized_bleu']['detail']}]\n")
        sys.stdout.write(f"(b) sacreBLEU (raw, true case): {res['sacrebleu']['bleu']:.2f}  "
                         f"[{res['sacrebleu']['signature']}]\n")
        sys.stdout.write(f"sentences: {res['n']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
