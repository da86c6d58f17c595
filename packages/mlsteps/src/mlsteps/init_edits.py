"""What init writes into the config files, as text: the ``schema:`` section, the lines it owns, estimators and gate
metrics that do not fit the task. Every other line and comment stays as it is (``mlsteps.config_text``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsteps.config_text import flow_mapping, quoted, replace_section, set_entry_key, set_scalar, yaml_scalar

if TYPE_CHECKING:
    from mlsteps.init_project import InitReport

# The keys init writes in base.yaml whatever the task (the estimators too when they do not fit it).
OWNED = (("schema",), ("project",), ("catalog", "raw", "path"))


def edit_config(
    text: str, config: dict[str, Any], report: InitReport, name: str | None, raw_path: str | None
) -> tuple[str, list[tuple[str, ...]]]:
    """The config's text with init's sections rewritten, and the keys it changed."""
    from mlsteps.estimator_defaults import defaults_if_mismatched

    owned = list(OWNED)
    text = replace_section(text, "schema", schema_block(report))
    if name:
        text = set_scalar(text, "project", name)
    if raw_path:
        text = set_entry_key(text, "catalog", "raw", "path", raw_path)
    assert report.target is not None
    train_model = config.get("train_model") or {}
    switch = defaults_if_mismatched(train_model, report.target.task)
    if switch:
        estimator, estimators = switch
        text = replace_section(text, "estimator", f"  estimator: {estimator}\n", parent="train_model")
        text = replace_section(text, "estimators", estimators, parent="train_model")
        owned += [("train_model", "estimator"), ("train_model", "estimators")]
        report.review.append(
            f"train_model.estimator '{train_model.get('estimator')}' does not fit a "
            f"{report.target.task} task: the estimators are now the defaults for one, "
            f"'{estimator}' chosen (see 'Add a model' in the template's docs/steps.md)"
        )
    return text, owned


def schema_block(report: InitReport) -> str:
    """The ``schema:`` section, each key with a short comment, each column with what was seen."""
    target = report.target
    assert target is not None
    lines = [
        "schema:",
        "  # Row identifier: kept next to predictions, never used as a feature (null if there is none).",
        f"  id_column: {yaml_scalar(report.id_column)}",
        "  # The column to predict.",
        f"  target: {yaml_scalar(target.name)}",
        f"  # binary, multiclass or regression (inferred: {target.task_reason}).",
        f"  task: {target.task}",
    ]
    if target.labels is not None:
        lines += [
            "  # Every value the target may hold, as strings.",
            f"  labels: [{', '.join(quoted(v) for v in target.labels)}]",
        ]
    if target.positive_class is not None:
        lines += [
            f"  # The label that counts as the positive class (label 1): {target.positive_reason}.",
            f"  positive_class: {quoted(target.positive_class)}",
        ]
    lines += [
        "  # Every feature column: type (float, int, bool, category, string), whether nulls are allowed, and",
        "  # optional bounds (min, max) or allowed values (allowed: [...]). Columns not listed here are rejected.",
        f"  # Inferred by `python src/main.py init` from {report.raw_path} ({report.rows} rows): min 0 where no",
        "  # value was negative, nullable where one was missing, allowed: the values seen (mlsteps.infer_schema).",
        "  columns:",
    ]
    for column in report.columns:
        spec = column.spec()
        allowed = spec.pop("allowed", None)
        text = flow_mapping(spec)
        if allowed is not None:
            text = text[:-1] + f", allowed: [{', '.join(quoted(v) for v in allowed)}]}}"
        nulls = f"; {column.nulls} of {column.rows} missing" if column.nulls else ""
        lines.append(f"    {yaml_scalar(column.name)}: {text}  # seen: {column.seen}{nulls}")
    return "\n".join(lines) + "\n"


def fit_gate_to_task(text: str, task: str, where: str, review: list[str]) -> str:
    """A config file's text without the gate metrics that are not metrics of ``task`` (thresholds, and the metrics
    compared), as init switches estimators that do not fit: one review note each."""
    import yaml

    from mlsteps.config_sections import GATE_METRICS

    gate = (yaml.safe_load(text) or {}).get("gate")
    if not isinstance(gate, dict):
        return text
    known = GATE_METRICS[task]
    thresholds = gate.get("thresholds")
    if isinstance(thresholds, dict) and set(thresholds) - set(known):
        kept = {k: v for k, v in thresholds.items() if k in known}
        block = "  thresholds:" + "".join(f"\n    {k}: {yaml_scalar(v)}" for k, v in kept.items())
        text = replace_section(text, "thresholds", block if kept else "  thresholds: {}", parent="gate")
        review.append(
            f"{where}: gate.thresholds {', '.join(sorted(set(thresholds) - set(known)))} removed, not metrics of a "
            f"{task} model: set minimums among {', '.join(known)} once you know what good enough is"
        )
    metrics = gate.get("metrics")
    if isinstance(metrics, list) and set(metrics) - set(known):
        kept_metrics = [m for m in metrics if m in known]
        line = f"  metrics: [{', '.join(kept_metrics)}]" if kept_metrics else "  metrics: null"
        text = replace_section(text, "metrics", line, parent="gate")
        review.append(
            f"{where}: gate.metrics {', '.join(sorted(set(metrics) - set(known)))} removed, not metrics of a {task} "
            "model"
        )
    return text
