"""Metrics: BLEU (tokenized and sacreBLEU), CIDEr and friends, VQA accuracy."""
