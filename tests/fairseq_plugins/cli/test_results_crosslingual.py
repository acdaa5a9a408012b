"""unix-results crosslingual: rows averaged over seeds, entries not measured, README block, reuse of outputs.

fairseq-generate and unix-eval-retrieval are replaced by stand-ins that write small outputs of the
real formats; the checkpoints are tiny torch files holding only their number of updates.
"""

import json
import os

import pytest
import torch

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import crosslingual

QUESTIONS = [("what color is the shape?", "red"), ("is there a circle?", "yes"),
             ("what shape is it?", "circle"), ("is there a blue shape?", "no")]
# right answers of the 4 questions per (checkpoint, split): accuracy = 25% per right answer
RIGHT = {("vqa_s1.pt", "test"): 4, ("vqa_s1.pt", "test_de"): 1, ("vqa_s2.pt", "test"): 3, ("vqa_s2.pt", "test_de"): 2,
         ("vqa_s3.pt", "test"): 2, ("vqa_s3.pt", "test_de"): 0}
RECALL = {"ret_s1.pt": {"en_i2t_r1": 40.0, "en_t2i_r1": 30.0, "de_i2t_r1": 20.0, "de_t2i_r1": 10.0,
                        "en_i2t_r5": 70.0, "en_t2i_r5": 60.0, "de_i2t_r5": 30.0, "en2de_r1": 80.0},
          "ret_s2.pt": {"en_i2t_r1": 50.0, "en_t2i_r1": 35.0, "de_i2t_r1": 25.0, "de_t2i_r1": 16.0,
                        "en_i2t_r5": 75.0, "en_t2i_r5": 65.0, "de_i2t_r5": 35.0, "en2de_r1": 85.0}}


def write_generate_output(path, right):
    """A fairseq-generate output of the 4 questions, the first ``right`` answered right."""
    with open(path, "w") as f:
        for i, (question, target) in enumerate(QUESTIONS):
            answer = target if i < right else "green"
            f.write(f"S-{i}\t__en__ {question}\nT-{i}\t{target}\nH-{i}\t-0.1\tpieces\nD-{i}\t-0.1\t{answer}\n")
        f.write(f"Generate test with beam=5: VQA accuracy = {25.0 * right:.2f} (n=4)\n")


@pytest.fixture
def runners(monkeypatch):
    """Stand-ins for fairseq-generate and unix-eval-retrieval; ``calls`` records (checkpoint, split)."""
    calls = []

    def fake_generate(cmd, out_path, keep_stderr=True):
        ckpt, subset = cmd[cmd.index("--path") + 1], cmd[cmd.index("--gen-subset") + 1]
        calls.append((os.path.basename(ckpt), subset))
        write_generate_output(out_path, RIGHT[(os.path.basename(ckpt), subset)])
        return list(cmd)

    def fake_retrieval(argv):
        ckpt = os.path.basename(argv[argv.index("--path") + 1])
        calls.append((ckpt, "retrieval"))
        with open(argv[argv.index("--out") + 1], "w") as f:
            json.dump(RECALL[ckpt], f)
        return 0

    monkeypatch.setattr(crosslingual, "run_generate", fake_generate)
    monkeypatch.setattr(crosslingual, "run_retrieval", fake_retrieval)
    return calls


