"""unix.evaluation.translation_test on a tiny Multi30K tree: which sacreBLEU a model's card gets."""

import pytest

from unix.evaluation import translation_test
from unix.metrics.bleu import sacre_bleu

SOURCES = ["A dog runs.", "Two men \"talk\"."]
REFS = ["Ein Hund rennt.", "Zwei Männer \"reden\"."]
REFS_TOK = ["ein hund rennt .", "zwei männer &quot; reden &quot; ."]


class FakeTranslator:
    """Writes the reference, lowercased or not, as a model trained on that text would at best."""

    def __init__(self, lowercase: bool):
        self.config = {"preprocess": {"lowercase": True} if lowercase else None}  # as a model directory's

    def translate(self, sources, images=None, src="en", tgt="de", **_):
        assert len(images) == len(sources) == 2
        return [r.lower() if self.config["preprocess"] else r for r in REFS]


@pytest.fixture
def data(tmp_path):
    m30k = tmp_path / "multi30k"
    (m30k / "tok").mkdir(parents=True)
    (m30k / "image_splits").mkdir()
    (tmp_path / "flickr8k" / "images").mkdir(parents=True)
    (m30k / "test_2016_flickr.en").write_text("\n".join(SOURCES) + "\n")
    (m30k / "test_2016_flickr.de").write_text("\n".join(REFS) + "\n")
    (m30k / "tok" / "test_2016_flickr.lc.norm.tok.de").write_text("\n".join(REFS_TOK) + "\n")
    (m30k / "image_splits" / "test_2016_flickr.txt").write_text("1.jpg\n2.jpg\n")
    return str(tmp_path)


def test_a_lowercasing_model_is_scored_with_lowercased_sacrebleu(data):
    r = translation_test(FakeTranslator(lowercase=True), data)
    assert r.scores == {"BLEU (tok)": 100.0, "sacreBLEU (lowercased)": 100.0}
    r = translation_test(FakeTranslator(lowercase=False), data)
    assert r.scores == {"BLEU (tok)": 100.0, "sacreBLEU": 100.0}


def test_sacrebleu_lowercase_option():
    # "ein hund rennt ." against "Ein Hund rennt .": cased, 2 of 4 unigrams and 1 of 3 bigrams match, no
    # 3- or 4-gram: sacreBLEU's exp smoothing gives a low score; lowercased, every n-gram matches
    assert sacre_bleu(["ein hund rennt ."], ["Ein Hund rennt ."], lowercase=True)["bleu"] == 100.0
    assert sacre_bleu(["ein hund rennt ."], ["Ein Hund rennt ."])["bleu"] < 50.0
