"""Validation by generation shared by the unix image tasks (fairseq_plugins/tasks/validation.py):
``--eval-metric`` and the deprecated per-task flags that map onto it."""

import logging
import os

import pytest
import torch

USER_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "fairseq_plugins")


def setup(bin_dir, task, *args):
    """(task, cfg) as fairseq-train builds them."""
    import fairseq_plugins  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    ns = options.parse_args_and_arch(parser, [str(bin_dir), "--user-dir", USER_DIR, "--task", task,
                                              "--arch", "unix_tiny", "--cpu", *map(str, args)])
    cfg = convert_namespace_to_omegaconf(ns)
    return tasks.setup_task(cfg.task), cfg


MMT = ("unix_mmt", "-s", "en", "-t", "de")


def test_deprecated_flags_map_onto_eval_metric(tiny_corpus, caplog):
    from fairseq_plugins.tasks.validation import resolve_eval_options

    with caplog.at_level(logging.WARNING):
        task, _ = setup(tiny_corpus / "bin", *MMT, "--eval-bleu", "--eval-bleu-args", '{"beam": 2}')
    assert [ev.name for ev in task.evaluators] == ["bleu"] and task.eval_generation_args() == '{"beam": 2}'
    assert task.eval_post_process == "none"  # fairseq's --eval-bleu-remove-bpe default: the pieces
    assert any("--eval-bleu is deprecated" in r.getMessage() and "--eval-metric bleu" in r.getMessage()
               for r in caplog.records)
    task, _ = setup(tiny_corpus / "bin", *MMT)
    assert task.evaluators == [] and task.eval_generation_args() is None
    with pytest.raises(ValueError, match="not both"):
        setup(tiny_corpus / "bin", *MMT, "--eval-bleu", "--eval-metric", "bleu")
    with pytest.raises(ValueError, match="unknown evaluation metric 'cidr'"):
        setup(tiny_corpus / "bin", *MMT, "--eval-metric", "cidr")

    class Caption:  # unix_caption's fields, as fairseq fills them
        eval_metric, eval_args, eval_post_process, eval_print_samples = "none", None, "sentencepiece", False
        eval_cider, eval_cider_args, eval_meteor, eval_cider_print_samples = True, None, True, True

    default = '{"beam": 1, "max_len_a": 0, "max_len_b": 40}'
    assert resolve_eval_options(Caption, default) == (["cider", "bleu4", "meteor"], default, "sentencepiece", True)
    Caption.eval_cider = False
    with pytest.raises(ValueError, match="--eval-meteor needs --eval-cider"):
        resolve_eval_options(Caption, default)


def test_eval_metric_bleu_equals_fairseqs_eval_bleu_over_batches(tiny_corpus, caplog):
    """``--eval-metric bleu --eval-post-process none`` logs what fairseq's own ``--eval-bleu`` computes:
    sacreBLEU of the generated pieces against the targets, counts summed over batches."""
    import sacrebleu
    from fairseq import metrics, utils

    task, cfg = setup(tiny_corpus / "bin", *MMT, "--eval-metric", "bleu", "--eval-post-process", "none",
                      "--eval-args", '{"beam": 2, "max_len_b": 8}', "--eval-print-samples")
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("valid")
    ds = task.datasets["valid"]
    batches = [ds.collater([ds[i] for i in ids]) for ids in (range(0, 5), range(5, len(ds)))]
    with torch.no_grad(), metrics.aggregate(new_root=True) as agg, caplog.at_level(logging.INFO):
        model.eval()
        logs = [task.valid_step(b, model, criterion)[2] for b in batches]
        task.reduce_metrics(logs, criterion)
        logged = agg.get_smoothed_values()
    hyps, refs = [], []  # fairseq's TranslationTask._inference_with_bleu, by hand
    for b in batches:
        for g, t in zip(task.inference_step(task.eval_generator, [model], b), b["target"]):
            hyps.append(task.tgt_dict.string(g[0]["tokens"].int().cpu(), None, unk_string="UNKNOWNTOKENINHYP"))
            refs.append(task.tgt_dict.string(utils.strip_pad(t, task.tgt_dict.pad()).int().cpu(), None,
                                             unk_string="UNKNOWNTOKENINREF"))
    assert all(hyps) and "_sacrebleu_n" in logs[0]
    assert any(r.getMessage().startswith("valid example: ") for r in caplog.records)  # --eval-print-samples
    assert logged["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)
