"""The terminal's summary of a monitoring window: per model version, the verdict, volume, the most drifted
features, the alerts, and where the run and its report are."""

from __future__ import annotations

from mlsteps.monitor.run import Monitored

TOP = 5  # features listed by drift


def summary_lines(result: Monitored) -> list[str]:
    lines = [f"monitoring {result.window}: {result.location}"]
    lines += [f"  note: {n}" for n in result.notes]
    for found, (run_id, report) in zip(result.assessments, result.runs, strict=False):
        verdict = (
            "NOT JUDGED (too few rows)"
            if not found.judged
            else f"{len(found.alerts)} ALERT(S)"
            if found.alerts
            else "ok, no alert"
        )
        m = found.metrics
        lines.append(f"{found.model} (train run {found.run_id}): {verdict}")
        latency = ", ".join(f"{k.split('.')[1]} {v:.1f} ms" for k, v in m.items() if k.startswith("latency_ms."))
        lines.append(
            f"  {found.requests} requests, {found.rows} scored rows, error rate {m.get('error_rate', 0):.1%}"
            + (f", latency {latency}" if latency else "")
        )
        drifted = sorted((f for f in found.features if f.psi is not None), key=lambda f: -(f.psi or 0))[:TOP]
        if drifted:
            lines.append("  most drifted: " + ", ".join(f"{f.name} {f.psi:.2f}" for f in drifted) + " (PSI)")
        if found.prediction is not None and found.prediction.psi is not None:
            lines.append(f"  predictions: PSI {found.prediction.psi:.2f} against the holdout's")
        if found.live:
            lines.append(
                f"  live ({found.labelled_rows} labelled rows): "
                + ", ".join(
                    f"{k} {v:.4g}" + (f" (holdout {found.holdout[k]:.4g})" if k in found.holdout else "")
                    for k, v in found.live.items()
                )
            )
        lines += [f"  ALERT {a}" for a in found.alerts]
        lines += [f"  note: {n}" for n in found.notes]
        lines.append(f"  run {run_id}; report {report}")
    return lines
