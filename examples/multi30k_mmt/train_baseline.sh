#!/usr/bin/env bash
# Text-only baseline: fairseq's own `transformer`, tiny size (4+4 layers, 128 dim), the recipe of
# Revisit-MMT (Wu et al., ACL 2021). Usage: bash train_baseline.sh DATA SAVE_DIR [SRC TGT]
set -euo pipefail
DATA=${1:?data dir}; SAVE=${2:?save dir}; SRC=${3:-en}; TGT=${4:-de}
HERE=$(cd "$(dirname "$0")" && pwd)
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task translation -s "$SRC" -t "$TGT" \
  --arch transformer --share-all-embeddings \
  --encoder-layers 4 --decoder-layers 4 --encoder-embed-dim 128 --decoder-embed-dim 128 \
  --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 \
  --encoder-attention-heads 4 --decoder-attention-heads 4 \
  --dropout 0.3 --optimizer adam --adam-betas '(0.9, 0.98)' --lr 0.005 --lr-scheduler inverse_sqrt \
  --warmup-updates 2000 --warmup-init-lr 1e-07 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --max-tokens 4096 --max-update "${MAX_UPDATE:-4000}" --seed 1 --keep-last-epochs 10 --num-workers 0 \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar
