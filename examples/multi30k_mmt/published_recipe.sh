# The optimisation recipe of the published protocol (Revisit-MMT, Wu et al., ACL 2021), shared by
# train_published_transformer.sh and train_published_unix.sh so that the two systems cannot drift
# apart; sourced, not run. Sets RECIPE (fairseq-train options) from SEED (default 1), MAX_UPDATE
# (8000), UPDATE_FREQ (1; 2 = Revisit-MMT's effective batch: they trained on 2 GPUs x 4,096 tokens)
# and PATIENCE (-1 = off; Revisit-MMT used 10) of the environment. Values Revisit-MMT's fairseq fork
# gave by default are written out (e.g. --clip-norm 25; stock fairseq 0.12 does not clip).
RECIPE=(
  --dropout 0.3 --attention-dropout 0.0 --activation-dropout 0.0
  --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-08 --weight-decay 0.0 --clip-norm 25
  --lr 0.005 --lr-scheduler inverse_sqrt --warmup-updates 2000 --warmup-init-lr 1e-07
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1
  --max-tokens 4096 --update-freq "${UPDATE_FREQ:-1}" --max-update "${MAX_UPDATE:-8000}"
  --patience "${PATIENCE:--1}" --seed "${SEED:-1}"
  --keep-last-epochs 10 --num-workers 0
)
