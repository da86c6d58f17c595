"""What the pipeline prints: progress per step while it runs, a summary at the end, one clear error."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from mlsteps.config import Settings
    from mlsteps.errors import StepError
    from mlsteps.pipeline import Decision, PipelineResult, StepResult

# Progress and errors go to stderr, the summary to stdout (so it can be captured on its own).
# Piped or captured output gets a width that fits a run id and its metrics on one line.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def styled(mark: str, style: str, rest: str) -> Text:
    """``mark`` in ``style``, then ``rest`` as it is: messages, paths and YAML errors hold square brackets, which
    Rich would read as markup (``raw/export[final].csv``, ``expected ',' or ']'``). Every line printed here is
    either such a Text or printed with ``markup=False``."""
    return Text.assemble((mark, style), rest)


class ConsoleReporter:
    """Progress for people. On a terminal: a line when a step starts, a live line with what it is doing and for how
    long while it works (reading, validating, fitting, evaluating, uploading with bytes sent), and a line when it
    ends. Elsewhere (a log, a pipe, CI): one line per step. ``quiet``: nothing but errors."""

    def __init__(self, quiet: bool = False, live: bool | None = None) -> None:
        self.quiet = quiet
        self.live = err.is_terminal if live is None else live
        self._positions: dict[str, str] = {}
        self._heartbeat: Heartbeat | None = None

    def step_started(self, step: str, index: int, total: int, reason: str) -> None:
        self._positions[step] = f"[{index}/{total}]"
        if self.quiet or not self.live:
            return
        if reason != "reusing":
            err.print(styled(">", "bold cyan", f" [{index}/{total}] {step} ... ({reason})"), soft_wrap=True)
            self._heartbeat = Heartbeat(step)

    def note(self, text: str) -> None:
        """A line the person watching should see while the run lasts (the Dask dashboard's address)."""
        if not self.quiet:
            err.print(styled("i", "bold cyan", f" {text}"), soft_wrap=True)

    @contextlib.contextmanager
    def phase(self, text: str) -> Iterator[None]:
        """What the running step does now (shown with its elapsed time on a terminal)."""
        if self._heartbeat is None:
            yield
            return
        with self._heartbeat.doing(text):
            yield

    def update(self, text: str) -> None:
        if self._heartbeat is not None:
            self._heartbeat.detail = text

    def step_finished(self, result: StepResult) -> None:
        self._stop()
        if self.quiet:
            return
        if result.reused_from:
            err.print(
                styled("=", "bold green", f" {result.step} reused run {result.reused_from} ({result.reason})"),
                soft_wrap=True,
            )
        else:
            why = "" if self.live else f" ({result.reason})"  # a log has no start line: say why it ran here
            err.print(
                styled("ok", "bold green", f" {result.step} in {result.seconds:.1f}s{why}  {_headline(result)}"),
                soft_wrap=True,
            )
        for note in result.notes:
            err.print(f"   {note}", soft_wrap=True, markup=False)

    def step_failed(self, step: str, error: BaseException) -> None:
        self._stop()
        err.print(styled("FAILED", "bold red", f" {self._positions.get(step, '')} {step}"), soft_wrap=True)

    def _stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None


class Heartbeat:
    """A live status line: ``train_model: fitting (12 s)``, refreshed every second until stopped."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.started = time.monotonic()
        self.doing_now = "starting"
        self.detail = ""
        self._status = err.status(self._text())
        self._status.start()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def doing(self, text: str) -> Iterator[None]:
        before, self.doing_now, self.detail = self.doing_now, text, ""
        self._status.update(self._text())
        try:
            yield
        finally:
            self.doing_now, self.detail = before, ""

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._status.stop()

    def _tick(self) -> None:
        while not self._stopped.wait(1.0):
            self._status.update(self._text())

    def _text(self) -> str:
        detail = f", {self.detail}" if self.detail else ""
        return f"{self.step}: {self.doing_now}{detail} ({time.monotonic() - self.started:.0f} s)"


def print_error(message: str, failed: StepError | None = None, verbose: bool = False) -> None:
    """One clear message; the traceback only when asked for (it is always logged on the failed run)."""
    from mlsteps.errors import PipelineError

    cause = failed.cause if failed is not None else None
    if cause is not None and verbose:
        err.print("".join(traceback.format_exception(cause)), markup=False)
    err.print(styled("error:", "bold red", f" {message}"), soft_wrap=True)
    if failed is None:
        return
    if not isinstance(cause, PipelineError):
        err.print(
            "  (an unexpected error: the full traceback is on the failed run as error/traceback.txt; "
            "re-run with --verbose to print it)"
        )
    if failed.run_started:
        err.print("  the step's run and the pipeline run are marked FAILED in MLflow")
    else:
        err.print("  the step did not start; the pipeline run is marked FAILED in MLflow")


def print_summary(settings: Settings, result: PipelineResult) -> None:
    table = Table(title=f"pipeline run {result.parent_run_id} ({settings.environment})", title_justify="left")
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("run id", no_wrap=True, min_width=32)
    table.add_column("headline metrics")
    for step in result.steps:
        status = "reused" if step.reused_from else "ran"
        table.add_row(step.step, status, f"{step.seconds:.1f}", step.run_id, Text(_headline(step)))
    out.print(table)
    lines = [f"total {result.seconds:.1f}s; experiment '{settings.tracking.experiment}' at {settings.tracking.uri}"]
    for step in result.steps:
        # Where the models and the final outputs are: what a person looks for after a run.
        if step is result.steps[-1] or any(u.startswith(("models:/", "runs:/")) for u in step.outputs.values()):
            lines += [f"  {name}: {uri}" for name, uri in step.outputs.items()]
        lines += [f"  {step.step}: {note}" for note in step.notes]
        # The model a step actually used, resolved when it ran (a reused train_model's version may be older).
        lines += [
            f"  {step.step} used {name}: {uri} = version {_version(digest)}"
            for name, (uri, _, digest) in ((n, v.partition(" ")) for n, v in step.inputs.items())
            if uri.startswith("models:/")
        ]
    lines.append(f"see the runs: {ui_command(settings.tracking.uri)}")
    for line in lines + override_lines(settings):
        out.print(line, soft_wrap=True, markup=False)


def uptodate_lines(settings: Settings, result: PipelineResult) -> list[str]:
    """What an up-to-date re-run prints (plain text, kept in the state file): each step with the run that made
    its outputs, its headline metrics, the final outputs and where to see the runs."""
    width = max((len(s.step) for s in result.steps), default=0)
    lines = [f"  = {s.step:<{width}}  run {s.reused_from or s.run_id}  {_headline(s)}".rstrip() for s in result.steps]
    if result.steps:
        lines += [f"  {name}: {uri}" for name, uri in result.steps[-1].outputs.items()]
    lines.append(f"see the runs: {ui_command(settings.tracking.uri)}")
    return lines + override_lines(settings)


def _version(identity: str) -> str:
    """``name/3@run`` -> ``3 of name (run run)``."""
    name_version, _, run = identity.partition("@")
    name, _, version = name_version.rpartition("/")
    return f"{version} of {name} (run {run})" if version else identity


def override_lines(settings: Settings) -> list[str]:
    """One loud line per config key set from outside the config files: what runs where must never surprise."""
    return [
        f"override in effect: {key} = {_value_of(settings, key)!r} (from {source})"
        for key, source in sorted(settings.overrides.items())
    ]


def _value_of(settings: Settings, dotted: str) -> object:
    value: object = settings.to_dict()
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def print_plan(decisions: list[Decision], settings: Settings | None = None) -> None:
    """The dry run: per step, run or reuse, and why."""
    table = Table(title="dry run: nothing is run or written", title_justify="left")
    for column in ("step", "action", "why"):
        table.add_column(column)
    for d in decisions:
        action = f"reuse {d.cached_run_id}" if d.action == "reuse" else "run"
        table.add_row(d.step, action, Text(d.reason))
    out.print(table)
    for line in override_lines(settings) if settings else []:
        out.print(line, soft_wrap=True, markup=False)


def print_checks(environment: str, checks: list) -> None:
    out.print(f"checking environment '{environment}'", markup=False)
    for c in checks:
        mark = styled("ok  ", "bold green", "") if c.ok else styled("FAIL", "bold red", "")
        out.print(Text.assemble("  ", mark, f" {c.name}: {c.detail}"), soft_wrap=True)
        if not c.ok and c.hint:
            out.print(f"         fix: {c.hint}", soft_wrap=True, markup=False)
    failed = [c.name for c in checks if not c.ok]
    out.print("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    from mlsteps.hints import tool

    return tool("mlflow", "ui", "--backend-store-uri", tracking_uri)


def _headline(result: StepResult) -> str:
    from mlsteps.discovery import declarations

    wanted = next((d.headline for d in declarations() if d.name == result.step), ())
    parts = [f"{k}={_fmt(result.metrics[k])}" for k in wanted if k in result.metrics]
    return " ".join(parts)


def _fmt(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:.3f}"
