"""Write ``docs/options.md``: the command-line options of every unix task, criterion and model.

``fairseq-train --user-dir fairseq_plugins --task unix_mmt --help`` does not list them: fairseq
prints the help in its first parse, before it adds the options of the chosen task, model and
criterion (``fairseq.options.parse_args_and_arch``). This page is generated instead, from the
dataclasses the plugin registers with fairseq, so names, types, defaults and help have one source.
Only the options a class adds beyond fairseq's own base are listed (a fairseq option whose
default unix changes is listed too); the model's sizes per architecture come from
:data:`unix.config.ARCHS`.

Examples::

    python -m fairseq_plugins.options_doc --out docs/options.md   # regenerate
    python -m fairseq_plugins.options_doc --check                 # exit 1 if docs/options.md is stale
"""

import argparse
import dataclasses
import enum
import sys
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional

import fairseq_plugins  # noqa: F401  (registers the unix tasks, criterions and model)
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
from fairseq.models import MODEL_DATACLASS_REGISTRY
from fairseq.tasks import TASK_DATACLASS_REGISTRY

from unix.config import ARCHS, UnixConfig

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "options.md"
COMMAND = "python -m fairseq_plugins.options_doc --out docs/options.md"


def _ours(registry: Dict[str, type]) -> List[str]:
    """Sorted names of the ``unix*`` entries whose dataclass this package defines (not tests' own)."""
    return sorted(n for n, c in registry.items()
                  if n.startswith("unix") and c.__module__.startswith("fairseq_plugins."))


def _fairseq_bases(cls: type) -> List[type]:
    """The dataclasses of fairseq itself among ``cls``'s bases, nearest first."""
    return [b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b) and b.__module__.startswith("fairseq.")]


def _base_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _type_name(tp: Any, default: Any) -> str:
    """``int``, ``str``, ``flag`` / ``flag (switches off)`` for booleans, ``one of: a, b`` for choices."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    if tp is bool:
        return "flag (switches off)" if default is True else "flag"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of: " + ", ".join(str(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def _default_text(default: Any) -> str:
    if default is dataclasses.MISSING:
        return "required"
    if isinstance(default, enum.Enum):
        default = default.value
    if default is None:
        return "`None`"
    return f"`{default!r}`" if default == "" else f"`{default}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_name(name: str, f: dataclasses.Field) -> str:
    if name == "data":  # fairseq makes it the positional argument
        return "`data` (positional)"
    alias = f.metadata.get("argparse_alias")
    return f"`--{name.replace('_', '-')}`" + (f", `{alias}`" if alias else "")


def option_rows(cls: type) -> List[List[str]]:
    """``[option, type, default, help]`` of every field ``cls`` adds beyond its fairseq bases, in field order.

    A fairseq field is listed when ``cls`` changes its default; fields fairseq fills in from
    another group (``II("common.seed")``, no help) and the private ``_name`` are not options here.
    """
    hints = typing.get_type_hints(cls)
    base_fields = {}
    for base in reversed(_fairseq_bases(cls)):
        base_fields.update({f.name: f for f in dataclasses.fields(base)})
    rows = []
    for f in dataclasses.fields(cls):
        default, help = _base_default(f), f.metadata.get("help")
        if f.name == "_name" or (isinstance(default, str) and default.startswith("${") and not help):
            continue
        if f.name in base_fields:
            if _base_default(base_fields[f.name]) == default:
                continue
            help = f"{help or ''} (fairseq's option, unix default)"
        rows.append([_option_name(f.name, f), _type_name(hints[f.name], default), _default_text(default),
                     _cell(help or "")])
    return rows


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                             for r in rows]


def _section(title: str, cls: type) -> List[str]:
    lines = [f"### {title}", "", f"Dataclass `{cls.__module__}.{cls.__name__}`."]
    named = [b for b in _fairseq_bases(cls) if b.__name__ != "FairseqDataclass"]
    if named:
        lines[-1] += (f" Extends fairseq's `{named[0].__name__}` (`{named[0].__module__}`): its options are "
                      "fairseq's and not listed.")
    rows = option_rows(cls)
    return lines + [""] + (_table(["option", "type", "default", "help"], rows) if rows else ["No options."]) + [""]


def arch_rows() -> List[List[str]]:
    """One row per architecture of :data:`ARCHS` (table order), one column per field any of them sets."""
    defaults = UnixConfig()
    return [[f"`{arch}`"] + [str(sizes.get(n, getattr(defaults, n))) for n in _arch_fields()]
            for arch, sizes in ARCHS.items()]


def _arch_fields() -> List[str]:
    """The :class:`UnixConfig` fields that some architecture sets, in field order."""
    order = [f.name for f in dataclasses.fields(UnixConfig)]
    return sorted({k for sizes in ARCHS.values() for k in sizes}, key=order.index)


def render() -> str:
    """The whole of ``docs/options.md``."""
    lines = ["# Options of the unix tasks, criterions and model", "",
             f"Generated from the plugin's dataclasses by `{COMMAND}`; do not edit by hand",
             "(tests/fairseq_plugins/test_options_doc.py checks that it is current). `fairseq-train --help`",
             "does not list these: fairseq prints its help before it adds the options of the chosen task,",
             "model and criterion. Only options that unix adds are listed (and fairseq options whose default",
             "unix changes); the fairseq configs a task extends are named and documented by fairseq. A",
             "`flag (switches off)` is a boolean whose default is true: giving the flag sets it false.", "", "## Tasks (`--task`)", ""]
    for name in _ours(TASK_DATACLASS_REGISTRY):
        lines += _section(f"`{name}`", TASK_DATACLASS_REGISTRY[name])
    lines += ["## Criterions (`--criterion`)", ""]
    for name in _ours(CRITERION_DATACLASS_REGISTRY):
        lines += _section(f"`{name}`", CRITERION_DATACLASS_REGISTRY[name])
    lines += ["## Model (`--arch`)", ""]
    for name in _ours(MODEL_DATACLASS_REGISTRY):
        lines += _section(f"`{name}`", MODEL_DATACLASS_REGISTRY[name])
    lines += ["### Architectures", "",
              "Every architecture below is the `unix` model with these sizes (`unix.config.ARCHS`); an option",
              "given on the command line overrides them, and options not in this table keep the defaults above.", ""]
    lines += _table(["architecture"] + [f"`--{n.replace('_', '-')}`" for n in _arch_fields()], arch_rows())
    return "\n".join(lines) + "\n"


def first_difference(expected: str, actual: str) -> Optional[str]:
    """``None`` when equal, else ``"line N: expected ..., found ..."`` for the first differing line."""
    a, b = expected.splitlines(), actual.splitlines()
    for i in range(max(len(a), len(b))):
        want = a[i] if i < len(a) else "<end of file>"
        got = b[i] if i < len(b) else "<end of file>"
        if want != got:
            return f"line {i + 1}: expected {want!r}, found {got!r}"
    return None if expected == actual else "the files differ in their line endings"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write or check (default: docs/options.md)")
    p.add_argument("--check", action="store_true", help="do not write: exit 1 if the file is not current")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        current = a.out.read_text(encoding="utf-8") if a.out.is_file() else ""
        diff = first_difference(text, current)
        if diff:
            print(f"{a.out} is stale ({diff}); regenerate it with: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{a.out} is current")
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
