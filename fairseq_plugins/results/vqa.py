"""``unix-results vqa``: ``unix_vqa`` checkpoints with free and closed-set decoding.

Runs ``fairseq-generate --scoring vqa_accuracy`` twice per checkpoint on the test split (free
generation, then ``--constraint-answers``), recomputes the accuracy from the printed answers and
targets with :mod:`unix.metrics.vqa` as a cross-check, and writes a markdown table (one row per
checkpoint and decoding) with the commands and the commit. Several checkpoints: ``--path A B
--label a b``.

Example::

    unix-results vqa --data data-bin/easy_vqa --path checkpoints/easy_vqa/checkpoint_best.pt \\
        --answers data-bin/easy_vqa/answers.spm.txt --out examples/vqa/RESULTS.md \\
        -- --image-root data-bin/easy_vqa/images --image-features data-bin/easy_vqa/feats_lite0
"""

import os
import re

from unix.data.answer_balance import PLACEHOLDER, AnswerTemplater
from unix.data.generate_output import read_generate_output
from unix.metrics.references import split_references
from unix.metrics.vqa import ANSWER_TYPES, VQAAccuracy, vqa_accuracy
from unix.provenance import checkpoint_labels, provenance, results_work_dir
from fairseq_plugins.results.common import beside, generate_command, printed_float, quote, run_generate, write_json, write_markdown


def add_arguments(p) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--path", required=True, nargs="+", help="checkpoint(s), one table row each per decoding")
    p.add_argument("--answers", required=True, help="answer list in pieces (closed-set decoding)")
    p.add_argument("--subset", default="test")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--label", nargs="+", default=None,
                   help="one label per --path (default: the checkpoint path)")
    p.add_argument("--templates", type=int, default=30,
                   help="also tabulate accuracy per question template (the question with every reference "
                        "answer's words replaced by _) for the N most frequent templates; 0: no such table")
    p.add_argument("extra", nargs="*", help="more fairseq-generate arguments (after --)")


def generate(a, path, out_path, closed):
    cmd = generate_command(a.data, "unix_vqa", "--path", path, "--gen-subset", a.subset, "--beam", str(a.beam),
                           "--batch-size", "128", "--scoring", "vqa_accuracy", "--post-process", "sentencepiece",
                           *a.extra)
    if closed:
        cmd += ["--constraint-answers", a.answers]
    return run_generate(cmd, out_path)


def parse(out_path):
    """``({id: {"S": question, "T": target, "D": answer}}, printed accuracy or None)`` of a generate
    output (:func:`unix.data.generate_output.read_generate_output`); the question without its
    language tag, the answer of the best hypothesis without its score."""
    rows = {}
    for i, sample in read_generate_output(out_path).items():
        row = rows.setdefault(i, {})
        if sample.source is not None:
            row["S"] = re.sub(r"^__\w+__\s*", "", sample.source)
        if sample.target is not None:
            row["T"] = sample.target
        if sample.hyps and sample.hyps[0].detok is not None:
            row["D"] = sample.hyps[0].detok
    return rows, printed_float(out_path, r"VQA accuracy = ([\d.]+)")


def read(out_path):
    """(printed accuracy, recomputed summary, number of questions) of a generate output; the summary
    is :meth:`VQAAccuracy.summary` (``accuracy``, ``by_type`` ...)."""
    rows, printed = parse(out_path)
    targets = {i: r["T"] for i, r in rows.items() if "T" in r}
    preds = {i: r["D"] for i, r in rows.items() if "D" in r}
    if set(targets) != set(preds) or not targets:
        raise ValueError(f"{out_path}: {len(targets)} targets, {len(preds)} answers")
    metric = VQAAccuracy()
    for i in targets:
        metric.add(targets[i], preds[i])
    return printed, metric.summary(), len(targets)


def checked_accuracy(out_path):
    """(recomputed summary, number of questions) of a generate output (:func:`read`), after checking
    that the scorer printed the same accuracy (ValueError naming the file if not)."""
    printed, summary, n = read(out_path)
    if printed is None or abs(printed - summary["accuracy"]) > 0.01:
        raise ValueError(f"{out_path}: scorer printed {printed}, recomputed {summary['accuracy']:.2f}")
    return summary, n


