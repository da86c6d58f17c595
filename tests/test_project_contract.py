"""The project's own config and data: every environment loads, and the raw data meets the contract.

The other tests run the pipeline machinery on the template's example (tests/helpers.py: EXAMPLE_CONFIG); these
check the project's own files, which in a project made with `copier copy` describe data of its own.
"""

from __future__ import annotations

import pytest
from mlsteps.config import REPO_ROOT, available_environments, load_config
from mlsteps.storage import Storage
from mlsteps.tables import CsvOptions
from mlsteps.validation import validate_raw

PROJECT_CONFIG = REPO_ROOT / "config"


@pytest.mark.parametrize("environment", available_environments(PROJECT_CONFIG))
def test_every_environment_of_the_project_loads(environment: str) -> None:
    settings = load_config(environment, config_dir=PROJECT_CONFIG, env={})

    assert settings.environment == environment
    assert settings.dataset_schema.columns, "schema.columns is empty: run `python src/main.py init`"


def test_the_projects_raw_data_meets_its_contract() -> None:
    settings = load_config("local", config_dir=PROJECT_CONFIG, env={})
    raw = settings.location("raw")
    if raw is None or "://" in raw:
        pytest.skip(f"the raw data is not a local file ({raw}): make_data checks it when it runs")
    spec = settings.dataset("raw")

    frame = Storage().read_table(raw, csv=CsvOptions(**spec.csv.model_dump()))
    typed = validate_raw(frame, settings.dataset_schema, settings.make_data)

    assert len(typed) == len(frame) > 0
    assert set(settings.dataset_schema.features) <= set(typed.columns)
