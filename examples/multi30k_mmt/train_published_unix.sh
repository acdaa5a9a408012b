#!/usr/bin/env bash
# Published protocol (tok-bpe data, see README section 4): unix_small (2 text + 2 fusion encoder
# layers + 4 decoder layers, 128 wide, 256 feed-forward, 4 heads, embeddings shared) with the same
# optimisation recipe as train_published_transformer.sh.
# Usage: bash train_published_unix.sh DATA SAVE_DIR SRC TGT [MORE FAIRSEQ ARGS...]
#   text-only:      ... --no-images
#   with images:    ... --image-features FEATS --image-root IMAGES            (visual tokens)
#   gated fusion:   ... --image-features FEATS --image-root IMAGES --image-fusion gated
#   SEED (default 1), MAX_UPDATE (8000), UPDATE_FREQ (1), PATIENCE (-1) from the environment,
#   as in train_published_transformer.sh.
# Resumes from SAVE_DIR/checkpoint_last.pt when started again.
set -euo pipefail
DATA=${1:?data dir}; SAVE=${2:?save dir}; SRC=${3:?source language}; TGT=${4:?target language}; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$SAVE"
unix-benchmark device >> "$SAVE/device.txt"
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task unix_mmt -s "$SRC" -t "$TGT" \
  --arch unix_small \
  --embed-dim 128 --ffn-dim 256 --heads 4 --text-layers 2 --fusion-layers 2 --decoder-layers 4 \
  --dropout 0.3 --attention-dropout 0.0 --activation-dropout 0.0 \
  --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-08 --weight-decay 0.0 --clip-norm 25 \
  --lr 0.005 --lr-scheduler inverse_sqrt --warmup-updates 2000 --warmup-init-lr 1e-07 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --max-tokens 4096 --update-freq "${UPDATE_FREQ:-1}" --max-update "${MAX_UPDATE:-8000}" \
  --patience "${PATIENCE:--1}" --seed "${SEED:-1}" \
  --keep-last-epochs 10 --num-workers 0 \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar "$@"