def read_questions(out_path):
    """``{id: (question, target, answer)}`` of a generate output (:func:`parse`)."""
    return {i: (r.get("S", ""), r.get("T", ""), r.get("D", "")) for i, r in parse(out_path)[0].items()}


def _words(text):
    return re.findall(r"\w+|[^\w\s]", text.lower())


def template_accuracy(questions):
    """``{template: (accuracy %, n)}``: questions grouped by their text with every reference answer's
    words replaced by ``_`` ("is there a red shape?" -> "is there a _ shape ?")."""
    vocab, names = {}, []

    def ids(words):
        for w in words:
            if w not in vocab:
                vocab[w] = len(names)
                names.append(w)
        return tuple(vocab[w] for w in words)

    answers = {ids(_words(a)) for _, target, _ in questions.values() for a in split_references(target)}
    templater = AnswerTemplater(answers)
    sums = {}
    for question, target, answer in questions.values():
        template = " ".join("_" if t == PLACEHOLDER else names[t] for t in templater(ids(_words(question))))
        acc = vqa_accuracy(answer, split_references(target))
        total, n = sums.get(template, (0.0, 0))
        sums[template] = (total + acc, n + 1)
    return {t: (100.0 * total / n, n) for t, (total, n) in sums.items()}


def template_table(rows, n_templates: int, several: bool):
    """The per-template lines: the ``n_templates`` most frequent templates, one column per row."""
    counts = {t: n for r in rows for t, (_, n) in r["by_template"].items()}
    top = sorted(counts, key=lambda t: (-counts[t], t))[:n_templates]
    lines = ["", f"By question template ({len(top)} most frequent of {len(counts)}; reference answers' "
             "words replaced by `_`), accuracy (%):", "",
             "| template | questions | " + " | ".join(
                 f"{r['label']}, {r['mode']}" if several else r["mode"] for r in rows) + " |",
             "|---|---|" + "---|" * len(rows)]
    return lines + [f"| {t} | {counts[t]} | " + " | ".join(
        "{:.2f}".format(r["by_template"][t][0]) if t in r["by_template"] else "-" for r in rows) + " |"
        for t in top]


def run(a) -> str:
    """Write the table and its JSON; returns the accuracy rows (for the terminal)."""
    labels = checkpoint_labels(a.path, a.label)
    work = results_work_dir(a.out)
    several = len(a.path) > 1
    rows = []
    for k, (path, label) in enumerate(zip(a.path, labels)):
        for mode, closed in (("free", False), ("closed set", True)):
            tag = f"{k}_" if several else ""
            out = os.path.join(work, f"gen_{a.subset}_{tag}{mode.replace(' ', '_')}.txt")
            cmd = generate(a, path, out, closed)
            summary, n = checked_accuracy(out)
            rows.append({"label": label, "path": path, "mode": mode, "accuracy": summary["accuracy"],
                         "by_type": summary["by_type"], "n": n, "command": quote(cmd),
                         "by_template": template_accuracy(read_questions(out)) if a.templates else {}})
    types = [t for t in ANSWER_TYPES if any(t in r["by_type"] for r in rows)]
    lines = ["# easy-VQA results", "",
             provenance(), "",
             f"| model | decoding | {a.subset} accuracy (%) | questions | " + " | ".join(types) + " |",
             "|---|---|---|---|" + "---|" * len(types)]
    lines += [f"| {r['label']} | {r['mode']} | {r['accuracy']:.2f} | {r['n']} | " + " | ".join(
        "{:.2f} (n={})".format(*r["by_type"][t]) if t in r["by_type"] else "-" for t in types) + " |" for r in rows]
    if a.templates:
        lines += template_table(rows, a.templates, several)
    lines += ["", "Generate commands:", ""] + [
        f"- {r['label'] + ', ' if several else ''}{r['mode']}: `{r['command']}`" for r in rows]
    write_markdown(a.out, lines)
    write_json(beside(a.out, ".json"), rows)
    return "\n".join(lines[4:4 + 2 + len(rows)])
