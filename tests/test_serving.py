"""Serving: the real scoring server answers /ping and /invocations like the batch predict step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from src.lib.config import REPO_ROOT, load_config
from src.lib.discovery import step_names
from src.pipeline import run_pipeline
from src.serving import with_header
from tests.servers import free_port, wait_until
from tests.helpers import scrubbed_env, serving

STEPS = step_names()

NAMES = ["a", "b"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"1,2\n3,4\n", b"a,b\n1,2\n3,4\n"),
        (b"a,b\n1,2\n", b"a,b\n1,2\n"),
        (b'"b","a"\n2,1\n', b'"b","a"\n2,1\n'),
        (b"\n1,2", b"a,b\n1,2"),
    ],
)
def test_with_header_adds_names_only_when_missing(body: bytes, expected: bytes) -> None:
    assert with_header(body, NAMES) == expected


@pytest.mark.slow
def test_scoring_server_matches_batch_predictions(workspace, tmp_path: Path) -> None:
    result = run_pipeline(load_config("local"), list(STEPS))
    scored = pd.read_parquet(result.steps[3].outputs["predictions"])
    features = load_config("local").dataset_schema.features
    rows = scored.head(25)
    with serving(workspace.env(), tmp_path / "serve.log") as url:
        csv_body = rows[features].to_csv(index=False, header=False)
        from_csv = requests.post(url + "/invocations", data=csv_body, headers={"Content-Type": "text/csv"}, timeout=30)
        json_body = {"dataframe_split": {"columns": features, "data": rows[features].values.tolist()}}
        from_json = requests.post(url + "/invocations", data=json.dumps(json_body),
                                  headers={"Content-Type": "application/json"}, timeout=30)
        missing = requests.post(url + "/invocations", data=json.dumps({"dataframe_split": {
            "columns": features[:3], "data": rows[features[:3]].values.tolist()}}),
            headers={"Content-Type": "application/json"}, timeout=30)

    expected = rows["prediction"].tolist()
    assert from_csv.status_code == 200, from_csv.text
    assert from_csv.json()["predictions"] == expected
    assert from_json.status_code == 200, from_json.text
    assert from_json.json()["predictions"] == expected
    assert missing.status_code == 400
    assert "missing inputs" in missing.text.lower()
    assert f"models:/breast-cancer-local@champion (version 1) on {url}" in (tmp_path / "serve.log").read_text()


@pytest.mark.slow
def test_serve_without_a_champion_fails_clearly(workspace) -> None:
    env = scrubbed_env(workspace.env())

    done = subprocess.run([sys.executable, "src/main.py", "serve", "--port", str(free_port())], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert "holds the alias @champion" in done.stderr
