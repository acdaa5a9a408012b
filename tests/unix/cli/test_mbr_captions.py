"""unix-mbr-captions: MBR reranking of a saved fairseq-generate --nbest output."""

import math

import pytest

from unix.cli import mbr_captions
from unix.data.captions import CaptionDataError, parse_generate_output
from unix.generation.mbr import mbr_order, words

NBEST = {  # sample id -> (text, positional scores) in beam order
    0: [("a dog", "-0.1 -0.2 -0.1"),
        ("a brown dog runs on the grass", "-0.5 -1 -1 -1 -1 -1 -1 -0.5"),
        ("a brown dog runs on grass", "-0.5 -1 -1 -1 -1 -1.2 -0.5"),
        ("a brown dog runs in the grass", "-0.5 -1 -1 -1 -1.5 -1 -1 -0.5")],
    1: [("two children play .", "-0.1 -0.1 -0.1 -0.1 -0.1"),
        ("two kids play .", "-0.3 -0.3 -0.3 -0.3 -0.3")],
}


def write_nbest(path, nbest=NBEST, drop_p=False):
    lines = []
    for sid, hyps in nbest.items():
        lines += [f"S-{sid}\t__en__", f"T-{sid}\tref {sid}"]
        for text, p in hyps:
            score = sum(map(float, p.split())) / len(p.split())
            lines += [f"H-{sid}\t{score:.4f}\t{text}", f"D-{sid}\t{score:.4f}\t{text}"]
            if not drop_p:
                lines.append(f"P-{sid}\t{p}")
    lines.append("Generate valid_en with beam=4: CIDEr-D = 1.00")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("utility,alpha", [("bleu", 0.0), ("bleu", 1.0), ("cider", 0.0)])
def test_chooses_the_mbr_hypothesis_of_every_sample_and_writes_a_generate_output(tmp_path, utility, alpha):
    src, out = write_nbest(tmp_path / "nbest.txt"), tmp_path / "mbr.txt"
    assert mbr_captions.main(["--generate-output", str(src), "--utility", utility, "--alpha", str(alpha),
                              "--out", str(out)]) == 0
    gen = parse_generate_output(str(out))
    assert sorted(gen) == [0, 1]
    for sid, hyps in NBEST.items():
        order, _ = mbr_order([words(t) for t, _ in hyps], [math.log(2) * sum(map(float, p.split())) for _, p in hyps],
                             utility, alpha)
        assert gen[sid]["D"] == hyps[order[0]][0]
        assert gen[sid]["S"] == "__en__" and gen[sid]["T"] == f"ref {sid}"
    if alpha == 0.0:
        assert gen[0]["D"] != "a dog"  # uniform weights: the consensus caption, not the model's favourite


def test_candidates_limits_the_hypotheses_considered(tmp_path):
    src, out = write_nbest(tmp_path / "nbest.txt"), tmp_path / "mbr.txt"
    mbr_captions.main(["--generate-output", str(src), "--alpha", "0", "--candidates", "1", "--out", str(out)])
    gen = parse_generate_output(str(out))
    assert gen[0]["D"] == "a dog" and gen[1]["D"] == "two children play ."


def test_hypotheses_without_positional_scores_are_refused_with_file_and_line(tmp_path):
    src = write_nbest(tmp_path / "nbest.txt", drop_p=True)
    with pytest.raises(CaptionDataError, match=r"nbest.txt:3: H-0 has no P- line"):
        mbr_captions.main(["--generate-output", str(src), "--out", str(tmp_path / "o.txt")])
    bad = tmp_path / "bad.txt"
    bad.write_text("S-0\t__en__\nP-0\t-0.1 -0.2\n", encoding="utf-8")
    with pytest.raises(CaptionDataError, match=r"bad.txt:2: P-0 line without its H-0 line"):
        mbr_captions.main(["--generate-output", str(bad), "--out", str(tmp_path / "o.txt")])
    bad.write_text("H-0\t-0.1\ta dog\nP-0\t-0.1 x\n", encoding="utf-8")
    with pytest.raises(CaptionDataError, match=r"bad.txt:2: P-0 scores are not numbers"):
        mbr_captions.main(["--generate-output", str(bad), "--out", str(tmp_path / "o.txt")])


def test_weights_by_normalised_score_or_total_log_probability(tmp_path):
    """A sharp weighting keeps the evidence's favourite: by total log-probability and by fairseq's
    length-normalised score "a dog" is the most probable candidate of sample 0 in both."""
    src = write_nbest(tmp_path / "nbest.txt")
    for weights in ("logprob", "score"):
        out = tmp_path / f"{weights}.txt"
        mbr_captions.main(["--generate-output", str(src), "--weights", weights, "--alpha", "100", "--out", str(out)])
        assert parse_generate_output(str(out))[0]["D"] == "a dog"
    samples = mbr_captions.read_nbest(str(src))
    assert samples[1]["hyps"][1]["logprob"] == pytest.approx(-1.5 * math.log(2))  # printed in base 2
    assert float(samples[1]["hyps"][1]["score"]) == pytest.approx(-0.3)


def test_evidence_from_another_output_decides(tmp_path):
    src = write_nbest(tmp_path / "nbest.txt")
    samples = {0: [("a brown dog runs in the grass", "-1 -1 -1 -1 -1 -1 -1 -1"), ("a dog in the grass", "-1 -1 -1")],
               1: [("two kids play .", "-1 -1 -1 -1")]}
    ev = write_nbest(tmp_path / "samples.txt", samples)
    out = tmp_path / "mbr.txt"
    mbr_captions.main(["--generate-output", str(src), "--evidence", str(ev), "--out", str(out)])
    gen = parse_generate_output(str(out))
    assert gen[0]["D"] == "a brown dog runs in the grass" and gen[1]["D"] == "two kids play ."
    del samples[1]
    write_nbest(ev, samples)
    with pytest.raises(CaptionDataError, match=r"samples.txt: no hypothesis for sample id 1"):
        mbr_captions.main(["--generate-output", str(src), "--evidence", str(ev), "--out", str(out)])
