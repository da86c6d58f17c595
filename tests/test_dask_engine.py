"""The dask engine on real worker processes: one LocalCluster of 2 workers (memory limit set) shared by this module,
which the runs reach through engine.address; one run starts and closes a LocalCluster of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.errors import StepError
from mlsteps.pipeline import run_pipeline

from tests.helpers import EXAMPLE_RAW, run_main

pytestmark = pytest.mark.slow

STEPS = ["make_data", "feat_data", "train_model", "predict"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler address of a LocalCluster: 2 worker processes, 1 GB each, the project importable."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="1GB",
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        local_directory=str(tmp_path_factory.mktemp("dask")),
        env={"PYTHONPATH": str(REPO_ROOT)},
    ) as local:
        yield local.scheduler_address


def _dask(cluster: str, **overrides: object):
    return load_config("local", overrides={"engine": {"kind": "dask", "address": cluster}, **overrides})


def _read(uri: str) -> pd.DataFrame:
    """A dataset as written: one file, or a partitioned folder's files in its manifest's order."""
    if not uri.endswith("/"):
        return pd.read_parquet(uri)
    manifest = json.loads(Path(uri, "_manifest.json").read_text())
    return pd.concat([pd.read_parquet(Path(uri, f["name"])) for f in manifest["files"]], ignore_index=True)


def _client(workspace):
    from mlflow import MlflowClient

    return MlflowClient(workspace.tracking_uri)


def test_a_partition_that_breaks_the_contract_is_reported_as_on_pandas(workspace, cluster) -> None:
    raw = pd.read_csv(EXAMPLE_RAW)
    folder = workspace.data_root / "raw" / "parts"
    folder.mkdir()
    bad = raw.iloc[200:400].copy()
    bad.loc[bad.index[[3, 50]], "mean_radius"] = -1.0
    bad.loc[bad.index[7], "diagnosis"] = "X"
    for index, part in enumerate((raw.iloc[:200], bad, raw.iloc[400:])):
        part.to_csv(folder / f"part-{index}.csv", index=False)
    overrides = {"catalog": {"raw": {"path": "raw/parts"}}}

    reports = []
    for settings in (load_config("local", overrides=overrides), _dask(cluster, **overrides)):
        with pytest.raises(StepError) as caught:
            run_pipeline(settings, ["make_data"])
        reports.append(caught.value.cause.report)

    assert reports[0] == reports[1]
    assert "column 'mean_radius': fails greater_than_or_equal_to(0.0) (2 rows; e.g. -1.0)" in reports[1]
    assert "values that are not one of schema.labels (1 rows; e.g. 'X')" in reports[1]
    statuses = {r.info.status for r in _client(workspace).search_runs([_experiment(workspace)])}
    assert statuses == {"FAILED"}


def _experiment(workspace) -> str:
    return _client(workspace).get_experiment_by_name(load_config("local").tracking.experiment).experiment_id


def test_duplicates_across_partitions_are_dropped_as_on_pandas(workspace, cluster) -> None:
    raw = pd.read_csv(EXAMPLE_RAW)
    folder = workspace.data_root / "raw" / "parts"
    folder.mkdir()
    # Row 10 again in the last file, and row 20 twice in the first: the first of each is kept.
    parts = (pd.concat([raw.iloc[:300], raw.iloc[[20]]]), raw.iloc[300:], raw.iloc[[10]])
    for index, part in enumerate(parts):
        part.to_parquet(folder / f"part-{index}.parquet", index=False)
    overrides = {"catalog": {"raw": {"path": "raw/parts"}}}

    results = [
        run_pipeline(settings, ["make_data"], force=["make_data"])
        for settings in (load_config("local", overrides=overrides), _dask(cluster, **overrides))
    ]

    assert [r.step("make_data").metrics["dropped_duplicates"] for r in results] == [2.0, 2.0]
    clean = [_read(r.step("make_data").outputs["clean"]) for r in results]
    pd.testing.assert_frame_equal(clean[1], clean[0], check_dtype=False)


def test_the_command_line_starts_and_closes_a_local_cluster(workspace) -> None:
    result = run_main(
        "--step", "make_data", "--engine", "dask", env={**workspace.env(), "PIPELINE__ENGINE__WORKERS": "1"}
    )

    assert result.returncode == 0, result.stderr
    assert "override in effect: engine.kind = 'dask'" in result.stdout
    runs = _client(workspace).search_runs([_experiment(workspace)], filter_string="params.engine = 'dask'")
    assert len(runs) == 1
    assert runs[0].data.params["engine_address"].startswith("tcp://127.0.0.1:")
    assert runs[0].data.params["engine_workers"] == "1"
