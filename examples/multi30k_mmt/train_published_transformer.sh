#!/usr/bin/env bash
# Published protocol (tok-bpe data, see README section 4): fairseq's own `transformer` at the
# Transformer-tiny size of Revisit-MMT (Wu et al., ACL 2021), text-only, with their recipe.
# Usage: bash train_published_transformer.sh DATA SAVE_DIR [SRC TGT [MORE FAIRSEQ ARGS...]]
#   DATA: unix-prepare-multi30k --protocol tok-bpe output (one pair).
#   SEED, MAX_UPDATE, UPDATE_FREQ, PATIENCE from the environment: see published_recipe.sh, which
#   holds the optimisation recipe this script shares with train_published_unix.sh.
# Resumes from SAVE_DIR/checkpoint_last.pt when started again.
set -euo pipefail
DATA=${1:?data dir}; SAVE=${2:?save dir}; SRC=${3:-en}; TGT=${4:-de}; shift $(( $# < 4 ? $# : 4 ))
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/published_recipe.sh"
mkdir -p "$SAVE"
unix-benchmark device >> "$SAVE/device.txt"
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task translation -s "$SRC" -t "$TGT" \
  --arch transformer --share-all-embeddings \
  --encoder-layers 4 --decoder-layers 4 --encoder-embed-dim 128 --decoder-embed-dim 128 \
  --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 \
  --encoder-attention-heads 4 --decoder-attention-heads 4 \
  "${RECIPE[@]}" \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar "$@"
