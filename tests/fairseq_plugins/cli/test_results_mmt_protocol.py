"""unix-results mmt-protocol on fake fairseq-generate outputs (--generated) and its checks."""

import json

import pytest

from fairseq_plugins.cli import results as cli
from fairseq_plugins.results import mmt_protocol as results
from unix.metrics.meteor import meteor_setup

REFS = ["ein hund läuft .", "a b c d f", "zwei &quot; männer &quot; ."]
METEOR_OPTIONS, METEOR_NOTE = meteor_setup("de")


def write_gen(path, hyps, printed=None):
    with open(path, "w") as f:
        for i, h in reversed(list(enumerate(hyps))):
            f.write(f"S-{i}\t__de__ src\nT-{i}\tref\nH-{i}\t-0.1\t{h}\nD-{i}\t-0.1\t{h}\n")
        if printed is not None:
            f.write(f"Generate test with beam=5: BLEU4 = {printed:.2f}, 1/1/1/1 (BP=1.000, ratio=1.0)\n")


@pytest.fixture
def tree(tmp_path):
    tok = tmp_path / "data" / "multi30k" / "tok"
    tok.mkdir(parents=True)
    (tok / "test_2016_flickr.lc.norm.tok.de").write_text("\n".join(REFS) + "\n")
    gen = tmp_path / "gen"
    gen.mkdir()
    # system A, one seed: every sentence right; system B, two seeds: right, and one with a wrong last token
    write_gen(gen / "A_text-only_en-de.s1.test.txt", REFS, printed=100.0)
    write_gen(gen / "B_gated_en-de.s1.test.txt", REFS, printed=100.0)
    write_gen(gen / "B_gated_en-de.s2.test.txt", [REFS[0], "a b c d e", REFS[2]])
    runs = tmp_path / "runs"
    (runs / "b2").mkdir(parents=True)
    (runs / "b2" / "device.txt").write_text("2026-12-06 10:00 | NVIDIA H200 | torch 2.11\n"
                                            "2026-12-06 11:00 | NVIDIA H200 | torch 2.11\n")
    config = tmp_path / "systems.json"
    config.write_text(json.dumps([
        {"system": "A text-only", "pair": "en-de", "task": "translation", "bin": "{BIN}", "updates": 8000,
         "device": "cpu (config)", "runs": [{"seed": 1, "dir": "{RUNS}/a1", "command": "bash train_a.sh {RUNS}/a1"}]},
        {"system": "B gated", "pair": "en-de", "task": "unix_mmt", "bin": "{BIN}", "updates": 8000,
         "runs": [{"seed": 1, "dir": "{RUNS}/b1", "command": "SEED=1 bash b.sh"},
                  {"seed": 2, "dir": "{RUNS}/b2", "command": "SEED=2 bash b.sh"}]}]))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.BEGIN}\nold table\n{results.END}\nafter\n")
    return tmp_path, config, readme


