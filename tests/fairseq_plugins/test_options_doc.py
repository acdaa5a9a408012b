"""docs/options.md is generated from the plugin's dataclasses and must be current."""

import re
from pathlib import Path

from fairseq_plugins.options_doc import COMMAND, first_difference, main, option_rows, render
from fairseq_plugins.tasks.unix_vqa import UnixVQAConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "options.md"


def test_docs_options_md_is_current():
    expected = render()
    actual = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    diff = first_difference(expected, actual)
    assert diff is None, f"docs/options.md is stale ({diff}); regenerate it with: {COMMAND}"


def test_known_options_are_listed_in_their_sections():
    text = render()
    tasks, rest = text.split("## Criterions", 1)
    criterions, model = rest.split("## Model", 1)
    for option in ("`--image-features`", "`--eval-metric`", "`--beam-stop`", "`--constraint-answers`"):
        assert option in tasks, option
    assert "`--scst-candidates`" in criterions
    assert "| `--embed-dim` | int | `128` |" in model
    # the architecture table: unix_base's width and layer counts from unix.config.ARCHS
    assert "| `unix_base` | 768 | 3072 | 12 | 6 | 6 | 12 |" in model
    for name in ("unix_caption", "unix_mmt", "unix_vqa", "unix_pretrain"):
        assert f"### `{name}`" in tasks, name


def test_only_unix_options_and_changed_fairseq_defaults_are_listed():
    rows = {r[0]: r for r in option_rows(UnixVQAConfig)}
    assert "`--left-pad-source`" not in rows  # fairseq's TranslationConfig option, default unchanged
    assert rows["`--source-lang`, `-s`"][2] == "`question`"  # fairseq's option with a unix default
    assert rows["`--beam-stop`"][1:3] == ["one of: fairseq, best", "`best`"]
    assert rows["`--balance-answers`"][1:3] == ["flag", "`False`"]


def test_check_names_the_first_stale_line(tmp_path, capsys):
    out = tmp_path / "options.md"
    assert main(["--out", str(out)]) == 0
    assert main(["--out", str(out), "--check"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = "edited by hand\n"
    out.write_text("".join(lines), encoding="utf-8")
    assert main(["--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "line 3: expected" in err and "'edited by hand'" in err and COMMAND in err


def test_every_listed_option_is_one_fairseq_train_accepts(tmp_path):
    import fairseq_plugins
    from fairseq import options
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
    from fairseq.models import MODEL_DATACLASS_REGISTRY
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    user_dir = str(Path(fairseq_plugins.__file__).parent)
    for task, criterion in (("unix_mmt", "unix_scst"), ("unix_caption", "unix_scst"), ("unix_vqa", "unix_scst"),
                            ("unix_pretrain", "unix_pretrain")):
        parser = options.get_training_parser()
        options.parse_args_and_arch(parser, [str(tmp_path), "--user-dir", user_dir, "--task", task,
                                             "--arch", "unix_tiny", "--criterion", criterion])
        accepted = set(parser._option_string_actions) | {"data"}
        for cls in (TASK_DATACLASS_REGISTRY[task], CRITERION_DATACLASS_REGISTRY[criterion],
                    MODEL_DATACLASS_REGISTRY["unix"]):
            listed = {name for r in option_rows(cls) for name in re.findall(r"`([^`]+)`", r[0])}
            assert listed <= accepted, (task, sorted(listed - accepted))
