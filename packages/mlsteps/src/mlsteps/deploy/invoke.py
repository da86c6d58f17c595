"""``invoke``: a file scored through the deployed endpoint, with ``predict``'s input checks and output layout."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlsteps.errors import DeployError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.config import Settings


def invoke_file(settings: Settings, input_uri: str, output: str | None) -> tuple[pd.DataFrame, str]:
    """Score ``input_uri`` (CSV or Parquet, local or s3://) through the environment's endpoint and write the rows
    with their predictions to ``output`` (CSV or Parquet by extension; None: CSV on stdout). The scored rows, and
    the model the endpoint serves."""
    from mlsteps.deploy.sagemaker import TAG_MODEL_URI, SageMaker
    from mlsteps.deploy.smoke import score
    from mlsteps.input_checks import check_frame
    from mlsteps.registry import describe_model, model_inputs
    from mlsteps.scoring import PREDICTION, with_predictions
    from mlsteps.storage import Storage
    from mlsteps.store import connect
    from mlsteps.tables import CsvOptions

    endpoint = settings.deploy.endpoint_name
    storage = Storage.for_settings(settings)
    if not storage.exists(input_uri):
        raise UsageError(f"--input '{input_uri}' does not exist: give the path or s3:// URI of a CSV or Parquet file")
    sagemaker = SageMaker.connect(settings)
    described = sagemaker.endpoint(endpoint)
    if described is None:
        raise UsageError(
            f"there is no endpoint '{endpoint}' in {sagemaker.region}: deploy one first (python src/main.py deploy "
            f"-e {settings.environment}), or set deploy.endpoint_name"
        )
    if described["EndpointStatus"] not in ("InService", "Updating"):
        raise DeployError(f"endpoint '{endpoint}' is {described['EndpointStatus']}: it cannot score now")
    model_uri = sagemaker.served_model(described["EndpointConfigName"])[1].get(TAG_MODEL_URI)
    if not model_uri:
        raise DeployError(
            f"endpoint '{endpoint}' serves a SageMaker model without the tag {TAG_MODEL_URI}, so its inputs cannot be "
            "checked: deploy it with python src/main.py deploy"
        )
    connect(settings)
    ref, schema = describe_model(model_uri), model_inputs(model_uri)
    csv = settings.dataset("predict_input").csv
    batch = check_frame(storage.read_table(input_uri, csv=CsvOptions(csv.sep, csv.encoding, csv.decimal)), schema)
    scored = with_predictions(
        batch, {PREDICTION: score(sagemaker, endpoint, batch, list(schema))}, ref, datetime.now(UTC)
    )
    if output:
        storage.write_table(scored, output)
    else:
        scored.to_csv(sys.stdout, index=False)
    return scored, model_uri