@pytest.fixture
def tree(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, updates in (("vqa_s1.pt", 100), ("vqa_s2.pt", 120), ("vqa_s3.pt", 100), ("ret_s1.pt", 100),
                          ("ret_s2.pt", 100), ("rc3_s1.pt", 90)):
        torch.save({"optimizer_history": [{"num_updates": updates}]}, runs / name)
    cfg = {"note": "Fine-tuned on English only.",
           "vqa_zero_shot": [
               {"init": "scratch", "checkpoints": ["{RUNS}/vqa_s1.pt", "{RUNS}/vqa_s2.pt"], "seeds": [1, 2],
                "updates": 100, "data": "{RUNS}/easy_vqa", "languages": {"de": "test_de", "en": "test"},
                "args": ["--image-features", "{RUNS}/feats", "--cpu"]},
               {"init": "pretrained", "checkpoints": ["{RUNS}/absent.pt"], "seeds": [1], "updates": 100,
                "data": "{RUNS}/easy_vqa"}],
           "retrieval_zero_shot": [
               {"init": "pretrained", "checkpoints": ["{RUNS}/ret_s1.pt", "{RUNS}/ret_s2.pt"], "seeds": [1, 2],
                "updates": 100, "set": "Multi30K test2016", "args": ["--dict", "{RUNS}/dict.txt"]}],
           "rc3": [{"init": "pretrained", "checkpoints": ["{RUNS}/rc3_s1.pt"], "seeds": [1], "updates": 100,
                    "args": []}]}
    config = tmp_path / "crosslingual.json"
    config.write_text(json.dumps(cfg))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n{crosslingual.BEGIN}\nold table\n{crosslingual.END}\nafter\n")
    return tmp_path, runs, config, readme


def results_command(root, runs, config, *more):
    return ["crosslingual", "--config", str(config), "--var", f"RUNS={runs}", "--out",
            str(root / "RESULTS_crosslingual.json"), "--work", str(root / "work"), *more]


def by_key(rows):
    return {(r["experiment"], r["init"], r["language"], r["metric"]): r for r in rows}


def test_rows_are_means_over_seeds_and_unfinished_entries_are_listed(tree, runners):
    root, runs, config, readme = tree
    assert cli.main(results_command(root, runs, config, "--readme", str(readme))) == 0
    saved = json.loads((root / "RESULTS_crosslingual.json").read_text())
    rows = by_key(saved["rows"])
    vqa_de = rows[("vqa_zero_shot", "scratch", "de", "accuracy")]
    assert vqa_de["value_per_seed"] == [25.0, 50.0] and vqa_de["value"] == 37.5  # 1 and 2 of 4 right
    assert rows[("vqa_zero_shot", "scratch", "en", "accuracy")]["value"] == 87.5  # (100 + 75) / 2
    assert vqa_de["updates"] == 100 and vqa_de["seeds"] == [1, 2] and vqa_de["commit"]
    assert len(vqa_de["command"]) == 2 and vqa_de["command"][0].startswith("fairseq-generate ")
    assert f"--path {runs}/vqa_s1.pt --gen-subset test_de --beam 5 --batch-size 128 --scoring vqa_accuracy " \
           f"--post-process sentencepiece --image-features {runs}/feats --cpu" in vqa_de["command"][0]
    assert f"--path {runs}/vqa_s2.pt" in vqa_de["command"][1]
    # retrieval: R@K = mean of both directions per seed, then over seeds (no de R@5: one direction only);
    # sentence retrieval (en->de) is not a row
    r1 = rows[("retrieval_zero_shot", "pretrained", "en", "R@1")]
    assert r1["value_per_seed"] == [35.0, 42.5] and r1["value"] == 38.75
    assert rows[("retrieval_zero_shot", "pretrained", "en", "image->text R@1")]["value"] == 45.0
    assert rows[("retrieval_zero_shot", "pretrained", "de", "text->image R@1")]["value"] == 13.0
    assert rows[("retrieval_zero_shot", "pretrained", "de", "R@1")]["value"] == 17.75  # (15 + 20.5) / 2
    assert r1["command"][0].startswith(f"python -m unix.cli.eval_retrieval --path {runs}/ret_s1.pt --dict "
                                       f"{runs}/dict.txt --out ")
    r5 = rows[("retrieval_zero_shot", "pretrained", "en", "R@5")]
    assert r5["value_per_seed"] == [65.0, 70.0] and r5["value"] == 67.5 and r5["set"] == "Multi30K test2016"
    assert ("retrieval_zero_shot", "pretrained", "de", "R@5") not in rows
    assert len(saved["rows"]) == 2 + 7
    # not measured: a missing checkpoint and a run short of its updates, never run
    assert saved["not_measured"] == [
        {"experiment": "vqa_zero_shot", "init": "pretrained", "why": f"seed 1: no checkpoint {runs}/absent.pt"},
        {"experiment": "rc3", "init": "pretrained",
         "why": f"seed 1: training not finished (90 of 100 updates in {runs}/rc3_s1.pt)"}]
    assert not [c for c in runners if c[0] in ("absent.pt", "rc3_s1.pt")]
    assert saved["provenance"]["command"].startswith("unix-results crosslingual --config")
    assert saved["note"] == "Fine-tuned on English only."

    assert not (root / "RESULTS_crosslingual.md").exists()  # the README block is the table
    md = readme.read_text()
    assert "Do not edit by hand" in md
    assert "| init | metric | updates | seeds | en | de |\n|---|---|---|---|---|---|\n" \
           "| scratch | accuracy | 100 | 1, 2 | 87.50 | 37.50 |" in md  # en first whatever the config's order
    assert "| test set | init | metric | updates | seeds | en | de |\n|---|---|---|---|---|---|---|\n" \
           "| Multi30K test2016 | pretrained | R@1 | 100 | 1, 2 | 38.75 | 17.75 |\n" \
           "| Multi30K test2016 | pretrained | R@5 | 100 | 1, 2 | 67.50 | - |\n" \
           "| Multi30K test2016 | pretrained | image->text R@1 | 100 | 1, 2 | 45.00 | 22.50 |\n" \
           "| Multi30K test2016 | pretrained | text->image R@1 | 100 | 1, 2 | 32.50 | 13.00 |" in md
    assert "**rc3**" not in md
    assert "Not measured yet:\n\n- vqa_zero_shot, pretrained: seed 1: no checkpoint" in md
    assert "- rc3, pretrained: seed 1: training not finished (90 of 100 updates" in md

    text = readme.read_text()
    assert text.startswith(f"# Title\n\nintro\n{crosslingual.BEGIN}\nWritten by `")
    assert text.endswith(f"training not finished (90 of 100 updates in {runs}/rc3_s1.pt)\n{crosslingual.END}\nafter\n")
    assert "old table" not in text and "| scratch | accuracy | 100 | 1, 2 | 87.50 | 37.50 |" in text
    assert "Fine-tuned on English only." not in text


def test_a_readme_can_take_the_tables_of_some_experiments(tree, runners):
    root, runs, config, readme = tree
    assert cli.main(results_command(root, runs, config, "--readme", f"{readme}=vqa_zero_shot")) == 0
    text = readme.read_text()
    assert "**vqa_zero_shot**" in text and "| scratch | accuracy | 100 | 1, 2 | 87.50 | 37.50 |" in text
    assert "**retrieval_zero_shot**" not in text and "R@1" not in text
    assert "vqa_zero_shot, pretrained: seed 1: no checkpoint" in text and "- rc3," not in text
    with pytest.raises(SystemExit, match="--readme .*=vqa: unknown experiment"):
        cli.main(results_command(root, runs, config, "--readme", f"{readme}=vqa"))


def test_outputs_are_reused_until_the_checkpoint_changes(tree, runners):
    root, runs, config, _ = tree
    cli.main(results_command(root, runs, config))
    assert "Fine-tuned on English only." in (root / "RESULTS_crosslingual.md").read_text()  # no --readme: a .md
    assert sorted(runners) == sorted([(f"vqa_s{s}.pt", t) for s in (1, 2) for t in ("test", "test_de")] +
                                     [("ret_s1.pt", "retrieval"), ("ret_s2.pt", "retrieval")])
    runners.clear()
    cfg = json.loads(config.read_text())
    entry = cfg["vqa_zero_shot"][0]
    entry["checkpoints"].append("{RUNS}/vqa_s3.pt")
    entry["seeds"].append(3)
    config.write_text(json.dumps(cfg))
    os.utime(runs / "ret_s2.pt", ns=(0, 10**18))  # retrained: evaluated again
    cli.main(results_command(root, runs, config))
    assert sorted(runners) == [("ret_s2.pt", "retrieval"), ("vqa_s3.pt", "test"), ("vqa_s3.pt", "test_de")]
    rows = by_key(json.loads((root / "RESULTS_crosslingual.json").read_text())["rows"])
    en = rows[("vqa_zero_shot", "scratch", "en", "accuracy")]
    assert en["seeds"] == [1, 2, 3] and en["value"] == 75.0  # (100 + 75 + 50) / 3


def test_bad_readme_and_config_fail_before_evaluating(tree, runners):
    root, runs, config, readme = tree
    readme.write_text("# Title\n<!-- crosslingual-results:start -->\nno end marker\n")
    with pytest.raises(ValueError, match=f"{readme}: no '<!-- crosslingual-results:start -->' ... "
                                         "'<!-- crosslingual-results:end -->' block"):
        cli.main(results_command(root, runs, config, "--readme", str(readme)))
    assert runners == [] and not (root / "RESULTS_crosslingual.json").exists()
    assert readme.read_text() == "# Title\n<!-- crosslingual-results:start -->\nno end marker\n"
    cfg = json.loads(config.read_text())
    cfg["vqa_zero_shot"][0]["seeds"] = [1]
    config.write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match=r"crosslingual.json: vqa_zero_shot\[0\]: 2 checkpoints for 1 seeds"):
        cli.main(results_command(root, runs, config))
    config.write_text(json.dumps({"retrieval": []}))
    with pytest.raises(SystemExit, match="crosslingual.json: unknown key"):
        cli.main(results_command(root, runs, config))
