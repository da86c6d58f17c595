"""`python src/main.py init`: infer the raw data's contract from a CSV or Parquet file and write it into the config.

Only what init owns is rewritten in ``config/base.yaml``: the ``schema:`` section, the ``project:`` line (with
``--name``) and ``catalog.raw.path``; every other line and comment stays. The file is replaced in one step, and
only once the new config loads for every environment. The inference rules are in ``mlsteps.infer_schema``,
what is written in ``mlsteps.init_edits``.

With DATA_FILE, init describes that file from the options alone. Without it, it completes the config's own
contract: the configured raw file, with the target, task, id column and positive class the config's ``schema``
names (what ``copier copy`` writes and ``make setup`` completes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsteps.config_text import check_edit
from mlsteps.errors import ConfigError, DataValidationError, UsageError
from mlsteps.hints import command
from mlsteps.init_edits import edit_config, fit_gate_to_task

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.infer_schema import ColumnGuess, TargetGuess


@dataclass
class InitReport:
    """What init inferred, what it wrote, and what a person should review."""

    config_file: Path
    written: bool
    message: str = ""
    data_uri: str = ""
    raw_path: str = ""
    rows: int = 0
    project: str = ""
    id_column: str | None = None
    columns: list[ColumnGuess] = field(default_factory=list)
    target: TargetGuess | None = None
    review: list[str] = field(default_factory=list)


def init_project(
    data_file: str | None = None,
    target: str | None = None,
    task: str | None = None,
    id_column: str | None = None,
    positive_class: str | None = None,
    name: str | None = None,
    force: bool = False,
    if_missing: bool = False,
    config_dir: Path | str | None = None,
) -> InitReport:
    """Infer the contract of ``data_file`` (default: the config's raw file) and write it into base.yaml."""
    from mlsteps.infer_schema import identifier_column, infer_column, infer_target

    base_file = _config_folder(config_dir) / "base.yaml"
    text, config = _read_config(base_file)
    schema: dict[str, Any] = config["schema"] if isinstance(config.get("schema"), dict) else {}
    columns = schema.get("columns") or {}
    if columns:
        if if_missing:
            return InitReport(
                base_file,
                False,
                f"{base_file} already holds a data contract ({len(columns)} columns "
                "under schema.columns): left as it is",
            )
        if not force:
            raise ConfigError(
                f"{base_file} already holds a data contract ({len(columns)} columns under "
                "schema.columns): re-run with --force to replace it (init rewrites only the schema section, "
                "catalog.raw.path, the project line with --name, and estimators that do not fit the "
                "task), or edit it by hand"
            )
    task_source = "--task"
    if data_file is None:  # complete the config's own contract
        target = target or schema.get("target")
        if not task and schema.get("task"):
            task, task_source = schema["task"], "schema.task in the config"
        id_column = _text(schema.get("id_column")) if id_column is None else id_column
        positive_class = positive_class or _text(schema.get("positive_class"))
    uri, raw_path = _data_location(data_file, config)
    frame = _read_data(uri, config, given=data_file is not None)
    chosen = None
    if id_column is None:  # not given ('' is: none)
        id_column = chosen = identifier_column(frame, target)
    target_column, id_column = _check_columns(frame, target, id_column, uri)
    feature_names = [c for c in frame.columns if c not in (target_column, id_column)]
    if not feature_names:
        raise DataValidationError(
            f"'{uri}' has no column besides the target and the id: there is nothing to learn from"
        )
    guesses = [infer_column(frame[c]) for c in feature_names]
    guessed_target = infer_target(frame[target_column], task or "auto", positive_class, task_source)
    report = InitReport(
        base_file,
        False,
        data_uri=uri,
        raw_path=raw_path or _text(config["catalog"]["raw"]["path"]) or "",
        rows=len(frame),
        project=name or str(config.get("project", "")),
        id_column=id_column,
        columns=guesses,
        target=guessed_target,
    )
    report.review = review_notes(report, frame, config, given_positive=bool(positive_class))
    if chosen:
        report.review.insert(
            0,
            f"'{chosen}' is the id column: it is named like one and has a different value on every row, so it is "
            "kept next to predictions and is not a feature (--id-column COLUMN chooses another, --id-column '' none)",
        )
    new_text, owned = edit_config(text, config, report, name, raw_path)
    check_edit(text, new_text, owned, str(base_file))
    assert report.target is not None
    edits = {base_file: new_text}
    for path in sorted(base_file.parent.glob("*.yaml")):
        before = edits.get(path, path.read_text(encoding="utf-8"))
        after = fit_gate_to_task(before, report.target.task, path.name, report.review)
        if after != before:
            check_edit(before, after, [("gate", "thresholds"), ("gate", "metrics")], str(path))
            edits[path] = after
    _check_loads(base_file, edits)
    for path, edited in edits.items():  # all checked together above: written only when every one loads
        _write_atomically(path, edited)
    report.written = True
    report.message = f"wrote the data contract of {uri} into {base_file}"
    return report


def review_notes(report: InitReport, frame: pd.DataFrame, config: dict[str, Any], given_positive: bool) -> list[str]:
    """What a person should look at before trusting the contract."""
    notes = []
    target = report.target
    if target is not None and target.task == "regression" and frame[target.name].dropna().nunique() == 2:
        values = sorted(frame[target.name].dropna().unique().tolist())
        notes.append(
            f"target '{target.name}' holds two values only ({values[0]} and {values[1]}), and the task is regression: "
            "if it is a yes/no outcome, --task binary gives a classifier (probabilities, classification metrics)"
        )
    limit = float((config.get("make_data") or {}).get("max_null_fraction", 0.5))
    for column in report.columns:
        if "date-like" in column.notes:
            notes.append(
                f"'{column.name}' looks like dates and is kept as a string: derive features from it "
                "(month, age, ...) in src/features/build_features.py, or drop it"
            )
        numbering = column.type == "int" and not column.nulls and frame[column.name].is_monotonic_increasing
        if "distinct on every row" in column.notes or (numbering and frame[column.name].is_unique):
            notes.append(
                f"'{column.name}' has a different value on every row: if it identifies the row, re-run "
                f"with --id-column {column.name} (an identifier is not a feature)"
            )
        if column.nulls / max(column.rows, 1) > limit:
            notes.append(
                f"'{column.name}' is {column.nulls / column.rows:.0%} empty, more than "
                f"make_data.max_null_fraction ({limit:g}) allows: make_data will reject it; raise the "
                "limit or drop the column"
            )
    categories = [c.name for c in report.columns if c.type == "category"]
    if categories:
        notes.append(
            f"category columns accept only the values seen ({', '.join(categories)}): add to 'allowed' "
            "any value new data may hold"
        )
    strict = [c.name for c in report.columns if not c.nullable]
    if strict:
        notes.append(
            f"{len(strict)} of {len(report.columns)} columns had no missing value and are written "
            "nullable: false: set nullable: true for any that may be empty in new data"
        )
    target = report.target
    if target and target.missing:
        notes.append(f"{target.missing} rows have no '{target.name}': make_data drops them")
    if target and target.positive_class is not None and not given_positive:
        notes.append(
            f"positive class '{target.positive_class}' was chosen, {target.positive_reason}: pass "
            "--positive-class to choose the other"
        )
    if report.id_column and not frame[report.id_column].is_unique:
        notes.append(f"id column '{report.id_column}' repeats values: predictions are matched to rows by it")
    if os.path.isabs(report.raw_path):
        notes.append(
            f"catalog.raw.path is a local path outside data/ ({report.raw_path}): dev and prd read it "
            "under their data.root; move the file to data/raw/ and re-run init on it there"
        )
    return notes


def _config_folder(config_dir: Path | str | None) -> Path:
    from mlsteps import config as config_module

    return Path(config_dir or os.environ.get("PIPELINE_CONFIG_DIR") or config_module.DEFAULT_CONFIG_DIR)


def _read_config(base_file: Path) -> tuple[str, dict[str, Any]]:
    from mlsteps.config_sources import read_yaml

    config = read_yaml(base_file)
    raw = (config.get("catalog") or {}).get("raw")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{base_file} has no catalog.raw entry: add '  raw: {{kind: input, path: null}}' under catalog"
        )
    return base_file.read_text(encoding="utf-8"), config


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _data_location(data_file: str | None, config: dict[str, Any]) -> tuple[str, str | None]:
    """The URI to read, and the catalog.raw.path to write (None: keep the configured one)."""
    from mlsteps.config import REPO_ROOT, join_uri

    root = str((config.get("data") or {}).get("root") or "data")
    local_root = None if "://" in root else (REPO_ROOT / root).resolve()
    if data_file is None:
        path = _text(config["catalog"]["raw"].get("path"))
        if path is None:
            raise ConfigError(
                "catalog.raw.path is not set: give the data file "
                f"({command('init', 'DATA_FILE', '--target', 'COLUMN')})"
            )
        absolute = "://" in path or path.startswith("/")
        return (path if absolute else join_uri(str(local_root) if local_root else root, path)), None
    if "://" in data_file:
        return data_file, data_file
    local = Path(data_file).expanduser().resolve()
    if local_root and local.is_relative_to(local_root):
        return str(local), local.relative_to(local_root).as_posix()
    return str(local), str(local)


