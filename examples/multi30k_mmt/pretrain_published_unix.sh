#!/usr/bin/env bash
# Published protocol, pre-trained start: unix_pretrain at the sizes of train_published_unix.sh (unix_small,
# 128 wide, 2 text + 2 fusion + 4 decoder layers, 256 feed-forward, 4 heads) on two streams in the pair's
# vocabulary: the Task 2 en/de captions with a Flickr8k photo (unix-prepare-task2 captions; captioning,
# image-text contrastive and matching) and Task 1 en-de with its photos (translation with and without the
# image, cross-lingual contrastive). No validation or test photo is in either stream. Then fine-tune with
#   bash train_published_unix.sh DATA SAVE en de --image-features FEATS --image-root IMAGES \
#       --finetune-from-model PRETRAIN_DIR/checkpoint_last.pt
# Usage: bash pretrain_published_unix.sh DATA CAPTIONS FEATS IMAGES SAVE_DIR [MORE FAIRSEQ ARGS...]
#   DATA: unix-prepare-multi30k --protocol tok-bpe output; CAPTIONS: unix-prepare-task2 captions output
#   MAX_UPDATE (2000), SEED (1) from the environment. Resumes from SAVE_DIR/checkpoint_last.pt.
set -euo pipefail
DATA=${1:?data dir}; CAPS=${2:?caption stream dir}; FEATS=${3:?feature cache}; IMAGES=${4:?image root}
SAVE=${5:?save dir}; shift 5
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$SAVE"
unix-benchmark device >> "$SAVE/device.txt"
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" --task unix_pretrain --criterion unix_pretrain \
  --streams "cap:caption:$(cd "$CAPS" && pwd):0.5,ende:translation:.:0.5:en-de" \
  --image-root "$IMAGES" --image-features "$FEATS" \
  --arch unix_small --embed-dim 128 --ffn-dim 256 --heads 4 --text-layers 2 --fusion-layers 2 --decoder-layers 4 \
  --embed-proj-dim 128 --label-smoothing 0.1 --dropout 0.3 --disable-validation \
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 25 --lr 0.005 --lr-scheduler inverse_sqrt \
  --warmup-updates 2000 --warmup-init-lr 1e-07 --max-tokens 4096 --max-update "${MAX_UPDATE:-2000}" \
  --seed "${SEED:-1}" --num-workers 0 --save-dir "$SAVE" --no-epoch-checkpoints \
  --save-interval-updates 250 --keep-interval-updates 1 \
  --log-format simple --log-interval 50 --no-progress-bar "$@"
