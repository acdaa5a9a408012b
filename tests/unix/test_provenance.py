"""unix.provenance.git_commit: the commit stamped into results files says when the code was not committed."""

import subprocess

import pytest

from unix import provenance


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_marks_uncommitted_changes(tmp_path, monkeypatch):
    try:
        git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "--short", "HEAD")
    monkeypatch.setattr(provenance, "ROOT", str(tmp_path))
    assert provenance.git_commit() == head
    (tmp_path / "new.txt").write_text("untracked files do not count\n")
    assert provenance.git_commit() == head
    (tmp_path / "RESULTS.md").write_text("a table\n")
    git(tmp_path, "add", "RESULTS.md")
    git(tmp_path, "commit", "-q", "-m", "two")
    head = git(tmp_path, "rev-parse", "--short", "HEAD")
    (tmp_path / "RESULTS.md").write_text("a results table being rewritten is not code\n")
    assert provenance.git_commit() == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.git_commit() == head + "+dirty"
    assert f"at commit `{head}+dirty`" in provenance.provenance()
    monkeypatch.setattr(provenance, "ROOT", str(tmp_path / "missing"))
    assert provenance.git_commit() == "unknown"


def test_results_work_dir_is_per_results_file(tmp_path):
    a = provenance.results_work_dir(str(tmp_path / "RESULTS.md"))
    b = provenance.results_work_dir(str(tmp_path / "RESULTS_greedy.md"))
    assert a == str(tmp_path / "eval" / "RESULTS") and b == str(tmp_path / "eval" / "RESULTS_greedy")
    assert (tmp_path / "eval" / "RESULTS").is_dir() and (tmp_path / "eval" / "RESULTS_greedy").is_dir()


def test_checkpoint_labels():
    assert provenance.checkpoint_labels(["a.pt", "b.pt"], None) == ["a.pt", "b.pt"]
    assert provenance.checkpoint_labels(["a.pt"], ["mine"]) == ["mine"]
    with pytest.raises(SystemExit, match="2 checkpoints \\(--path\\) but 1 labels"):
        provenance.checkpoint_labels(["a.pt", "b.pt"], ["one"])
