#!/usr/bin/env bash
# unix_small with images (cached EfficientNet-Lite0 features), same optimisation recipe as the
# baseline. Usage: bash train_unix.sh DATA FEATURES IMAGE_ROOT SAVE_DIR [SRC TGT [MORE FAIRSEQ ARGS...]]
# (e.g. --finetune-from-model runs/pretrain/checkpoint_last.pt, see examples/pretraining)
set -euo pipefail
DATA=${1:?data dir}; FEATS=${2:?feature cache}; IMAGES=${3:?image root}; SAVE=${4:?save dir}
SRC=${5:-en}; TGT=${6:-de}; shift $(( $# < 6 ? $# : 6 ))
HERE=$(cd "$(dirname "$0")" && pwd)
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task unix_mmt -s "$SRC" -t "$TGT" --image-features "$FEATS" --image-root "$IMAGES" \
  --arch unix_small \
  --optimizer adam --adam-betas '(0.9, 0.98)' --lr 0.005 --lr-scheduler inverse_sqrt \
  --warmup-updates 2000 --warmup-init-lr 1e-07 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --max-tokens 4096 --max-update "${MAX_UPDATE:-4000}" --seed 1 --keep-last-epochs 10 --num-workers 0 \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar "$@"
