#!/usr/bin/env bash
# Published protocol (tok-bpe data, see README section 4): unix_small (2 text + 2 fusion encoder
# layers + 4 decoder layers, 128 wide, 256 feed-forward, 4 heads, embeddings shared) with the same
# optimisation recipe as train_published_transformer.sh (published_recipe.sh).
# Usage: bash train_published_unix.sh DATA SAVE_DIR SRC TGT [MORE FAIRSEQ ARGS...]
#   text-only:      ... --no-images
#   with images:    ... --image-features FEATS --image-root IMAGES            (visual tokens)
#   gated fusion:   ... --image-features FEATS --image-root IMAGES --image-fusion gated
#   SEED (default 1), MAX_UPDATE (8000), UPDATE_FREQ (1), PATIENCE (-1) from the environment
#   (published_recipe.sh).
#   CONTINUE_FROM=RUN_DIR: the second stage of back-translation: RUN_DIR's checkpoint_last.pt (weights,
#   optimizer, learning-rate schedule) goes on training on DATA (unix-prepare-task2 bt-finetune: Task 1 in
#   the back-translation data's dictionary) with a fresh data loader up to MAX_UPDATE (e.g. 10000 = 2,000
#   more updates); its epochs count from 1, so the last 10 epoch checkpoints are this stage's.
# Resumes from SAVE_DIR/checkpoint_last.pt when started again.
set -euo pipefail
DATA=${1:?data dir}; SAVE=${2:?save dir}; SRC=${3:?source language}; TGT=${4:?target language}; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/published_recipe.sh"
mkdir -p "$SAVE"
STAGE=()
if [ -n "${CONTINUE_FROM:-}" ] && ! compgen -G "$SAVE/checkpoint[0-9]*.pt" >/dev/null; then
  cp "$CONTINUE_FROM/checkpoint_last.pt" "$SAVE/checkpoint_last.pt"  # again until this stage saves an epoch
  STAGE=(--reset-dataloader)
fi
unix-benchmark device >> "$SAVE/device.txt"
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task unix_mmt -s "$SRC" -t "$TGT" \
  --arch unix_small \
  --embed-dim 128 --ffn-dim 256 --heads 4 --text-layers 2 --fusion-layers 2 --decoder-layers 4 \
  "${RECIPE[@]}" \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar "${STAGE[@]}" "$@"
