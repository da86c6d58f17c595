"""The smoke test: holdout rows through the endpoint, compared with the model's own predictions of them; and the
request and answer formats the image's ``/invocations`` speaks (CSV with a header line in, MLflow's JSON out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.errors import DeployError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.deploy.sagemaker import SageMaker
    from mlsteps.refs import ModelRef
    from mlsteps.storage import Storage

# Prediction of a regressor: how far the endpoint's may be from the local one (float32 matrices, other BLAS).
TOLERANCE = 1e-5
# SageMaker takes at most 6 MB a request: a file is sent in requests of at most this many bytes.
MAX_REQUEST_BYTES = 5_000_000


@dataclass(frozen=True)
class SmokeResult:
    """How many rows were sent, and what disagreed (empty: the endpoint answers as the model does)."""

    rows: int
    mismatches: list[str]
    # The endpoint did not answer the rows (the container refused or failed them, or answered something else).
    error: str = ""

    @property
    def passed(self) -> bool:
        return not (self.mismatches or self.error)

    def summary(self) -> str:
        if self.rows == 0:
            return "no smoke test (deploy.smoke_rows: 0)"
        if self.error:
            return f"smoke test failed: {self.rows} holdout rows sent, no predictions back: {self.error}"
        if self.passed:
            return f"smoke test passed: {self.rows} holdout rows, the endpoint's predictions equal the model's"
        shown = "; ".join(self.mismatches[:3])
        more = f" (and {len(self.mismatches) - 3} more)" if len(self.mismatches) > 3 else ""
        return f"smoke test failed on {len(self.mismatches)} of {self.rows} holdout rows: {shown}{more}"


def holdout(ref: ModelRef, rows: int, storage: Storage) -> pd.DataFrame:
    """The first ``rows`` rows of the data the model was evaluated on (its train_model run's snapshot)."""
    from mlsteps.lineage import load_manifest

    manifest = load_manifest(ref.run_id or "")
    held = [name for name in manifest["files"] if name != manifest.get("training")]
    if not held:
        raise UsageError(
            f"run {ref.run_id} of {ref.uri} recorded no holdout to smoke-test the endpoint with: deploy a model "
            "train_model registered, or set deploy.smoke_rows: 0 (PIPELINE__DEPLOY__SMOKE_ROWS=0)"
        )
    return storage.read_table(manifest["files"][held[0]]["uri"]).head(rows)


def csv_body(batch: pd.DataFrame, columns: list[str]) -> bytes:
    """Rows as the image's ``/invocations`` takes CSV: a header line of the model's inputs, then one line a row
    (a missing value empty)."""
    return batch.loc[:, columns].to_csv(index=False, lineterminator="\n").encode()


def predictions(body: bytes, endpoint: str, expected: int) -> list[Any]:
    """The predictions of an answer (``{"predictions": [...]}``), one a row sent."""
    try:
        found = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(
            f"endpoint '{endpoint}' answered {body[:200]!r}, not {{\"predictions\": [...]}}: is deploy.image_uri "
            "this project's image?"
        ) from exc
    if not isinstance(found, list) or len(found) != expected:
        raise DeployError(f"endpoint '{endpoint}' answered {len(found)} predictions for {expected} rows")
    return found


def score(sagemaker: SageMaker, endpoint: str, batch: pd.DataFrame, columns: list[str]) -> list[Any]:
    """The endpoint's predictions of ``batch``, in requests of at most MAX_REQUEST_BYTES."""
    body = csv_body(batch, columns)
    if len(body) <= MAX_REQUEST_BYTES or len(batch) == 1:
        return predictions(sagemaker.invoke(endpoint, body), endpoint, len(batch))
    half = len(batch) // 2
    return score(sagemaker, endpoint, batch.iloc[:half], columns) + score(
        sagemaker, endpoint, batch.iloc[half:], columns
    )


def compare(remote: list[Any], local: list[Any]) -> list[str]:
    """Each row whose endpoint answer differs from the model's own, described."""
    return [
        f"row {i + 1}: endpoint {r!r}, model {m!r}"
        for i, (r, m) in enumerate(zip(remote, local, strict=True))
        if not _agree(r, m)
    ]


def _agree(remote: Any, local: Any) -> bool:
    """Labels equal as text; numbers (a regressor's) within TOLERANCE."""
    import numbers

    if isinstance(local, numbers.Real) and not isinstance(local, bool) and type(local).__name__ != "bool_":
        try:
            return abs(float(remote) - float(local)) <= TOLERANCE * max(1.0, abs(float(local)))
        except (TypeError, ValueError):
            return False
    return str(remote) == str(local)
