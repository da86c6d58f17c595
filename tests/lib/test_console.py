"""What a person sees: a live line on a terminal, one line per step elsewhere, nothing with --quiet."""

from __future__ import annotations

import io

import pytest
from mlsteps import console
from mlsteps.pipeline import StepResult
from rich.console import Console


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=buffer, width=200, force_terminal=False))
    return buffer


def _result(**kwargs) -> StepResult:
    return StepResult("make_data", "run1", {}, {"clean_rows": 5.0}, seconds=1.25, reason="no earlier run", **kwargs)


def test_off_a_terminal_each_step_is_one_line_with_its_reason(captured: io.StringIO) -> None:
    reporter = console.ConsoleReporter(live=False)

    reporter.step_started("make_data", 1, 4, "no earlier run")
    with reporter.phase("validating"):
        reporter.update("uploading x: 1.0 of 2.0 MB")
    reporter.step_finished(_result())

    assert captured.getvalue().splitlines() == ["ok make_data in 1.2s (no earlier run)  clean_rows=5"]


def test_quiet_prints_nothing(captured: io.StringIO) -> None:
    reporter = console.ConsoleReporter(quiet=True, live=False)

    reporter.step_started("make_data", 1, 4, "no earlier run")
    reporter.step_finished(_result(notes=["a note"]))

    assert captured.getvalue() == ""


def test_on_a_terminal_the_heartbeat_says_what_and_for_how_long(captured: io.StringIO) -> None:
    beat = console.Heartbeat("train_model")
    try:
        with beat.doing("fitting"):
            beat.detail = "uploading model: 3.0 of 9.0 MB"
            text = beat._text()
    finally:
        beat.stop()

    assert text.startswith("train_model: fitting, uploading model: 3.0 of 9.0 MB (")
    assert text.endswith(" s)")
    assert beat._text().startswith("train_model: starting")


@pytest.mark.parametrize(
    "message",
    [
        "config/base.yaml, line 3: expected ',' or ']', but got '<stream end>'",
        "dataset 'raw/export[final].csv' does not exist",
        "[bold]not markup[/bold] [red]",
    ],
)
def test_messages_are_printed_as_text_whatever_their_brackets(captured: io.StringIO, message: str) -> None:
    console.print_error(message)
    console.ConsoleReporter(live=False).step_finished(_result(notes=[message]))

    assert f"error: {message}" in captured.getvalue()
    assert f"   {message}" in captured.getvalue()


def test_suggested_commands_use_the_running_interpreter_and_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mlsteps import hints
    from mlsteps.project import ROOT

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "executable", str(ROOT / ".venv" / "bin" / "python"))

    assert hints.command("--step", "make_data") == ".venv/bin/python src/main.py --step make_data"
    assert console.ui_command("sqlite:///mlflow.db").endswith("mlflow ui --backend-store-uri sqlite:///mlflow.db")
    assert console.ui_command("http://127.0.0.1:5000") == "open http://127.0.0.1:5000"
