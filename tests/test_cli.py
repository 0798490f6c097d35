"""The command line as a new user meets it: help texts, commands given alone, `env`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from prefire.proxy.cli import DESCRIPTION, build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: str = "prefire") -> list[tuple[str, Any]]:
    out = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, f"{prefix} {name}")
    return out


def test_help_describes_prefire() -> None:
    text = build_parser().format_help()
    assert DESCRIPTION.splitlines()[0] in text
    assert "Command-line parsing only" not in text
    assert "prefire demo" in text and "prefire env" in text  # where to start


def test_every_argument_of_every_command_says_what_it_is_for() -> None:
    missing = [
        f"{command} {action.option_strings or action.dest}"
        for command, parser in _commands(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
        and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "shown"),
    [([], ["run", "replay", "rules", "env"]), (["rules"], ["check", "explain"])],
)
def test_a_command_alone_shows_its_usage(
    argv: list[str], shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: prefire")
    assert all(name in err for name in shown)
    assert "required" not in err


def test_prefire_rules_alone_from_the_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prefire.proxy.cli", "rules"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: prefire rules") and "explain" in proc.stderr


def test_env_with_port_zero_asks_for_the_real_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["env", "--listen-port", "0", "--state-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "prefire listening on" in captured.err  # where the real port is printed


def test_env_prints_the_port_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--listen-port", "9123", "--state-dir", str(tmp_path)]) == 0
    assert "export HTTPS_PROXY=http://127.0.0.1:9123" in capsys.readouterr().out


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_port_out_of_range_is_refused(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["env", "--listen-port", port])
    assert exc.value.code == 2
    assert "not a port" in capsys.readouterr().err
