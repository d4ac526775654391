"""The README's generated tables, made from the code so that they cannot drift from it.

- `config-table`: every command-line flag of `mock-server` (`cli.build_parser()`: its name,
  choices and help) beside its `MOCK_SERVER_*` variables and its default (`config.Settings`: the
  field's own variable, the flag's name from `_FLAG_NAMES`, the dataclass default), then the
  settings that only a variable sets;
- `plugin-options`: the pytest plugin's command-line options (`pytest_plugin.pytest_addoption`).

Each stands in README.md between `<!-- NAME:start -->` and `<!-- NAME:end -->`.

    python -m mock_server.docs            # print them, markers included
    python -m mock_server.docs --write    # rewrite README.md between them (`make readme-table`)
    python -m mock_server.docs --check    # exit 1 when README.md differs (tests/test_readme.py)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from mock_server.cli import build_parser
from mock_server.config import _FLAG_NAMES, ENV_PREFIX, PROJECT_DIR, Settings, bundled

README = PROJECT_DIR / "README.md"
MIB = 1024 * 1024

# Settings that no flag sets (only their variable does): what each does. A new such field without
# an entry here stops the table's generation (and so the README test), naming the field.
VARIABLE_ONLY = {
    "image_cache_bytes": "bytes of rendered output images kept in memory (a least-recently-used "
    "cache; an image dropped from it is drawn again, byte-identical, when next asked for)",
}

# Written under the table; tests/test_readme.py checks that `from_env` reads variables so.
VARIABLE_RULES = (
    "Flags win over variables. A variable takes the flag's value (an empty one counts as unset); "
    "a list is comma-separated, and a switch is on with `1`, `true`, `yes` or `on`."
)


def start_marker(name: str) -> str:
    return f"<!-- {name}:start -->"


def end_marker(name: str) -> str:
    return f"<!-- {name}:end -->"


def cell(text: str) -> str:
    """Text for a table cell: one line, `|` escaped, and `<` outside code spans too (`<owner>`
    is no HTML tag)."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "\\<") for i, p in enumerate(parts))


def code(value: object) -> str:
    return f"`{value}`"


def default_of(f: Field[Any]) -> object:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise ValueError(f"Settings.{f.name} has no default")


def shown_default(value: object) -> str:
    """A dataclass default as the table shows it."""
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path):
        # A bundled file: inside the package in a wheel, beside it in a checkout.
        if value == bundled(value.name):
            return f"bundled {code(value.name)}"
        return code(value)
    if isinstance(value, int) and value >= MIB and value % MIB == 0:
        return f"{code(value)} ({value // MIB} MiB)"
    return code(value)


def variables(f: Field[Any]) -> str:
    """The variables that set a field: the flag's name first (it wins when both are set)."""
    own = ENV_PREFIX + f.name.upper()
    names = [ENV_PREFIX + _FLAG_NAMES[f.name], own] if f.name in _FLAG_NAMES else [own]
    text = " or ".join(code(n) for n in names)
    if isinstance(default_of(f), tuple):
        text += ", comma-separated"
    return text


def flag_text(action: argparse.Action) -> str:
    names = ", ".join(action.option_strings)
    if action.choices is not None:
        names += " {" + ",".join(str(c) for c in action.choices) + "}"
    return code(names)


def server_options() -> list[argparse.Action]:
    """build_parser()'s flags, without --help and the positional command."""
    return [
        a
        for a in build_parser()._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]


def config_table() -> str:
    by_name = {f.name: f for f in fields(Settings)}
    rows = ["| flag | variable | default | what it does |", "|---|---|---|---|"]
    flagged: set[str] = set()
    for action in server_options():
        f = by_name.get(action.dest)
        if f is None:
            raise ValueError(f"{'/'.join(action.option_strings)}: no Settings.{action.dest}")
        flagged.add(f.name)
        rows.append(
            f"| {flag_text(action)} | {variables(f)} | {shown_default(default_of(f))} "
            f"| {cell(action.help or '')} |"
        )
    for f in fields(Settings):
        if f.name in flagged:
            continue
        if f.name not in VARIABLE_ONLY:
            raise ValueError(
                f"Settings.{f.name} has no flag: describe it in mock_server.docs.VARIABLE_ONLY"
            )
        rows.append(
            f"| (none) | {variables(f)} | {shown_default(default_of(f))} "
            f"| {cell(VARIABLE_ONLY[f.name])} |"
        )
    command = next(a for a in build_parser()._actions if a.dest == "command")
    commands = ", ".join(code(c) for c in command.choices or ())
    lines = [
        *rows,
        "",
        VARIABLE_RULES,
        "",
        f"Commands ({commands}; `mock-server COMMAND`): {cell(command.help or '')}.",
    ]
    return "\n".join(lines)


class _Recorder:
    """Stands in for pytest's parser: records what `pytest_addoption` adds."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def getgroup(self, *args: object, **kwargs: object) -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))


def plugin_options_table() -> str:
    from mock_server.pytest_plugin import pytest_addoption

    recorder = _Recorder()
    pytest_addoption(recorder)  # type: ignore[arg-type]
    rows = ["| pytest option | what it does |", "|---|---|"]
    for names, kwargs in recorder.options:
        rows.append(f"| {code(', '.join(names))} | {cell(kwargs.get('help', ''))} |")
    return "\n".join(rows)


REGIONS: dict[str, Callable[[], str]] = {
    "config-table": config_table,
    "plugin-options": plugin_options_table,
}


def region(name: str) -> str:
    """A region as it stands in the README, markers included."""
    return f"{start_marker(name)}\n{REGIONS[name]()}\n{end_marker(name)}"


def readme_region(text: str, name: str) -> str:
    """The region `name` of a README's text, markers included."""
    start, end = start_marker(name), end_marker(name)
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"README.md needs exactly one {start} and one {end}")
    rest = text.split(start, 1)[1]
    inside, _ = rest.split(end, 1)
    return start + inside + end


def rewritten(text: str) -> str:
    """A README's text with every region generated anew."""
    for name in REGIONS:
        text = text.replace(readme_region(text, name), region(name))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mock_server.docs",
        description="Print the README's generated tables, or rewrite or check them in README.md.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite README.md's tables")
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md's differ")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write("\n\n".join(region(name) for name in REGIONS) + "\n")
        return 0
    if not args.readme.is_file():
        sys.stderr.write(f"{args.readme}: no such file (this works in a source checkout)\n")
        return 2
    text = args.readme.read_text(encoding="utf-8")
    new = rewritten(text)
    if args.check:
        if new != text:
            sys.stderr.write(f"{args.readme}: tables out of date: run `make readme-table`\n")
            return 1
        return 0
    if new != text:
        args.readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
