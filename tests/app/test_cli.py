"""The CLI explains itself and fails with one clear line instead of a traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from app.cli import build_parser, main


def _all_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _all_parsers(sub, (*path, name))
    return found


PARSERS = _all_parsers(build_parser())


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_that_explains_it(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: qwatch" in out
    if path:
        assert parser.description and len(parser.description) > 40, f"qwatch {' '.join(path)} needs a description"
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"qwatch {' '.join(path)} {action.option_strings[0]} needs help text"


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "app", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "quarantine-watch" in result.stdout


def test_bad_config_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWATCH_METRICS_PORT", "lots")
    code = main(["tail", "--source", "jsonl:/dev/null"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert "QWATCH_METRICS_PORT" in err


def test_missing_broker_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("QWATCH_BROKER_DIR", str(tmp_path))
    code = main(["topics", "create"])
    err = capsys.readouterr().err
    assert code == 2
    assert "QWATCH_KAFKA_BOOTSTRAP" in err and "qwatch broker start" in err


def test_bad_sink_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tail", "--source", "file.json"])
    assert code == 2
    assert "jsonl:PATH" in capsys.readouterr().err
