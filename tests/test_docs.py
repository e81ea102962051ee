"""The README stays true: every command and option of the command line is documented there, and
CI runs exactly the test command the README gives users."""

from __future__ import annotations

import re

import click
import pytest

from index.config import PROJECT_ROOT
from ui.cli import main

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_is_in_the_readme(name):
    assert f"ombudsman {name}" in README


@pytest.mark.parametrize(
    "command,option",
    sorted(
        (name, opt)
        for name, cmd in main.commands.items()
        for param in cmd.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ),
)
def test_every_option_is_in_the_readme(command, option):
    assert option in README, f"`ombudsman {command} {option}` is not documented in README.md"


@pytest.mark.parametrize("option", [o for p in main.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")])
def test_every_common_option_is_in_the_readme(option):
    assert option in README


def test_ci_runs_the_readme_test_command():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in README and "<!-- test-command -->" in ci
    command = README.split("<!-- test-command -->", 1)[1].split("```sh\n", 1)[1].split("\n", 1)[0]
    assert command.startswith("python3 -m venv .venv") and "torch==2.13.0" in command
    assert command.index("torch==2.13.0") < command.index("pip install -e")
    assert re.search(r"pytest$", command)


def test_the_app_command_installs_then_serves():
    first = README.split("```sh\n", 1)[1].split("\n", 1)[0]
    assert "torch==2.13.0" in first and first.endswith("ombudsman serve")