def test_rows_from_generated_outputs(tree):
    root, config, readme = tree
    out = root / "RESULTS_published_protocol.json"
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--generated", str(root / "gen"),
                  "--out", str(out), "--readme", str(readme), "--var", f"RUNS={root / 'runs'}", "--var", "BIN=unused"])
    rows = json.loads(out.read_text())
    assert [r["system"] for r in rows] == ["A text-only", "B gated"]
    a, b = rows
    for r in rows:
        assert {"system", "pair", "data", "test", "bleu", "meteor", "updates", "seeds", "bleu_per_seed", "command", "commit",
                "device"} <= set(r)
        assert r["pair"] == "en-de" and r["test"] == "test2016" and r["updates"] == 8000
        assert "unix-results mmt-protocol" in r["command"] and r["commit"]
        assert r["meteor_note"] == METEOR_NOTE
        if METEOR_OPTIONS is None:  # no java here: no METEOR, and the row says why
            assert r["meteor"] is None and r["meteor_per_seed"] is None
        else:  # no German paraphrase table in pycocoevalcap: exact + stem modules, and the note says so
            assert "paraphrase-de.gz" in r["meteor_note"] and "exact and stem" in r["meteor_note"]
            assert len(r["meteor_per_seed"]) == len(r["seeds"]) and r["meteor"] == pytest.approx(
                sum(r["meteor_per_seed"]) / len(r["seeds"]), abs=0.01)
    assert a["bleu"] == 100.0 and a["bleu_per_seed"] == [100.0] and a["seeds"] == [1]
    assert a["device"] == "cpu (config)" and a["train_commands"] == [f"bash train_a.sh {root / 'runs'}/a1"]
    # seed 2: one sentence with its last token wrong among 3; by hand, hypothesis/reference n-grams
    # 1: 13/14, 2: 10/11, 3: 7/8, 4: 4/5 (same length, BP = 1)
    by_hand = 100 * (13 / 14 * 10 / 11 * 7 / 8 * 4 / 5) ** 0.25
    assert b["bleu_per_seed"][0] == 100.0 and b["bleu_per_seed"][1] == pytest.approx(by_hand, abs=0.01)
    assert b["bleu"] == pytest.approx((100.0 + by_hand) / 2, abs=0.01) and b["seeds"] == [1, 2]
    assert b["fairseq_printed_bleu_per_seed"] == [100.0, None]
    if METEOR_OPTIONS is not None:  # the references themselves score 100, a wrong token less
        assert a["meteor"] == b["meteor_per_seed"][0] == 100.0 and b["meteor_per_seed"][1] < 100.0
    assert b["device"] == "unknown; NVIDIA H200, torch 2.11"
    md = (root / "RESULTS_published_protocol.md").read_text()
    meteor = "-" if a["meteor"] is None else f"{a['meteor']:.2f}"
    assert f"| A text-only | en-de | constrained | 100.00 | 100.00 (seed 1) | {meteor} | 8000 | 10 | cpu (config) |" in md
    assert "published: Transformer-tiny, text-only (Revisit-MMT) | en-de | constrained | 41.02" in md and "41.96" in md
    assert "Do not edit by hand" in md and "paraphrase-de.gz" in md
    assert "`train_commands` and `generate_commands` in RESULTS_published_protocol.json" in md
    text = readme.read_text()
    assert text.startswith("intro\n" + results.BEGIN + "\n") and text.endswith(results.END + "\nafter\n")
    assert "old table" not in text and "| B gated | en-de |" in text


def test_unfinished_runs_are_listed_not_scored(tree, tmp_path):
    root, config, _ = tree
    out = root / "R.json"
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--out", str(out),
                  "--var", f"RUNS={root / 'runs'}", "--var", "BIN=unused"])
    assert json.loads(out.read_text()) == []
    md = (root / "R.md").read_text()
    assert "- A text-only (en-de): seed 1: no checkpoints at" in md
    assert "- B gated (en-de): seed 1: no checkpoints at" in md


def test_the_data_must_be_the_tok_bpe_preparation_of_the_pair(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        results.check_protocol(str(tmp_path), "en-de")
    (tmp_path / "manifest.json").write_text(json.dumps({"protocol": "spm", "pairs": ["en-de"]}))
    with pytest.raises(ValueError, match="protocol 'spm'"):
        results.check_protocol(str(tmp_path), "en-de")
    (tmp_path / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-fr"}))
    with pytest.raises(ValueError, match="pair 'en-fr'"):
        results.check_protocol(str(tmp_path), "en-de")
    (tmp_path / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-de"}))
    results.check_protocol(str(tmp_path), "en-de")
    results.check_protocol(str(tmp_path), "en-de", "extra: pre-trained on Task 2 captions")  # fine-tuned on Task 1
    (tmp_path / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-de",
                                                        "extra_data": {"kind": "back-translation"}}))
    with pytest.raises(ValueError, match="labelled data='constrained' but the data has extra back-translation pairs"):
        results.check_protocol(str(tmp_path), "en-de")
    results.check_protocol(str(tmp_path), "en-de", "extra: back-translation")
    # Task 1 in a back-translation model's dictionary (unix-prepare-task2 bt-finetune): its model saw the extra data
    (tmp_path / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-de", "finetune_of": {
        "extra_data": {"kind": "back-translation"}}}))
    with pytest.raises(ValueError, match="but the data has extra back-translation pairs"):
        results.check_protocol(str(tmp_path), "en-de")
    results.check_protocol(str(tmp_path), "en-de", "extra: back-translation, fine-tuned on Task 1")


def test_readme_markers(tmp_path):
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="README.md: no '<!-- published-protocol-results: begin -->'"):
        results.replace_block(str(tmp_path / "README.md"), "table\n", results.BEGIN, results.END)


