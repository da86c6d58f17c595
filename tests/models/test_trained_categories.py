"""A category value the model was never trained for, sent to a model the pipeline trained: refused, not scored as
no value at all. The pipeline runs on fsspec's memory filesystem with a throwaway tracking store."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlsteps.errors import StepError
from mlsteps.input_checks import InputError, frame_from_json
from mlsteps.pipeline import run_pipeline
from mlsteps.registry import CATEGORIES, input_schema

from tests.helpers import EXAMPLE_RAW

pytestmark = pytest.mark.slow

SITE = {"schema": {"columns": {"site": {"type": "category", "allowed": ["north", "south"]}}}}


def test_predict_and_the_served_model_refuse_a_category_value_the_model_was_not_trained_for(
    memory_workspace, tmp_path
) -> None:
    raw = pd.read_csv(EXAMPLE_RAW)
    raw["site"] = np.where(raw.index % 2, "north", "south")
    memory_workspace.write_raw(raw)
    settings = memory_workspace.settings(**SITE)
    run_pipeline(settings, ["make_data", "feat_data", "train_model"])
    name = settings.model_name
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")

    batch = raw.drop(columns=["diagnosis"]).head(3).assign(site=["north", "west", None])
    batch.to_csv(tmp_path / "batch.csv", index=False)
    with pytest.raises(StepError) as refused:
        run_pipeline(
            memory_workspace.settings(
                **SITE,
                catalog={"predict_input": {"path": str(tmp_path / "batch.csv")}, "model": {"uri": f"models:/{name}/1"}},
            ),
            ["predict"],
        )
    served = input_schema(model.metadata.signature, f"models:/{name}/1", model.metadata.metadata)
    with pytest.raises(InputError) as refused_online:
        frame_from_json(
            {"dataframe_split": {"columns": list(batch.columns[1:]), "data": batch.iloc[:, 1:].values.tolist()}}, served
        )

    assert model.metadata.metadata[CATEGORIES] == {"site": ["north", "south"]}
    for caught in (refused, refused_online):
        assert "column 'site' holds 1 value(s) the model was not trained for: 'west' (row(s) 2)" in str(caught.value)
    assert not list((tmp_path).glob("*predictions*"))
