"""Task unix_vqa end to end (fairseq-train + fairseq-generate --scoring vqa_accuracy) and its bad input."""

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from unix.data.images import ImageError
from unix.data.vqa import VQADataError
from unix.metrics.vqa import VQAAccuracy

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
COLORS = {"red": (220, 30, 30), "dark blue": (20, 20, 120), "light green": (150, 240, 150),
          "yellow": (230, 230, 20)}
N_TEST = 13  # not a multiple of 8: no question may be dropped


def make_questions(n: int, seed: int, several_refs: bool):
    """Questions about one-colour images; answers of one or two words, yes/no."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        color = rng.choice(list(COLORS))
        if i % 2 == 0:
            q, a, other = "what color is the shape?", color, rng.choice([c for c in COLORS if c != color])
        else:
            asked = rng.choice(list(COLORS))
            q, a = f"is the shape {asked}?", "yes" if asked == color else "no"
            other = "no" if a == "yes" else "yes"
        answers = [a, a, other] if several_refs and i % 3 == 0 else [a]
        out.append({"image": color.replace(" ", "_") + ".png", "question": q, "answers": answers})
    return out


def build_tiny_vqa(root: Path) -> dict:
    """Images, JSONL splits, a sentencepiece model; binarized with unix-prepare-easy-vqa."""
    from PIL import Image

    from fairseq_plugins.cli.prepare_easy_vqa import main as prepare
    from unix.data.tokenizer import train_sentencepiece

    img, raw = root / "images", root / "raw"
    img.mkdir(parents=True)
    raw.mkdir()
    for color, rgb in COLORS.items():
        Image.new("RGB", (32, 32), rgb).save(img / (color.replace(" ", "_") + ".png"))
    splits = {"train": make_questions(48, 0, False), "valid": make_questions(16, 1, True),
              "test": make_questions(N_TEST, 2, True)}
    for split, recs in splits.items():
        (raw / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = raw / "text.txt"
    text.write_text("".join(r["question"] + "\n" + " ".join(r["answers"]) + "\n" for r in splits["train"]))
    spm = train_sentencepiece([str(text)], str(root / "spm"), vocab_size=48, langs=("en", "de"))
    assert prepare(["--data-dir", str(raw), "--image-root", str(img), "--spm-model", spm,
                    "--out", str(root / "bin")]) == 0
    return {"root": root, "bin": root / "bin", "images": img, "splits": splits}


@pytest.fixture(scope="module")
def tiny_vqa(tmp_path_factory):
    return build_tiny_vqa(tmp_path_factory.mktemp("tiny_vqa"))


def fairseq(cmd, *args):
    proc = subprocess.run([cmd, *map(str, args), "--user-dir", str(ROOT / "fairseq_plugins")], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def common_args(d):
    return [d["bin"], "--task", "unix_vqa", "--image-root", d["images"], "--cpu", "--batch-size", 8,
            "--num-workers", 0]


@pytest.fixture(scope="module")
def trained(tiny_vqa):
    ckpt = tiny_vqa["root"] / "ckpt"
    log = fairseq("fairseq-train", *common_args(tiny_vqa), "--arch", "unix_tiny", "--image-encoder", "test_convnext",
                  "--criterion", "cross_entropy", "--optimizer", "adam", "--lr", "3e-3", "--max-update", 12,
                  "--save-dir", ckpt, "--no-epoch-checkpoints", "--no-last-checkpoints", "--seed", 1,
                  "--eval-accuracy", "--eval-accuracy-args", '{"beam": 2}',
                  "--constraint-answers", tiny_vqa["bin"] / "answers.spm.txt",
                  "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric",
                  "--log-format", "json", "--log-interval", 1, "--no-progress-bar")
    valid = [json.loads(m) for m in re.findall(r"\| valid \| (\{.*\})", log)]
    return {**tiny_vqa, "ckpt": ckpt / "checkpoint_best.pt", "valid_logs": valid, "train_log": log}


def generate(d, subset, *extra):
    out = fairseq("fairseq-generate", *common_args(d), "--path", d["ckpt"], "--gen-subset", subset,
                  "--scoring", "vqa_accuracy", "--post-process", "sentencepiece", *extra)
    hyps = {int(m[0]): m[1] for m in re.findall(r"^H-(\d+)\t[^\t]*\t(.*)$", out, re.M)}
    targets = {int(m[0]): m[1] for m in re.findall(r"^T-(\d+)\t(.*)$", out, re.M)}
    reported = float(re.search(r"Generate \S+ with beam=\d+: VQA accuracy = ([\d.]+)", out).group(1))
    return hyps, targets, reported


def recomputed_accuracy(hyps, targets) -> float:
    metric = VQAAccuracy()
    for i, t in targets.items():
        metric.add(t, hyps[i])
    return round(metric.score(), 2)


def test_training_logs_valid_accuracy_and_keeps_the_best(trained):
    accs = [float(v["valid_accuracy"]) for v in trained["valid_logs"]]
    assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)  # 12 updates = 2 epochs of 6
    assert trained["ckpt"].exists()
    saved = re.findall(r"Saved checkpoint \S*checkpoint_best\.pt \(epoch \d+ @ \d+ updates, score ([\d.]+)\)",
                       trained["train_log"])
    assert saved and float(saved[-1]) == max(accs)


def test_generate_free_answers_and_score(trained):
    hyps, targets, reported = generate(trained, "test", "--beam", 3)
    assert sorted(hyps) == list(range(N_TEST)) == sorted(targets)
    assert any("<sep>" in t for t in targets.values())  # several references reach the scorer
    assert reported == recomputed_accuracy(hyps, targets)


def test_generate_closed_set_matches_validation_accuracy(trained):
    answers = set((trained["bin"] / "answers.txt").read_text().splitlines())
    assert {"dark blue", "light green", "yes", "no"} <= answers
    hyps, targets, reported = generate(trained, "valid", "--beam", 2,
                                       "--constraint-answers", trained["bin"] / "answers.spm.txt")
    assert len(hyps) == 16 and set(hyps.values()) <= answers
    assert reported == recomputed_accuracy(hyps, targets)
    # the checkpoint kept is the one validated with the same closed-set beam search
    assert reported == max(float(v["valid_accuracy"]) for v in trained["valid_logs"])


# ---- bad input (in-process) -------------------------------------------------------------------

def make_task(bin_dir, image_root=None, **kwargs):
    from fairseq_plugins.tasks.unix_vqa import UnixVQAConfig, UnixVQATask

    cfg = UnixVQAConfig(data=str(bin_dir), image_root=str(image_root) if image_root else None,
                        train_subset="train", dataset_impl=None, required_seq_len_multiple=1, **kwargs)
    return UnixVQATask.setup_task(cfg)


@pytest.fixture
def data_copy(tiny_vqa, tmp_path):
    dst = tmp_path / "bin"
    shutil.copytree(tiny_vqa["bin"], dst, ignore=shutil.ignore_patterns("images", "jsonl"))
    return dst


def test_training_answer_outside_the_answer_list(tiny_vqa, data_copy):
    lines = (data_copy / "answers.spm.txt").read_text().splitlines()
    raw = (data_copy / "answers.txt").read_text().splitlines()
    dropped = raw.index("light green")
    (data_copy / "answers.spm.txt").write_text("\n".join(l for i, l in enumerate(lines) if i != dropped) + "\n")
    first = next(i for i, r in enumerate(tiny_vqa["splits"]["train"]) if r["answers"][0] == "light green")
    task = make_task(data_copy, tiny_vqa["images"], constraint_answers=str(data_copy / "answers.spm.txt"))
    with pytest.raises(ValueError, match=rf"train\.question-answer\.answer: line {first + 1}: training answer "
                                         r"'light green' is not in the answer list"):
        task.load_dataset("train")
    task.load_dataset("valid")  # evaluation references may lie outside the list


def test_empty_answer_list(tiny_vqa, data_copy):
    (data_copy / "answers.spm.txt").write_text("")
    with pytest.raises(VQADataError, match=f"{data_copy / 'answers.spm.txt'}: the answer list is empty"):
        make_task(data_copy, tiny_vqa["images"], constraint_answers=str(data_copy / "answers.spm.txt"))


def test_missing_image_and_question_without_image(tiny_vqa, data_copy):
    path = data_copy / "valid.images.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + ["nope.png"] + lines[5:]) + "\n")
    with pytest.raises(ImageError, match=rf"{path}:5: image not found"):
        make_task(data_copy, tiny_vqa["images"]).load_dataset("valid")
    path.write_text("\n".join(lines[:6] + [""] + lines[7:]) + "\n")
    with pytest.raises(ImageError, match=rf"{path}:7: question without an image"):
        make_task(data_copy, tiny_vqa["images"]).load_dataset("valid")


def test_empty_question_in_a_binarized_split(tiny_vqa, data_copy, tmp_path):
    from fairseq_plugins.cli.prepare_easy_vqa import binarize

    (tmp_path / "train.question").write_text("▁is ▁it ▁red ?\n\n▁what ▁color ?\n")
    (tmp_path / "train.answer").write_text("▁yes\n▁no\n▁red\n")
    binarize({"train": str(tmp_path / "train")}, str(data_copy), str(data_copy / "dict.txt"))
    with pytest.raises(ValueError, match=r"train\.question-answer \(source\): line 2 is an empty sentence"):
        make_task(data_copy, tiny_vqa["images"]).load_dataset("train")


def test_images_are_required(data_copy):
    with pytest.raises(ValueError, match="--image-root"):
        make_task(data_copy).load_dataset("valid")
    make_task(data_copy, no_images=True).load_dataset("valid")  # question-only baseline


def test_several_answers_as_training_target(tiny_vqa, data_copy):
    for f in data_copy.glob("valid.*"):
        shutil.copyfile(f, data_copy / f.name.replace("valid.", "train.", 1))
    first = next(i for i, r in enumerate(tiny_vqa["splits"]["valid"]) if len(r["answers"]) > 1)
    with pytest.raises(ValueError, match=rf"line {first + 1}: training answer .* joins several answers"):
        make_task(data_copy, tiny_vqa["images"]).load_dataset("train")


def test_closed_set_rejects_other_search_strategies(tiny_vqa, data_copy):
    from argparse import Namespace

    task = make_task(data_copy, tiny_vqa["images"], constraint_answers=str(data_copy / "answers.spm.txt"))
    for bad in ({"sampling": True}, {"prefix_size": 1}, {"no_repeat_ngram_size": 2}, {"min_len": 2},
                {"diverse_beam_groups": 2}):
        with pytest.raises(ValueError, match="--constraint-answers"):
            task.build_generator([None], Namespace(beam=2, **bad))


def test_generator_classes(tiny_vqa, data_copy):
    """Plain beam search (free or closed-set) keeps the best finished answers unless --fairseq-beam-stop."""
    from argparse import Namespace

    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_plugins.generation.best_stop import BestStopSequenceGenerator
    from fairseq_plugins.generation.trie_generator import BestStopTrieGenerator, TrieConstrainedSequenceGenerator
    from tests.fairseq_plugins.test_trie_generator import make_model

    answers = str(data_copy / "answers.spm.txt")
    for kwargs, args, expected in [
            ({}, {}, BestStopSequenceGenerator),
            ({}, {"sampling": True}, SequenceGenerator),
            ({"fairseq_beam_stop": True}, {}, SequenceGenerator),
            ({"constraint_answers": answers}, {}, BestStopTrieGenerator),
            ({"constraint_answers": answers, "fairseq_beam_stop": True}, {}, TrieConstrainedSequenceGenerator)]:
        task = make_task(data_copy, tiny_vqa["images"], **kwargs)
        model = make_model(task.target_dictionary, 0, 4)
        assert type(task.build_generator([model], Namespace(beam=2, **args))) is expected, (kwargs, args)


def epoch_batches(task, epoch):
    itr = task.get_batch_iterator(task.dataset("train"), max_sentences=8, seed=1, epoch=epoch)
    return [list(b) for b in itr.frozen_batches]


def test_random_batches_mix_question_lengths_and_change_every_epoch(tiny_vqa):
    """fairseq batches by length (one question type a batch); --random-batches does not."""
    sorted_task = make_task(tiny_vqa["bin"], no_images=True)
    sorted_task.load_dataset("train")
    random_task = make_task(tiny_vqa["bin"], no_images=True, random_batches=True)
    random_task.load_dataset("train")
    sizes = sorted_task.dataset("train").src_sizes
    n = len(sizes)

    def length_spread(batches):
        return sum(len({int(sizes[i]) for i in b}) for b in batches) / len(batches)

    default = epoch_batches(sorted_task, 1)
    first, second = epoch_batches(random_task, 1), epoch_batches(random_task, 2)
    for batches in (default, first, second):  # every question exactly once an epoch
        assert sorted(i for b in batches for i in b) == list(range(n))
    assert length_spread(default) < length_spread(first)
    assert first != second and first == epoch_batches(random_task, 1)  # new each epoch, seeded


def test_balance_answers_evens_yes_and_no_within_a_template(tiny_vqa):
    """--balance-answers: "is the shape <colour>?" is mostly "no"; the drawn epochs are about even."""
    task = make_task(tiny_vqa["bin"], no_images=True, balance_answers=True)
    task.load_dataset("train")
    train = task.dataset("train")
    weights = task.train_sample_weights
    assert weights.shape == (len(train),) and weights.sum() == pytest.approx(len(train))
    tgt = task.target_dictionary
    answer = [tgt.string(train.tgt[i], "sentencepiece") for i in range(len(train))]
    yes_no = [i for i, a in enumerate(answer) if a in ("yes", "no")]
    share_yes = sum(answer[i] == "yes" for i in yes_no) / len(yes_no)
    assert share_yes < 0.4  # the generated questions ask a random colour: mostly "no"
    # the colour questions form one template (answers spread over 4 colours), the yes/no ones another
    assert weights[[i for i in yes_no if answer[i] == "yes"]].sum() == pytest.approx(len(yes_no) / 2)
    drawn = [i for e in range(1, 21) for b in epoch_batches(task, e) for i in b]
    assert len(drawn) == 20 * len(train)  # an epoch keeps its size
    drawn_yes_no = [i for i in drawn if answer[i] in ("yes", "no")]
    assert abs(sum(answer[i] == "yes" for i in drawn_yes_no) / len(drawn_yes_no) - 0.5) < 0.06
    assert epoch_batches(task, 1) == epoch_batches(task, 1) != epoch_batches(task, 2)  # seeded, fresh


def test_sampling_weights_must_fit_the_dataset():
    from fairseq_plugins.data.random_order_dataset import RandomOrderDataset

    data = list(range(4))
    with pytest.raises(ValueError, match="3 sampling weights for 4 samples"):
        RandomOrderDataset(data, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not all zero"):
        RandomOrderDataset(data, [0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        RandomOrderDataset(data, [1.0, -1.0, 1.0, 1.0])


def test_beam_stop_option_and_deprecated_flag(tiny_vqa, data_copy, caplog):
    """--beam-stop names the rule (unix_vqa's default: best); --fairseq-beam-stop still works, with a warning."""
    import logging
    from argparse import Namespace

    from fairseq.sequence_generator import SequenceGenerator

    from fairseq_plugins.generation.best_stop import BestStopSequenceGenerator
    from fairseq_plugins.generation.trie_generator import TrieConstrainedSequenceGenerator
    from tests.fairseq_plugins.test_trie_generator import make_model

    answers = str(data_copy / "answers.spm.txt")
    for kwargs, stop, expected, warned in [
            ({}, "best", BestStopSequenceGenerator, False),
            ({"beam_stop": "fairseq"}, "fairseq", SequenceGenerator, False),
            ({"fairseq_beam_stop": True}, "fairseq", SequenceGenerator, True),
            ({"beam_stop": "fairseq", "constraint_answers": answers}, "fairseq", TrieConstrainedSequenceGenerator,
             False)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            task = make_task(data_copy, tiny_vqa["images"], **kwargs)
        assert task.beam_stop == stop
        assert any("--fairseq-beam-stop is deprecated" in r.getMessage() for r in caplog.records) == warned
        model = make_model(task.target_dictionary, 0, 4)
        assert type(task.build_generator([model], Namespace(beam=2))) is expected, kwargs