def test_the_readme_command_fills_every_run_of_the_published_table():
    """examples/multi30k_mmt: the README's results command names every {VAR} of systems_published.json;
    rows on the back-translated data (and Task 1 after it) are labelled as extra data, the others constrained."""
    import re
    from pathlib import Path

    from unix.provenance import load_config

    example = Path(__file__).resolve().parents[3] / "examples" / "multi30k_mmt"
    readme = (example / "README.md").read_text()
    command = readme[readme.index("unix-results mmt-protocol --config"):].split("```")[0]
    variables = re.findall(r"--var (\w+=\S+)", command)
    systems = load_config(str(example / "systems_published.json"), variables)
    assert {s["pair"] for s in systems} == {"en-de", "en-fr"} and len(systems) >= 8
    for s in systems:
        extra = s["bin"].endswith(("_bt", "_btft")) or any("--finetune-from-model" in r["command"] for r in s["runs"])
        assert (s.get("data", results.CONSTRAINED) == results.CONSTRAINED) != extra, s["system"]
        for run in s["runs"]:
            assert f"SEED={run['seed']}" in run["command"] or run["seed"] == 1
            assert run["dir"].split("/")[-1] in run["command"]


def test_incongruent_decoding_of_a_system_with_images(tree):
    """A system decoding with image features is also scored with the photos shuffled, on the sentences with
    a photo, with a paired bootstrap interval of the difference."""
    root, _, _ = tree
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "test.images.txt").write_text("1.jpg\n\n3.jpg\n")  # sentences 0 and 2 have a photo
    gen = root / "gen"
    # right photos: both photo sentences right; shuffled: sentence 2 loses its last two tokens
    write_gen(gen / "C_tokens_en-de.s1.test.shuffled.txt", [REFS[0], REFS[1], "zwei &quot; männer"])
    write_gen(gen / "C_tokens_en-de.s1.test.txt", REFS)
    config = root / "c.json"
    config.write_text(json.dumps([
        {"system": "C tokens", "pair": "en-de", "task": "unix_mmt", "bin": str(bin_dir), "updates": 8000,
         "generate_args": ["--image-features", "F", "--image-root", "I"],
         "runs": [{"seed": 1, "dir": "x", "command": "bash c.sh"}]}]))
    out = root / "C.json"
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--generated", str(gen),
              "--out", str(out)])
    use = json.loads(out.read_text())[0]["image_use_per_seed"][0]
    # sentences 0 and 2: 4 + 5 = 9 reference tokens; shuffled output 4 + 3 = 7 tokens whose 1..4-grams all
    # match (7/7, 5/5, 3/3, 1/1): BLEU = the brevity penalty exp(1 - 9/7)
    import math
    assert use["n"] == 2 and use["bleu"] == 100.0
    assert use["bleu_shuffled"] == pytest.approx(100 * math.exp(1 - 9 / 7), abs=0.01)
    assert use["delta"] == pytest.approx(100 - use["bleu_shuffled"], abs=0.01)
    lo, hi = use["delta_ci95"]
    assert 0 <= lo <= use["delta"] <= hi <= 100
    md = (root / "C.md").read_text()
    assert "| C tokens | en-de | 1 | 2 | 100.00 |" in md and "Use of the image" in md


def test_average_updates_picks_the_update_checkpoints(tmp_path):
    """A run on more data (back-translation: epochs 6x longer) averages its last update checkpoints."""
    import torch
    run = tmp_path / "run"
    run.mkdir()
    state = lambda n: {"model": {"w": torch.tensor([float(n)])}, "optimizer_history": [{"num_updates": n}]}  # noqa: E731
    torch.save(state(8000), run / "checkpoint_last.pt")
    for epoch, n in [(9, 6700), (10, 7440)]:
        torch.save(state(n), run / f"checkpoint{epoch}.pt")
    system = {"system": "S", "pair": "en-de", "updates": 8000, "average": 3,
              "runs": [{"seed": 1, "dir": str(run)}]}
    assert "2 epoch checkpoints, 3 wanted" in results.not_done(system)
    system["average_updates"] = True
    assert "0 update checkpoints, 3 wanted" in results.not_done(system)
    for n in (7752, 7876, 8000):
        torch.save(state(n), run / f"checkpoint_11_{n}.pt")
    assert results.not_done(system) == ""
    row = {"average": 3, "average_updates": True}
    assert results.avg_kind(row) == " (update checkpoints)" and results.avg_kind({"average": 10}) == ""


