"""unix-score-mmt and unix.metrics.bleu."""

import json

import pytest

from unix.cli import score_mmt
from tests.conftest import SHARED_DATA, requires_shared_data
from unix.metrics.bleu import multi30k_tokenize, ordered, read_generate_output, sacre_bleu, tokenized_bleu


def write_gen(path, hyps):
    with open(path, "w") as f:
        for i, h in reversed(list(enumerate(hyps))):  # fairseq prints in batch order, not id order
            f.write(f"S-{i}\tsrc\nH-{i}\t-0.1\tpieces\nD-{i}\t-0.1\t{h}\n")


def test_tokenizer_matches_release_conventions():
    assert multi30k_tokenize('Ein Kind mit der Nummer "93" fährt Ski.', "de") == \
        "ein kind mit der nummer &quot; 93 &quot; fährt ski ."


def test_bleu_hand_checked():
    assert sacre_bleu(["a b c d"], ["a b c d"])["bleu"] == 100.0
    # last token wrong: n-gram precisions 4/5, 3/4, 2/3, 1/2, same length (BP = 1)
    # BLEU = (0.8 * 0.75 * 2/3 * 0.5) ** (1/4) = 0.2 ** 0.25 = 0.66874
    res = tokenized_bleu(["A b c d e"], ["a b c d f"], "en")
    assert res["n"] == 1 and res["bleu"] == pytest.approx(66.87, abs=0.01)


def test_missing_hypothesis_is_an_error(tmp_path):
    write_gen(tmp_path / "gen.txt", ["x", "y"])
    hyps = read_generate_output(str(tmp_path / "gen.txt"))
    with pytest.raises(ValueError, match=r"1 of 3 sentences have no hypothesis \(first: id 2\)"):
        ordered(hyps, 3, "gen.txt")


def test_more_hypotheses_than_references_is_an_error(tmp_path):
    """A 1,000-line output scored against 120 references (a stale run) is refused, not cut to 120."""
    write_gen(tmp_path / "gen.txt", ["x", "y", "z"])
    hyps = read_generate_output(str(tmp_path / "gen.txt"))
    with pytest.raises(ValueError, match=r"gen.txt: 3 hypotheses \(ids up to 2\) but 2 references"):
        ordered(hyps, 2, "gen.txt")


def test_score_script_with_subset(tmp_path, capsys):
    refs = ["Ein Hund läuft.", "Eine Katze schläft.", "Zwei Männer spielen Fußball."]
    (tmp_path / "ref.de").write_text("\n".join(refs) + "\n")
    (tmp_path / "ref.tok.de").write_text("\n".join(multi30k_tokenize(r, "de") for r in refs) + "\n")
    (tmp_path / "images.txt").write_text("a.jpg\n\nb.jpg\n")
    write_gen(tmp_path / "gen.txt", [refs[0], "Etwas anderes.", refs[2]])
    args = [str(tmp_path / "gen.txt"), "--ref", str(tmp_path / "ref.de"), "--ref-tok", str(tmp_path / "ref.tok.de"),
            "--lang", "de", "--json"]
    score_mmt.main(args + ["--subset-image-list", str(tmp_path / "images.txt")])
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 2 and res["tokenized_bleu"]["bleu"] == 100.0 and res["sacrebleu"]["bleu"] == 100.0
    score_mmt.main(args)
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 3 and res["tokenized_bleu"]["bleu"] < 100.0


@requires_shared_data("multi30k", "tok")
@pytest.mark.parametrize("lang", ["de", "en"])
def test_tokenization_reproduces_the_release(lang):
    """multi30k_tokenize is also the pipeline's preprocessing of a tok-bpe model (TextCodec)."""
    m30k = SHARED_DATA / "multi30k"
    raw = (m30k / f"test_2016_flickr.{lang}").read_text(encoding="utf-8").splitlines()
    tok = (m30k / "tok" / f"test_2016_flickr.lc.norm.tok.{lang}").read_text(encoding="utf-8").splitlines()
    same = sum(multi30k_tokenize(r, lang) == t.strip() for r, t in zip(raw, tok))
    assert same == len(raw) == 1000


def test_tokenized_output_is_scored_as_it_is(tmp_path, capsys):
    """--tokenized (tok-bpe protocol): no lowercasing, no re-tokenization; hand-checked value."""
    refs_tok = ["ein hund läuft .", "a b c d f", "zwei &quot; männer &quot; ."]
    (tmp_path / "ref.tok.de").write_text("\n".join(refs_tok) + "\n")
    write_gen(tmp_path / "gen.txt", refs_tok)
    args = [str(tmp_path / "gen.txt"), "--tokenized", "--ref-tok", str(tmp_path / "ref.tok.de"), "--json"]
    score_mmt.main(args)
    res = json.loads(capsys.readouterr().out)
    assert res == {"n": 3, "tokenized_bleu": {"bleu": 100.0, "detail": res["tokenized_bleu"]["detail"], "n": 3}}
    # one sentence: last token wrong, BLEU = (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 66.87 (as tokenized_bleu above)
    write_gen(tmp_path / "one.txt", ["x", "a b c d e", "y"])
    (tmp_path / "images.txt").write_text("\nb.jpg\n\n")
    score_mmt.main([str(tmp_path / "one.txt"), "--tokenized", "--ref-tok", str(tmp_path / "ref.tok.de"), "--json",
                    "--subset-image-list", str(tmp_path / "images.txt")])
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 1 and res["tokenized_bleu"]["bleu"] == pytest.approx(66.87, abs=0.01)
    # the hypothesis is not lowercased or re-tokenized: "Ein" and an unescaped quote do not match
    write_gen(tmp_path / "case.txt", ["Ein hund läuft .", "a b c d f", 'zwei " männer " .'])
    tok = score_mmt.score(str(tmp_path / "case.txt"), None, None, str(tmp_path / "ref.tok.de"), tokenized=True)
    assert tok["tokenized_bleu"]["bleu"] < 100.0 and "sacrebleu" not in tok
    score_mmt.main([str(tmp_path / "gen.txt"), "--tokenized", "--ref-tok", str(tmp_path / "ref.tok.de")])
    assert "(a) tokenized BLEU-4" in capsys.readouterr().out


def test_tokenized_needs_the_tokenized_references(tmp_path, capsys):
    with pytest.raises(SystemExit):
        score_mmt.main([str(tmp_path / "gen.txt"), "--tokenized"])
    assert "give --ref-tok" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        score_mmt.main([str(tmp_path / "gen.txt"), "--ref", "x"])
    assert "--lang" in capsys.readouterr().err