def _read_data(uri: str, config: dict[str, Any], given: bool) -> pd.DataFrame:
    """The data file's table; ``given``: typed on the command line (DATA_FILE), so a missing file is a usage error
    (the config's raw file that is not there yet is reported as the pipeline reports it)."""
    from mlsteps.storage import Storage
    from mlsteps.tables import CsvOptions

    aws = config.get("aws") or {}
    csv = CsvOptions(**(config["catalog"]["raw"].get("csv") or {}))
    storage = Storage(profile=aws.get("profile"), region=aws.get("region"))
    if given and not storage.exists(uri):
        raise UsageError(f"dataset '{uri}' does not exist: check the DATA_FILE given to init")
    return storage.read_table(uri, csv=csv)


def _check_columns(frame: pd.DataFrame, target: str | None, id_column: str | None, uri: str) -> tuple[str, str | None]:
    frame.columns = [str(c) for c in frame.columns]
    shown = ", ".join(list(frame.columns)[:12]) + (", ..." if frame.shape[1] > 12 else "")
    if not target:
        raise ConfigError(f"say which column to predict: --target COLUMN (the columns of {uri}: {shown})")
    for option, column in (("--target", target), ("--id-column", id_column)):
        if column and column not in frame.columns:
            raise ConfigError(f"{option} '{column}' is not a column of {uri}: its columns are {shown}")
    if id_column == target:
        raise ConfigError(f"--id-column and --target are both '{target}': the target cannot identify the rows")
    if frame.empty:
        raise DataValidationError(f"'{uri}' has a header but no rows: init needs data to describe")
    return target, id_column or None


