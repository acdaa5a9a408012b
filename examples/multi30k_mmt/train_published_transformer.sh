#!/usr/bin/env bash
# Published protocol (tok-bpe data, see README section 4): fairseq's own `transformer` at the
# Transformer-tiny size of Revisit-MMT (Wu et al., ACL 2021), text-only, with their recipe.
# Usage: bash train_published_transformer.sh DATA SAVE_DIR [SRC TGT [MORE FAIRSEQ ARGS...]]
#   DATA: unix-prepare-multi30k --protocol tok-bpe output (one pair).
#   SEED (default 1), MAX_UPDATE (8000), UPDATE_FREQ (1; 2 = Revisit-MMT's effective batch: they
#   trained on 2 GPUs x 4,096 tokens), PATIENCE (-1 = off; Revisit-MMT used 10) from the environment.
# Every other value is written out: those of Revisit-MMT's fairseq fork when it gave none (e.g.
# --clip-norm 25, the fork's default; stock fairseq 0.12 does not clip).
# Resumes from SAVE_DIR/checkpoint_last.pt when started again.
set -euo pipefail
DATA=${1:?data dir}; SAVE=${2:?save dir}; SRC=${3:-en}; TGT=${4:-de}; shift $(( $# < 4 ? $# : 4 ))
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$SAVE"
unix-benchmark device >> "$SAVE/device.txt"
fairseq-train "$DATA" --user-dir "$HERE/../../fairseq_plugins" \
  --task translation -s "$SRC" -t "$TGT" \
  --arch transformer --share-all-embeddings \
  --encoder-layers 4 --decoder-layers 4 --encoder-embed-dim 128 --decoder-embed-dim 128 \
  --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 \
  --encoder-attention-heads 4 --decoder-attention-heads 4 \
  --dropout 0.3 --attention-dropout 0.0 --activation-dropout 0.0 \
  --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-08 --weight-decay 0.0 --clip-norm 25 \
  --lr 0.005 --lr-scheduler inverse_sqrt --warmup-updates 2000 --warmup-init-lr 1e-07 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --max-tokens 4096 --update-freq "${UPDATE_FREQ:-1}" --max-update "${MAX_UPDATE:-8000}" \
  --patience "${PATIENCE:--1}" --seed "${SEED:-1}" \
  --keep-last-epochs 10 --num-workers 0 \
  --save-dir "$SAVE" --log-format simple --log-interval 50 --no-progress-bar "$@"
