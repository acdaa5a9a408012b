"""Score a fairseq-generate output of Multi30K two ways: (a) tokenized BLEU comparable with the
published tables (lowercased, Moses-tokenised like ``tok/``), (b) sacreBLEU on raw text.

A system of the published protocol (``unix-prepare-multi30k --protocol tok-bpe``) already writes
tokenized lowercase text: with ``--tokenized`` its output is scored as it is against ``--ref-tok``,
(a) only, no re-tokenization, no ``--ref`` needed.

Example::

    fairseq-generate ... --post-process subword_nmt > gen.txt     # tok-bpe protocol
    unix-score-mmt gen.txt --tokenized --lang de \\
        --ref-tok ../shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.de
    fairseq-generate ... --post-process sentencepiece > gen.txt   # raw-text protocol
    unix-score-mmt gen.txt --ref ../shared/data/multi30k/test_2016_flickr.de \\
        --ref-tok ../shared/data/multi30k/tok/test_2016_flickr.lc.norm.tok.de --lang de
    # only the sentences that have an image:
    unix-score-mmt gen.txt ... --subset-image-list data-bin/multi30k/test.images.txt
"""

import argparse
import json
import logging
import sys

from unix.metrics.bleu import score

logger = logging.getLogger("score_mmt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generate_output", help="fairseq-generate stdout (D- lines, sentencepiece or BPE removed)")
    p.add_argument("--ref", default=None, help="raw true-case references, one a line (needed without --tokenized)")
    p.add_argument("--ref-tok", default=None, help="lowercased tokenized references (Multi30K tok/)")
    p.add_argument("--lang", default=None, help="target language (Moses tokenizer; not needed with --tokenized)")
    p.add_argument("--subset-image-list", default=None,
                   help="score only the lines whose image list entry is not empty")
    p.add_argument("--tokenized", action="store_true",
                   help="the hypotheses are already tokenized lowercase text (tok-bpe protocol, BPE removed): "
                        "score (a) only, as they are, against --ref-tok")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.tokenized and not a.ref_tok:
        p.error("--tokenized scores against the tokenized references: give --ref-tok")
    if not a.tokenized and not (a.ref and a.lang):
        p.error("give --ref (raw references) and --lang, or --tokenized with --ref-tok")
    return a


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a = parse_args(argv)
    res = score(a.generate_output, a.ref, a.lang, a.ref_tok, a.subset_image_list, a.tokenized)
    if a.json:
        sys.stdout.write(json.dumps(res) + "\n")
    else:
        if "tokenized_bleu" in res:
            sys.stdout.write(f"(a) tokenized BLEU-4 (lowercased, Moses-tokenised, comparable with the tables): "
                             f"{res['tokenized_bleu']['bleu']:.2f}  [{res['tokenized_bleu']['detail']}]\n")
        if "sacrebleu" in res:
            sys.stdout.write(f"(b) sacreBLEU (raw, true case): {res['sacrebleu']['bleu']:.2f}  "
                             f"[{res['sacrebleu']['signature']}]\n")
        sys.stdout.write(f"sentences: {res['n']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