def test_a_run_trained_elsewhere_counts_by_the_average_it_brought_back(tmp_path):
    """A run directory with only average.pt + average.json (unix-average-checkpoints --record on the machine
    that trained it) and device.txt: scored when its record matches the config, else listed as not done."""
    import torch

    from fairseq_plugins.results.mmt import run_average

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}}, run / "average.pt")
    record = {"file": "average.pt", "inputs": ["checkpoint23.pt", "checkpoint32.pt"], "n": 10, "kind": "epoch",
              "updates": 8000, "fp16": True}
    (run / "average.json").write_text(json.dumps(record))
    system = {"system": "S", "pair": "en-de", "updates": 8000, "runs": [{"seed": 1, "dir": str(run)}]}
    assert results.not_done(system) == ""
    assert run_average(str(run), system, str(tmp_path / "unused.pt")) == (str(run / "average.pt"), record["inputs"],
                                                                            8000)
    assert not (tmp_path / "unused.pt").exists()
    assert "10 epoch checkpoints, 10 update ones wanted" in results.not_done(dict(system, average_updates=True))
    (run / "average.json").write_text(json.dumps(dict(record, updates=4000)))
    assert "training not finished (4000 of 8000 updates" in results.not_done(system)


def imported_run(root, name):
    """A run directory as a GPU machine brings it back: average.pt + average.json of a finished run."""
    import torch

    run = root / "runs" / name
    run.mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(1)}}, run / "average.pt")
    (run / "average.json").write_text(json.dumps({"file": "average.pt", "inputs": ["checkpoint23.pt", "checkpoint32.pt"],
                                                  "n": 10, "kind": "epoch", "updates": 8000}))
    return run


def tok_bpe_bin(root, name):
    """A binarized-data directory whose manifest says it is the tok-bpe preparation of en-de."""
    bin_dir = root / name
    bin_dir.mkdir()
    (bin_dir / "manifest.json").write_text(json.dumps({"protocol": "tok-bpe", "pair": "en-de"}))
    return bin_dir


