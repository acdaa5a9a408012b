"""Task ``unix_colour_test``: a photo + a language tag -> the photo's colour named in that language.

README's "Add a task" example: a new image task, its data included, as a subclass of ``UnixImageTask``
(which loads the text pair + image list, checks the images, builds the model and the validation
generator, and validation-by-generation: ``--eval-metric accuracy``). ``tests/fairseq_plugins/test_new_task.py`` trains
it (``fairseq-train --user-dir tests/fairseq_plugins/colour_task``) and evaluates it (fairseq-generate).
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from fairseq.tasks import register_task

import fairseq_plugins  # noqa: F401  (registers the unix model and its sizes, --arch unix_tiny)
from fairseq_plugins.tasks.base import UnixImageTask, UnixImageTaskConfig


def prepare(root: Path, langs=("en", "de", "fr"), held_out: str = "square") -> Path:
    """Draw 16 photos (4 colours x 4 shapes, tests/caption_data.py) and binarize one sample per
    (photo, language): source ``__de__``, target ``rot``. Photos of shape ``held_out`` are ``valid``."""
    from tests.caption_data import COLORS, SHAPES, draw

    raw, out = root / "raw", root / "bin"
    for d in (raw, out, root / "images"):
        d.mkdir(parents=True, exist_ok=True)
    names = {c: dict(zip(("en", "de", "fr", "cs"), (c, *COLORS[c][:3]))) for c in COLORS}  # red: en red, de rot
    rows = {"train": [], "valid": []}
    for c in COLORS:
        for s in SHAPES:
            draw(root / "images" / f"{c}_{s}.jpg", COLORS[c][3], s)
            rows["valid" if s == held_out else "train"] += [(f"__{lg}__", names[c][lg], f"{c}_{s}.jpg") for lg in langs]
    words = [f"__{lg}__" for lg in langs] + sorted({names[c][lg] for c in COLORS for lg in langs})
    (out / "dict.txt").write_text("".join(f"{w} 1\n" for w in words), encoding="utf-8")
    for split, samples in rows.items():
        for k, suffix in enumerate(("tag", "colour")):
            (raw / f"{split}.{suffix}").write_text("".join(r[k] + "\n" for r in samples), encoding="utf-8")
        (out / f"{split}.images.txt").write_text("".join(r[2] + "\n" for r in samples), encoding="utf-8")
    subprocess.run(["fairseq-preprocess", "-s", "tag", "-t", "colour", "--trainpref", raw / "train",
                    "--validpref", raw / "valid", "--destdir", out, "--srcdict", out / "dict.txt",
                    "--tgtdict", out / "dict.txt", "--workers", "1"], check=True, capture_output=True)
    return out


@dataclass
class ColourConfig(UnixImageTaskConfig):
    source_lang: str = field(default="tag", metadata={"help": "file suffix of the language tags"})
    target_lang: str = field(default="colour", metadata={"help": "file suffix of the colour names"})


@register_task("unix_colour_test", dataclass=ColourConfig)
class ColourTask(UnixImageTask):
    """Name the colour of the photo in the language of the source tag (validation: the base's
    ``--eval-metric accuracy``, exact match of the generated and the reference colour)."""

    task_name = "unix_colour_test"
    image_required = True  # one error, naming the image list and line, for a sample without a photo
