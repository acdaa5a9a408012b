"""unix-prepare-xvqa (unix/cli/prepare_xvqa.py) on a slice of easy-VQA prepared by unix-prepare-easy-vqa."""

import json
import os

import pytest

from unix.data.tokenizer import read_lines
from unix.data.xvqa import UnknownQuestionError, translate_question
from unix.data.xvqa_templates import COLORS, ENGLISH, LANGS, SHAPES, render

easy_vqa = pytest.importorskip("easy_vqa")
N = 40


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    from fairseq_plugins.cli.prepare_easy_vqa import main as prepare_easy_vqa
    from unix.data.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("xvqa")
    q, a, _ = easy_vqa.get_train_questions()
    # a vocabulary that knows every language's templates (the project's real one is trained on Multi30K)
    translated = [render(lang, name, {"color": c, "shape": s}) for lang in LANGS for name in ENGLISH
                  for c, s in zip(COLORS, SHAPES * 3)]
    (root / "text.txt").write_text("\n".join(q[:2000] + a[:2000] + translated) + "\n", encoding="utf-8")
    spm = train_sentencepiece([str(root / "text.txt")], str(root / "spm"), vocab_size=200,
                              langs=("en", "de", "fr", "cs"))
    out = root / "bin"
    assert prepare_easy_vqa(["--spm-model", spm, "--out", str(out), "--max-questions", str(N),
                             "--valid-images", "50"]) == 0
    return out


def test_translated_splits_are_aligned_binarized_and_loadable(data_bin, capsys):
    from fairseq.data import Dictionary, data_utils

    from unix.cli.prepare_xvqa import main

    assert main(["--data-bin", str(data_bin)]) == 0
    assert "test_de: 40 questions, e.g. " in capsys.readouterr().out
    english = [json.loads(line) for line in (data_bin / "jsonl" / "test.jsonl").read_text().splitlines()]
    d = Dictionary.load(str(data_bin / "dict.txt"))
    for lang in LANGS:
        name = f"test_{lang}"
        recs = [json.loads(line) for line in (data_bin / "jsonl" / f"{name}.jsonl").read_text(encoding="utf-8")
                .splitlines()]
        assert len(recs) == N
        for en, x in zip(english, recs):
            assert (x["image"], x["answers"]) == (en["image"], en["answers"])  # answers stay English
            assert x["question"] == translate_question(en["question"], lang)
        assert read_lines(str(data_bin / f"{name}.images.txt")) == read_lines(str(data_bin / "test.images.txt"))
        for side, texts in (("question", [r["question"] for r in recs]), ("answer", [r["answers"][0] for r in recs])):
            ds = data_utils.load_indexed_dataset(str(data_bin / f"{name}.question-answer.{side}"), d)
            assert [d.string(ds[i], "sentencepiece") for i in range(len(ds))] == texts
    manifest = json.loads((data_bin / "xvqa_manifest.json").read_text(encoding="utf-8"))
    assert manifest["questions"] == N and sum(manifest["templates"].values()) == N
    assert set(manifest["langs"]) == set(LANGS)


def test_the_unix_vqa_task_loads_a_translated_split(data_bin):
    import fairseq_plugins  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from unix.cli.prepare_xvqa import main

    main(["--data-bin", str(data_bin), "--langs", "cs"])
    user_dir = os.path.join(os.path.dirname(__file__), "..", "..", "fairseq_plugins")
    ns = options.parse_args_and_arch(options.get_training_parser(), [
        str(data_bin), "--user-dir", user_dir, "--task", "unix_vqa", "--arch", "unix_tiny", "--cpu",
        "--image-root", str(data_bin / "images"), "--image-encoder", "test_convnext"])
    cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    task.build_model(cfg.model)  # sets the image transform
    task.load_dataset("test_cs")
    ds = task.datasets["test_cs"]
    assert len(ds) == N
    batch = ds.collater([ds[i] for i in range(4)])
    assert batch["net_input"]["images"].shape[0] == 4 and batch["net_input"]["image_mask"].all()
    questions = [json.loads(line)["question"] for line in (data_bin / "jsonl" / "test_cs.jsonl").read_text(
        encoding="utf-8").splitlines()]
    source = task.src_dict.string(ds[0]["source"], "sentencepiece")  # the answer-language tag, then the question
    assert source.endswith(questions[0])


def test_an_unknown_question_stops_the_command_naming_file_and_line(tmp_path):
    from unix.cli.prepare_xvqa import main

    (tmp_path / "jsonl").mkdir()
    lines = [{"image": "test/images/0.png", "question": "what shape is present?", "answers": ["circle"]},
             {"image": "test/images/0.png", "question": "how big is the shape?", "answers": ["small"]}]
    (tmp_path / "jsonl" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(UnknownQuestionError, match=r"test.jsonl:2: question 'how big is the shape\?'"):
        main(["--data-bin", str(tmp_path), "--no-binarize"])


def test_list_templates_prints_every_question_once_per_language(capsys):
    from unix.cli.prepare_xvqa import main

    assert main(["--list-templates"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["template", "en", "de", "fr", "cs"] and len(rows) == 1 + 107
    assert ["contain_shape", "does the image contain a rectangle?", "enthält das Bild ein Rechteck?",
            "l'image contient-elle un rectangle ?", "obsahuje obrázek obdélník?"] in rows
