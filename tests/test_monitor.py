"""`python src/main.py monitor` against a real `serve` process and the inference log it writes: windows of rows
from the training data (no alarm, several seeds), one feature scaled, one sent empty, labels arriving later, and
the windows and logs it cannot judge. The report is opened in a real browser (headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlsteps.serving.log_files import read_inference_log

from tests.helpers import REPO_ROOT, run_main, serving
from tests.servers import wait_until
from tests.template_fixtures import Champion
from tests.test_containers import AIRFLOW_VENV, _airflow_env, needs_airflow

pytestmark = [pytest.mark.slow]
RAW = REPO_ROOT / "data" / "raw" / "breast_cancer.csv"
ROWS = 300


@dataclass
class Window:
    since: str
    until: str
    request_ids: list[str]
    sent: pd.DataFrame  # the rows sent, with their id and diagnosis
    predictions: list[str]


@dataclass
class Served:
    url: str
    log: Path
    env: dict[str, str]

    def send(self, rows: pd.DataFrame, chunk: int = ROWS, with_id: bool = False) -> Window:
        """POST ``rows`` (the target left out, and the id unless ``with_id``) as CSV in requests of ``chunk`` rows;
        wait until they are logged."""
        since = datetime.now(UTC)
        features = rows.drop(columns=["diagnosis"] if with_id else ["sample_id", "diagnosis"])
        ids, predictions = [], []
        for start in range(0, len(rows), chunk):
            answer = requests.post(
                self.url + "/invocations",
                data=features.iloc[start : start + chunk].to_csv(index=False),
                headers={"Content-Type": "text/csv"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["X-Request-Id"])
            predictions += answer.json()["predictions"]
        wait_until(lambda: set(ids) <= set(read_inference_log(str(self.log))["request_id"]), "the log's rows")
        until = datetime.now(UTC) + timedelta(milliseconds=1)
        return Window(since.isoformat(), until.isoformat(), ids, rows, predictions)

    def monitor(self, window: Window | None, *args: str, **env: str) -> subprocess.CompletedProcess:
        span = ["--since", window.since, "--until", window.until] if window else []
        return run_main("monitor", *span, *args, env={**self.env, **env})


@pytest.fixture(scope="module")
def served(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("monitored")
    env = {
        **champion.env,
        "PIPELINE__SERVING__LOG__PATH": str(folder / "log"),
        "PIPELINE__SERVING__LOG__FLUSH_SECONDS": "0.2",
    }
    with serving(env, folder / "serve.log") as url:
        yield Served(url, folder / "log", env)


def _raw(seed: int, rows: int = ROWS) -> pd.DataFrame:
    return pd.read_csv(RAW).sample(rows, random_state=seed, replace=True).reset_index(drop=True)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_rows_from_the_training_data_raise_no_alert(served: Served, seed: int) -> None:
    window = served.send(_raw(seed))
    done = served.monitor(window)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok, no alert" in done.stdout
    assert f"{ROWS} scored rows" in done.stdout


def _scaled_window(served: Served, seed: int) -> tuple[Window, subprocess.CompletedProcess]:
    rows = _raw(seed)
    window = served.send(rows.assign(mean_radius=rows["mean_radius"] * 3))
    return window, served.monitor(window)


def test_a_feature_scaled_by_three_is_named_in_an_alert_and_recorded(served: Served) -> None:
    from mlflow import MlflowClient

    _, done = _scaled_window(served, 21)
    assert done.returncode == 3, done.stdout + done.stderr
    alerts = [line for line in done.stdout.splitlines() if "ALERT " in line]
    assert any(line.strip().startswith("ALERT mean_radius: drifted from the training data") for line in alerts)
    assert not any("mean_texture" in line for line in alerts)

    client = MlflowClient(served.env["PIPELINE_TRACKING_URI"])
    run = client.get_run(_run_id(done))
    assert client.get_experiment(run.info.experiment_id).name == "breast-cancer-local-monitoring"
    assert run.data.metrics["drift.mean_radius.psi"] > 1
    assert run.data.metrics["drift.mean_texture.psi"] < 0.25
    assert run.data.metrics["rows"] == ROWS and run.data.metrics["alerts"] >= 1
    assert run.data.tags["monitor.verdict"] == "alert"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"report.html", "plots/1-mean_radius.png", "plots/1-prediction.png"} <= artifacts


def test_the_report_opens_in_a_browser_with_its_table_and_plots(served: Served, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium to open the report in: apt-get install chromium (.ci/run installs it)")
    _, done = _scaled_window(served, 22)
    client = MlflowClient(served.env["PIPELINE_TRACKING_URI"])
    report = Path(client.download_artifacts(_run_id(done), "report.html", str(tmp_path)))
    dom = _rendered(browser, report, tmp_path)
    assert 'data-images-loaded="2"' in dom and 'data-images="2"' in dom  # both plots decoded by the browser
    assert '<table class="features">' in dom.replace("'", '"')
    assert dom.count('<tr class="alert">') == 1 and "mean_radius" in dom


def _run_id(done: subprocess.CompletedProcess) -> str:
    return done.stdout.split(" run ")[-1].split(";")[0].strip()


def test_a_column_sent_empty_raises_the_missing_value_alert(served: Served) -> None:
    window = served.send(_raw(31).assign(mean_texture=None))
    done = served.monitor(window)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "ALERT mean_texture: 100% of values missing (training data: 0%" in done.stdout


def test_labels_joined_give_the_metrics_of_the_predictions_and_a_drop_is_an_alert(
    served: Served, tmp_path: Path
) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rows = _raw(41, 250)
    window = served.send(rows, chunk=50)
    labels = pd.DataFrame(
        {
            "request_id": [rid for rid in window.request_ids for _ in range(50)],
            "row": list(range(1, 51)) * 5,
            "diagnosis": rows["diagnosis"],
        }
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    done = served.monitor(window, "--labels", str(tmp_path / "labels.csv"))
    assert done.returncode == 0, done.stdout + done.stderr
    expected_accuracy = accuracy_score(rows["diagnosis"], window.predictions)
    expected_f1 = f1_score(rows["diagnosis"], window.predictions, pos_label="M")
    assert f"live (250 labelled rows): accuracy_score {expected_accuracy:.4g}" in done.stdout
    assert f"f1_score {expected_f1:.4g} (holdout " in done.stdout

    flipped = labels.assign(diagnosis=labels["diagnosis"].map({"M": "B", "B": "M"}))
    flipped.to_parquet(tmp_path / "flipped.parquet")
    done = served.monitor(window, "--labels", str(tmp_path / "flipped.parquet"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "ALERT accuracy_score: " in done.stdout and "worse than on the holdout" in done.stdout


def test_labels_keyed_by_the_id_column_the_requests_carried(served: Served, tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score

    rows = _raw(42, 220).drop_duplicates("sample_id")
    window = served.send(rows, with_id=True)
    logged = read_inference_log(str(served.log))
    mine = logged[logged["request_id"].isin(window.request_ids)]
    assert mine["input.sample_id"].tolist() == rows["sample_id"].astype(str).tolist()  # kept as sent, not scored
    rows[["sample_id", "diagnosis"]].sample(frac=1, random_state=0).to_csv(tmp_path / "labels.csv", index=False)

    done = served.monitor(window, "--labels", str(tmp_path / "labels.csv"))

    expected = accuracy_score(rows["diagnosis"], window.predictions)
    assert f"live ({len(rows)} labelled rows): accuracy_score {expected:.4g}" in done.stdout, done.stdout + done.stderr


def test_an_empty_window_is_said_plainly(served: Served) -> None:
    done = served.monitor(None, "--since", "2020-01-01", "--until", "2020-01-02")
    assert done.returncode == 0, done.stderr
    assert "holds no request received from 2020-01-01 00:00:00 to 2020-01-02 00:00:00 UTC" in done.stdout


def test_a_log_of_a_version_this_registry_lacks_and_an_unreadable_log_fail_clearly(
    served: Served, tmp_path: Path
) -> None:
    window = served.send(_raw(51, 5))
    day = f"date={datetime.now(UTC):%Y-%m-%d}"
    other = tmp_path / "other" / day
    other.mkdir(parents=True)
    frame = read_inference_log(str(served.log))
    frame.assign(model_version="9").to_parquet(other / "a.parquet")
    done = served.monitor(window, PIPELINE__SERVING__LOG__PATH=str(tmp_path / "other"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "scored by version 9 of 'breast-cancer-local', which this environment's tracking store" in done.stderr

    broken = tmp_path / "broken" / day
    shutil.copytree(other, broken)
    (broken / "b.parquet").write_bytes(b"not parquet at all")
    done = served.monitor(window, PIPELINE__SERVING__LOG__PATH=str(tmp_path / "broken"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "b.parquet cannot be read" in done.stderr and "move it out of" in done.stderr

    done = served.monitor(window, PIPELINE__SERVING__LOG__PATH=str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "there is no inference log at" in done.stderr


def test_too_few_rows_are_reported_not_judged(served: Served) -> None:
    rows = _raw(61, 20)
    window = served.send(rows.assign(mean_radius=rows["mean_radius"] * 3))
    done = served.monitor(window)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NOT JUDGED (too few rows)" in done.stdout
    assert "only 20 scored rows in the window (monitor.min_rows: 200)" in done.stdout


def _rendered(browser: str, report: Path, folder: Path) -> str:
    """The report's DOM after Chromium loaded it, with how many of its images the browser decoded."""
    page = folder / "checked.html"
    probe = (
        "<script>window.addEventListener('load', () => { const i = [...document.images];"
        "document.body.dataset.images = i.length;"
        "document.body.dataset.imagesLoaded = i.filter(x => x.complete && x.naturalWidth > 0).length; });</script>"
    )
    page.write_text(report.read_text().replace("</body>", probe + "</body>"))
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_airflow
def test_the_daily_monitoring_dag_fails_its_task_when_monitor_alerts(served: Served, tmp_path: Path) -> None:
    rows = _raw(71)
    window = served.send(rows.assign(mean_radius=rows["mean_radius"] * 3))
    logged = read_inference_log(str(served.log))
    day = tmp_path / "log" / f"date={datetime.now(UTC):%Y-%m-%d}"
    day.mkdir(parents=True)
    logged[logged["request_id"].isin(window.request_ids)].to_parquet(day / "scaled.parquet")  # that window alone
    env = _airflow_env(tmp_path, {**served.env, "PIPELINE__SERVING__LOG__PATH": str(tmp_path / "log")})
    airflow = str(AIRFLOW_VENV / "bin" / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], check=False, env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    run = subprocess.run(
        [airflow, "dags", "test", "mlflow_monitoring"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-5000:]
    assert "Command exited with return code 3" in output, output[-5000:]
    assert "ALERT mean_radius: drifted from the training data" in output
    assert "dag_id=mlflow_monitoring" in output and "state=failed" in output
