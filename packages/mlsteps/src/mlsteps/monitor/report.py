"""A monitoring window's report: one self-contained HTML page (its plots inlined) and the plots as PNG files.

The page holds, per model version, the verdict and its alerts, the volume, errors and latency, the live metrics
next to the holdout's, a table of every feature's figures and, for each drifted feature and for the predictions,
a plot of the training data's shares per bin against the window's."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlsteps.monitor.assess import Assessment, Distribution

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.alert td { background: #fde2e1; }
.verdict { font-size: 1.2rem; font-weight: 600; }
.ok { color: #17692b; } .bad { color: #a61b1b; } .unjudged { color: #8a6d00; }
figure { display: inline-block; margin: 0.5rem; }
"""


def plot(figures: Distribution, path: Path) -> Path:
    """A bar chart of the shares per bin: the reference (training data, or the holdout's predictions) against
    the window's, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(figures.bins))
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.bar(x - 0.2, figures.reference, width=0.4, label="reference", color="#7a9cc6")
    ax.bar(x + 0.2, figures.current, width=0.4, label="this window", color="#d9822b")
    ax.set_xticks(x, figures.bins, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    shown = "n/a" if figures.psi is None else f"{figures.psi:.2f}"
    ax.set_title(f"{figures.name} (PSI {shown})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_report(found: list[Assessment], window: str, folder: Path) -> Path:
    """``folder/report.html`` and ``folder/plots/*.png`` for the assessments of one window."""
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Monitoring {html.escape(window)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Inference monitoring</h1><p>Window: {html.escape(window)}</p>",
    ]
    for a in found:
        parts.append(_section(a, plots))
    parts.append("</body></html>")
    page = folder / "report.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def _section(a: Assessment, plots: Path) -> str:
    e = html.escape
    if not a.judged:
        verdict = f"<p class='verdict unjudged'>Not judged: {a.rows} scored rows, too few</p>"
    elif a.alerts:
        verdict = f"<p class='verdict bad'>{len(a.alerts)} alert(s)</p>"
    else:
        verdict = "<p class='verdict ok'>No alert</p>"
    out = [f"<h2>{e(a.model)}</h2>", verdict]
    if a.alerts:
        out.append("<ul class='alerts'>" + "".join(f"<li>{e(str(x))}</li>" for x in a.alerts) + "</ul>")
    out += [f"<p>{e(n)}</p>" for n in a.notes]
    alerted = {
        x.metric.split(".", 1)[1].rsplit(".", 1)[0]
        for x in a.alerts
        if x.metric.startswith(("drift.", "missing.", "contract."))
    }
    shown = [f for f in a.features if f.name in alerted] + ([a.prediction] if a.prediction else [])
    out.append("<h3>Distributions: reference against this window</h3><div class='plots'>")
    for f in shown:
        path = plot(f, plots / f"{_safe(a.version)}-{_safe(f.name)}.png")
        data = base64.b64encode(path.read_bytes()).decode()
        out.append(f"<figure><img alt='{e(f.name)}' src='data:image/png;base64,{data}'><figcaption>{e(f.name)}")
        out.append("</figcaption></figure>")
    out.append("</div>")
    volume: list[list[object]] = [
        ["requests", a.requests],
        ["scored rows", a.rows],
        ["refused or failed", _share(a.metrics.get("error_rate"))],
    ]
    volume += [
        [f"latency {k.split('.')[1]}", f"{v:.1f} ms"] for k, v in a.metrics.items() if k.startswith("latency_ms.")
    ]
    out.append("<h3>Requests</h3>")
    out.append(_table(["figure", "value"], volume, "volume"))
    if a.live:
        rows = [[k, _num(v), _num(a.holdout.get(k))] for k, v in a.live.items()]
        out.append(f"<h3>Live metrics ({a.labelled_rows} labelled rows)</h3>")
        out.append(_table(["metric", "live", "holdout"], rows, "live"))
    rows = [
        [f.name, _num(f.psi), f"{f.missing:.1%}", f"{f.missing_reference:.1%}", _share(f.outside)]
        for f in sorted(a.features, key=lambda f: -(f.psi or 0))
    ]
    classes = ["alert" if r[0] in alerted else "" for r in rows]
    out.append("<h3>Features</h3>")
    out.append(
        _table(
            ["feature", "PSI", "missing", "missing (training)", "outside contract"],
            rows,
            "features",
            classes,
        )
    )
    return "\n".join(out)


def _table(head: list[str], rows: Sequence[Sequence[object]], name: str, classes: list[str] | None = None) -> str:
    e = html.escape
    lines = [f"<table class='{name}'><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if classes and classes[i] else ""
        lines.append(f"<tr{cls}>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
