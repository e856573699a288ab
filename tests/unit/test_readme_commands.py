"""The README's command table states facts: every command it names exists, with the options and
arguments it shows (issue 9: `dmp audit history` was documented with a `--patient` it lacks)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from dmp.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_invocations() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        if line.startswith("| `dmp "):
            first_cell = line.split("|")[1]
            found += re.findall(r"`(dmp [^`]+)`", first_cell)
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = main
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


INVOCATIONS = _documented_invocations()


def test_the_table_lists_commands() -> None:
    assert len(INVOCATIONS) >= 20


@pytest.mark.parametrize("invocation", INVOCATIONS)
def test_documented_invocation_matches_the_cli(invocation: str) -> None:
    words = invocation.replace("[", " ").replace("]", " ").split()
    command, rest = _resolve(words)
    assert not isinstance(command, click.Group), f"{invocation}: not a command"
    by_name = {opt: param for param in command.params for opt in param.opts if opt.startswith("--")}
    positional = []
    words_left = iter(rest)
    for word in words_left:
        if word.startswith("--"):
            assert word in by_name, f"{invocation}: {word} is not an option of this command"
            param = by_name[word]
            if isinstance(param, click.Option) and not param.is_flag:
                next(words_left, None)  # the option's value
        elif word not in {"…", "/"}:
            positional.append(word)
    takes_argument = any(isinstance(p, click.Argument) for p in command.params)
    if positional:
        assert takes_argument, f"{invocation}: shows an argument ({positional}) the command does not take"