def _check_loads(base_file: Path, edits: dict[Path, str]) -> None:
    """Load every environment with the edited files (in a copy of the folder) before anything is written."""
    from mlsteps.config import available_environments, load_config

    with tempfile.TemporaryDirectory(prefix="init-config-") as scratch:
        folder = Path(scratch)
        for path in base_file.parent.glob("*.yaml"):
            shutil.copy(path, folder / path.name)
        for path, text in edits.items():
            (folder / path.name).write_text(text, encoding="utf-8")
        for environment in available_environments(folder):
            try:
                load_config(environment, config_dir=folder, env={})
            except ConfigError as exc:
                message = str(exc).replace(str(folder), str(base_file.parent))
                raise ConfigError(f"the inferred contract does not load, so nothing was written: {message}") from exc


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_init(report: InitReport) -> None:
    """What was inferred, what to review, and what to run next."""
    from rich.table import Table

    from mlsteps.console import err, out

    if not report.written:
        err.print(report.message, soft_wrap=True, markup=False)
        return
    table = Table(title=f"{report.data_uri}: {report.rows} rows", title_justify="left")
    for heading in ("column", "type", "nullable", "min / allowed", "seen"):
        table.add_column(heading)
    for c in report.columns:
        bound = "" if c.min is None else f"min {c.min:g}"
        table.add_row(
            c.name,
            c.type,
            str(c.nullable).lower(),
            ", ".join(c.allowed) if c.allowed else bound,
            c.seen + (f"; {c.nulls} missing" if c.nulls else ""),
        )
    out.print(table)
    target = report.target
    assert target is not None
    out.print(
        f"target '{target.name}': {target.task} ({target.task_reason})"
        + (f"; labels {target.labels}" if target.labels else "")
        + (f"; positive class '{target.positive_class}'" if target.positive_class is not None else ""),
        soft_wrap=True,
        markup=False,
    )
    out.print(
        f"id column: {report.id_column or 'none'}; project: {report.project}; raw: {report.raw_path}",
        soft_wrap=True,
        markup=False,
    )
    if report.review:
        out.print("[bold]Review[/] (then keep config/base.yaml in git):")
        for note in report.review:
            out.print(f"  - {note}", soft_wrap=True, markup=False)
    out.print(f"{report.message}. Next: {command()} (the whole pipeline on local)", soft_wrap=True, markup=False)
