"""What every command of the command line shares: the one error path (``command``), typed option values, config
overrides, the settings of the chosen environment, and the logging set-up."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from mlsteps.errors import PipelineError, StepError

ENVIRONMENT = click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")


class OptionalNumber(click.ParamType):
    """An int/float option where an empty string means "not given" (MLproject passes "" for unset)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = kind.__name__

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value == "":
            return None
        try:
            return self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a valid {self.name}", param, ctx)


def blank_to_none(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    return None if value == "" else value


def parse_param(text: str, flag: str = "--param") -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as YAML (``C=0.5`` gives a float)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE (e.g. {flag} C=0.5)", param_hint=flag)
    return key.strip(), yaml.safe_load(raw)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def declared_options() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The steps' command-line options: {flag: [(step, spec), ...]} (a flag steps share sets each one's key)."""
    from mlsteps.discovery import declarations

    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for declaration in declarations():
        for flag, spec in declaration.options.items():
            found.setdefault(flag, []).append((declaration.name, spec))
    return found


def step_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options the steps declare (``Step(options=...)``) to a click command."""
    types = {"int": OptionalNumber(int), "float": OptionalNumber(float)}
    for flag, uses in reversed(declared_options().items()):
        spec = uses[0][1]
        names = [flag, *([spec["short"]] if spec.get("short") else []), _dest(flag)]
        helps = " ".join(f"{step}: {s.get('help', s['key'])}" for step, s in uses)
        if spec.get("multiple"):
            option = click.option(*names, multiple=True, metavar=spec.get("metavar", "KEY=VALUE"), help=helps)
        elif spec.get("type") == "flag":
            option = click.option(*names, is_flag=True, default=None, help=helps)
        elif spec.get("type") in types:
            option = click.option(*names, type=types[spec["type"]], help=helps)
        else:
            option = click.option(*names, callback=blank_to_none, metavar=spec.get("metavar"), help=helps)
        func = option(func)
    return func


def overrides_from(**values: Any) -> dict[str, Any]:
    """The config keys the steps' options set (they win over the YAML and the environment variables)."""
    overrides: dict[str, Any] = {}
    for flag, uses in declared_options().items():
        value = values.get(_dest(flag))
        if value is None or value == () or value is False:
            continue
        for step, spec in uses:
            if spec.get("multiple"):
                value = dict(parse_param(p, flag) for p in value)
            key = spec["key"]
            path = key.split(".") if key.startswith("catalog.") else [step, *key.split(".")]
            node = overrides
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
    return overrides


def configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    # MLflow configures its own loggers when imported; this is the setting it reads.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "ERROR")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=verbose)],
        force=True,
    )
    for name in ("src", "mlsteps"):  # the project's steps and the library
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        for noisy in ("mlflow", "alembic", "urllib3", "botocore", "matplotlib", "distributed", "dask", "tornado"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        import warnings

        warnings.filterwarnings("ignore")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that the runs end as KILLED."""


def _terminate(_signum: int, _frame: Any) -> None:
    _end_after_grace(143)
    raise Terminated


def _interrupt(_signum: int, _frame: Any) -> None:
    _end_after_grace(130)
    raise KeyboardInterrupt


# Seconds a stopped command (SIGTERM, Ctrl-C) may take to mark its runs KILLED before it ends anyway; `docker stop`
# sends SIGKILL after 10 s.
STOP_GRACE_SECONDS = 8.0
_stopping = False
_wakeup: list[Any] = []


def stop_grace_seconds() -> float:
    """``PIPELINE_STOP_GRACE_SECONDS``, else 8; a value that is not a positive number is a config error."""
    from mlsteps.errors import ConfigError

    text = os.environ.get("PIPELINE_STOP_GRACE_SECONDS") or str(STOP_GRACE_SECONDS)
    try:
        grace = float(text)
    except ValueError:
        grace = -1.0
    if not 0 < grace < float("inf"):
        raise ConfigError(
            f"PIPELINE_STOP_GRACE_SECONDS={text!r} is not a positive number of seconds: set it to e.g. 8, or unset it"
        )
    return grace


def _end_after_grace(code: int) -> None:
    """End the process ``PIPELINE_STOP_GRACE_SECONDS`` from now, whatever it is doing then (once per process).

    A stopped command marks its runs KILLED; each write may wait out SQLite's busy timeout (20 s in MLflow) while
    another process holds the store, or a tracking server's timeouts. Runs still RUNNING when the grace ends are
    marked KILLED by the next pipeline of the environment, which sees that their process is gone (as after
    ``kill -9``)."""
    import threading

    global _stopping
    if _stopping:
        return
    _stopping = True
    grace = stop_grace_seconds()

    def expire() -> None:
        if not threading.Event().wait(grace):
            sys.stderr.write(
                f"error: stopped, but the runs could not be marked KILLED within {grace:g} s (the tracking store "
                "did not answer in time; PIPELINE_STOP_GRACE_SECONDS): the next pipeline of this environment marks "
                "them KILLED\n"
            )
            sys.stderr.flush()
            os._exit(code)

    threading.Thread(target=expire, name="stop-grace", daemon=True).start()


def _watch_stop_signals() -> None:
    """Start the grace as soon as SIGTERM or SIGINT arrives, even while the main thread is inside a C call.

    Python runs a signal handler only between two bytecodes of the main thread: one stopped inside SQLite's busy
    wait raises only when that returns. The signal also reaches a wake-up socket at once, from C
    (``signal.set_wakeup_fd``), where a thread waits for it."""
    import socket
    import threading

    if _wakeup:  # once per process
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread (a caller embedding the CLI): the handlers start the grace
        reader.close()
        writer.close()
        return
    # Both ends live as long as the process: a socket collected here would free its fd number for the next file
    # opened (the SQLite store, say), and the signal's byte would be written into that file.
    _wakeup.extend((reader, writer))

    def watch() -> None:
        while received := reader.recv(1):
            if received[0] in (signal.SIGTERM, signal.SIGINT):
                _end_after_grace(143 if received[0] == signal.SIGTERM else 130)
                return

    threading.Thread(target=watch, name="stop-signals", daemon=True).start()


def unbounded_stop() -> None:
    """For a command that handles its own stop (``serve``: uvicorn drains requests and the inference log is
    flushed, which may take longer than the grace): no grace from the wake-up socket."""
    if not _wakeup:
        return
    previous = signal.set_wakeup_fd(-1)
    if previous not in (-1, _wakeup[1].fileno()):
        signal.set_wakeup_fd(previous)  # another's (an event loop's): leave it


def command(func: Callable[..., int | None]) -> Callable[..., None]:
    """The one error path of every subcommand: a PipelineError is one clear message and its exit code;
    Ctrl-C exits 130 and SIGTERM 143, with the runs in progress marked KILLED."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from mlsteps.console import print_error

        verbose = bool(click.get_current_context().find_root().params.get("verbose"))
        configure_logging(verbose)
        # SIGTERM (docker stop, a scheduler's timeout) ends the runs as KILLED, like Ctrl-C; within a bounded time.
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _interrupt)
        _watch_stop_signals()
        try:
            stop_grace_seconds()  # a bad value is said now, not when a signal comes
            code = func(*args, **kwargs) or 0
        except KeyboardInterrupt as exc:
            print_error("interrupted: the runs in progress are marked KILLED")
            code = 143 if isinstance(exc, Terminated) else 130
        except PipelineError as exc:
            print_error(str(exc), exc if isinstance(exc, StepError) else None, verbose)
            code = exc.exit_code
        except Exception as exc:
            from mlsteps.storage_errors import artifact_store_error

            failure = artifact_store_error(exc)  # the parent run's own artifacts (its resolved config), say
            if failure is None:
                raise
            print_error(str(failure))
            code = failure.exit_code
        sys.exit(code)

    return wrapper


def load_settings(environment: str | None, overrides: dict[str, Any] | None = None) -> Any:
    """The settings of ``environment``, else of the one given before the subcommand (``-e`` of the group)."""
    from mlsteps.config import load_config

    root = click.get_current_context().find_root()
    return load_config(environment or root.params["environment"], overrides=overrides)