@pytest.mark.parametrize("work", [None, "scratch/pub"])
def test_decoded_outputs_are_reused_until_the_checkpoints_change(tree, monkeypatch, work):
    """The command run again decodes nothing new; a re-imported (newer) average is decoded again. The outputs
    live in eval/published_protocol/ next to --out, or in --work (and then nothing is written next to --out)."""
    import os

    root, _, _ = tree
    run, bin_dir = imported_run(root, "t1"), tok_bpe_bin(root, "bin_t")
    config = root / "t.json"
    config.write_text(json.dumps([{"system": "T text-only", "pair": "en-de", "task": "translation", "bin": str(bin_dir),
                                   "updates": 8000, "runs": [{"seed": 1, "dir": str(run), "command": "bash t.sh"}]}]))
    calls, outputs = [], []

    def fake_generate(cmd, out_path, keep_stderr=True):
        calls.append(cmd)
        outputs.append(str(out_path))
        write_gen(out_path, REFS)
        return list(cmd)

    monkeypatch.setattr(results, "run_generate", fake_generate)
    argv = ["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--out", str(root / "T.json")]
    where = root / "eval" / "published_protocol"
    if work:
        where = root / work
        argv += ["--work", str(where)]
    cli.main(argv)
    cli.main(argv)
    assert len(calls) == 1 and str(run / "average.pt") in calls[0] and outputs[0].startswith(str(where))
    assert (root / "eval").exists() == (work is None)
    row = json.loads((root / "T.json").read_text())[0]
    assert row["bleu"] == 100.0 and row["averaged_per_seed"] == ["checkpoint23.pt..checkpoint32.pt"]
    assert row["updates"] == 8000 and "--path " + str(run / "average.pt") in row["generate_commands"][0]
    st = os.stat(run / "average.pt")
    os.utime(run / "average.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cli.main(argv)
    assert len(calls) == 2
    assert not list(where.glob("*.part"))


def test_a_system_with_one_seed_trained_gets_a_row_that_names_the_other(tree, monkeypatch):
    """Seed 1 trained, seed 2 not: the row has seed 1 only and marks seed 2 pending, and the list below
    says why seed 2 is not in it."""
    root, _, _ = tree
    run, bin_dir = imported_run(root, "p1"), tok_bpe_bin(root, "bin_p")
    config = root / "p.json"
    config.write_text(json.dumps([{"system": "P text-only", "pair": "en-de", "task": "translation", "bin": str(bin_dir),
                                   "updates": 8000, "runs": [{"seed": 1, "dir": str(run), "command": "SEED=1 bash p.sh"},
                                                             {"seed": 2, "dir": str(root / "runs" / "p2"),
                                                              "command": "SEED=2 bash p.sh"}]}]))
    monkeypatch.setattr(results, "run_generate", lambda cmd, out_path, keep_stderr=True: write_gen(out_path, REFS))
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--out", str(root / "P.json")])
    (row,) = json.loads((root / "P.json").read_text())
    assert row["seeds"] == [1] and row["seeds_pending"] == [2] and row["bleu_per_seed"] == [100.0]
    assert row["train_commands"] == ["SEED=1 bash p.sh"]
    md = (root / "P.md").read_text()
    assert "| P text-only | en-de | constrained | 100.00 | 100.00 (seed 1); seed 2 pending |" in md
    assert f"- P text-only (en-de): seed 2: no checkpoints at {root / 'runs' / 'p2'}" in md


def test_seeds_scored_earlier_are_carried_when_their_checkpoints_are_not_here(tree, monkeypatch):
    """A results file outlives the machine its runs were on: a seed scored into --out earlier whose run directory
    holds no checkpoint keeps its score and the commit that scored it; a seed trained since is scored beside it;
    a seed whose run is under way again here is pending, not carried."""
    root, _, readme = tree
    run2, bin_dir = imported_run(root, "q2"), tok_bpe_bin(root, "bin_q")
    config = root / "q.json"
    runs = [{"seed": 1, "dir": str(root / "runs" / "q1"), "command": "SEED=1 bash q.sh"},
            {"seed": 2, "dir": str(run2), "command": "SEED=2 bash q.sh"},
            {"seed": 3, "dir": str(root / "runs" / "q3"), "command": "SEED=3 bash q.sh"}]
    config.write_text(json.dumps([{"system": "Q gated", "pair": "en-de", "task": "unix_mmt", "bin": str(bin_dir),
                                   "updates": 8000, "runs": runs}]))
    out = root / "Q.json"
    earlier = {"system": "Q gated", "pair": "en-de", "data": "constrained", "test": "test2016", "bleu": 40.0,
               "meteor": 57.0, "updates": 8000, "seeds": [1, 3], "bleu_per_seed": [41.0, 39.0],
               "command": "unix-results mmt-protocol ...", "commit": "abc1234", "device": "cpu: old machine",
               "meteor_per_seed": [58.0, 56.0], "fairseq_printed_bleu_per_seed": [41.0, 39.0],
               "averaged_per_seed": ["checkpoint53.pt..checkpoint62.pt"] * 2, "generate_commands": ["gen1", "gen3"],
               "image_use_per_seed": None}
    out.write_text(json.dumps([earlier]))
    (root / "runs" / "q3").mkdir()
    (root / "runs" / "q3" / "checkpoint_last.pt").write_bytes(b"")  # seed 3 trains again here
    from fairseq_plugins.results import mmt

    monkeypatch.setattr(mmt, "short_of", lambda path, updates: f"training not finished (100 of {updates} updates)")
    monkeypatch.setattr(results, "run_generate", lambda cmd, out_path, keep_stderr=True: write_gen(out_path, REFS))
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--out", str(out),
              "--readme", str(readme)])
    (row,) = json.loads(out.read_text())
    assert row["seeds"] == [1, 2] and row["seeds_pending"] == [3]
    assert row["bleu_per_seed"] == [41.0, 100.0] and row["bleu"] == 70.5
    assert row["scored_at_per_seed"][0] == "abc1234" and row["scored_at_per_seed"][1] == row["commit"] != "abc1234"
    assert row["device_per_seed"][0] == "cpu: old machine" and row["generate_commands"][0] == "gen1"
    assert row["averaged_per_seed"] == ["checkpoint53.pt..checkpoint62.pt", "checkpoint23.pt..checkpoint32.pt"]
    assert row["train_commands"] == ["SEED=1 bash q.sh", "SEED=2 bash q.sh"]
    if METEOR_OPTIONS is not None:
        assert row["meteor_per_seed"] == [58.0, 100.0]
    md = out.with_suffix(".md").read_text()
    assert "41.00 (seed 1, scored at abc1234), 100.00 (seed 2); seed 3 pending" in md
    assert "carried from the results file" in md and "- Q gated (en-de): seed 3: training not finished" in md
    # the README gets the runs not in the table in one paragraph; the .md beside the JSON says why
    assert "Not in the table yet (why: Q.md): Q gated (en-de): seed 3.\n" in readme.read_text()
    assert "training not finished" not in readme.read_text()
    # the command run again with seed 2's run gone too: both seeds carried, the row's commit stays theirs
    import shutil

    shutil.rmtree(run2)
    cli.main(["mmt-protocol", "--config", str(config), "--data", str(root / "data"), "--out", str(out)])
    (again,) = json.loads(out.read_text())
    assert again["bleu_per_seed"] == [41.0, 100.0] and again["scored_at_per_seed"] == row["scored_at_per_seed"]
