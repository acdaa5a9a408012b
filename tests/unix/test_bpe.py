"""unix.data.bpe: subword-nmt joint BPE as the published Multi30K systems used it."""

from unix.data.bpe import apply_bpe_file, learn_joint_bpe, load_bpe, remove_bpe


def test_learn_apply_and_remove(tmp_path):
    (tmp_path / "a.en").write_text("low lower lowest\nlow low\n")
    (tmp_path / "a.de").write_text("newer newest\nwider\n")
    codes = learn_joint_bpe([str(tmp_path / "a.en"), str(tmp_path / "a.de")], str(tmp_path / "codes"), merges=3)
    lines = (tmp_path / "codes").read_text().splitlines()
    # word counts over both files: low 3, lower, lowest, newer, newest, wider 1 each. Most frequent pairs:
    # "l o" 5 (low x3, lower, lowest); then "w e" 4 (lower, lowest, newer, newest) before "o w</w>" 3;
    # then "lo w</w>" 3 (low x3) before "we r</w>" 2
    assert lines[0] == "#version: 0.2" and lines[1:] == ["l o", "w e", "lo w</w>"]
    bpe = load_bpe(codes)
    assert bpe.process_line("low lowest newer\n") == "low lo@@ we@@ s@@ t n@@ e@@ we@@ r\n"
    n = apply_bpe_file(bpe, str(tmp_path / "a.de"), str(tmp_path / "b.de"))
    assert n == 2 and [remove_bpe(l) for l in (tmp_path / "b.de").read_text().splitlines()] == ["newer newest", "wider"]


def test_remove_bpe_is_fairseqs_post_process():
    from fairseq.data import data_utils

    for s in ["play@@ house for a boy", "sa@@ f@@ ti@@ g-@@ grünes gras", "end@@"]:
        assert remove_bpe(s) == data_utils.post_process(s, "subword_nmt")
