"""`python src/main.py init`: the contract inferred from a messy file, written into a copy of the config with
every other line kept; refusing to overwrite; bad input named; the completion `make setup` runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.config_text import replace_section, set_entry_key
from mlsteps.errors import ConfigError, DataValidationError
from mlsteps.infer_schema import choose_positive_class, identifier_column, infer_column, infer_target
from mlsteps.init_project import init_project
from mlsteps.validation import validate_raw

from tests.helpers import EXAMPLE_CONFIG, scrubbed_env

# Strings with gaps, whole numbers with and without gaps, decimals (one negative), booleans with a gap, dates,
# a few cities, free text, an id, and a Yes/No target that YAML would read as booleans if written unquoted.
MESSY_CSV = """row_id,name,age,height,smoker,visits,rooms,city,signup,score,notes,churned
1,Ann,34,1.62,True,3,2,Paris,2024-01-05,0.5,called twice,Yes
2,Bob,,1.80,False,,3,Lyon,2024-02-11,-1.25,moved,No
3,,51,,True,0,2,Paris,,2.0,none,Yes
4,Dan,28,1.75,,5,4,Nice,2024-03-02,1.5,new card,No
5,Eve,45,1.68,False,2,3,Lyon,2024-04-20,0.0,asked for a refund,No
6,Fay,39,1.59,True,1,2,Paris,2024-05-15,3.5,left a review,No
"""

MESSY_COLUMNS = {
    "name": {"type": "string", "nullable": True},
    "age": {"type": "int", "nullable": True, "min": 0},
    "height": {"type": "float", "nullable": True, "min": 0},
    "smoker": {"type": "bool", "nullable": True},
    "visits": {"type": "int", "nullable": True, "min": 0},
    "rooms": {"type": "int", "nullable": False, "min": 0},
    "city": {"type": "category", "nullable": False, "allowed": ["Lyon", "Nice", "Paris"]},
    "signup": {"type": "string", "nullable": True},
    "score": {"type": "float", "nullable": False},
    "notes": {"type": "string", "nullable": False},
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example's config folder and a messy data file beside it."""
    shutil.copytree(EXAMPLE_CONFIG, tmp_path / "config")
    (tmp_path / "messy.csv").write_text(MESSY_CSV)
    return tmp_path


def _outside_owned(text: str) -> list[str]:
    kept, in_schema = [], False
    for line in text.splitlines():
        in_schema = line.startswith("schema:") or (in_schema and line.startswith("  "))
        if not (in_schema or line.startswith(("project:", "  raw: "))):
            kept.append(line)
    return kept


def _init(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = scrubbed_env({"PIPELINE_CONFIG_DIR": str(project / "config")})
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "src" / "main.py"), "init", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project,
    )


def test_init_infers_the_contract_of_a_messy_file_and_keeps_every_other_line(project: Path) -> None:
    base = project / "config" / "base.yaml"
    before = base.read_text()

    report = init_project(
        str(project / "messy.csv"),
        target="churned",
        id_column="row_id",
        name="churn",
        force=True,
        config_dir=project / "config",
    )

    after = base.read_text()
    written = yaml.safe_load(after)
    assert written["schema"]["columns"] == MESSY_COLUMNS
    assert {k: v for k, v in written["schema"].items() if k != "columns"} == {
        "id_column": "row_id",
        "target": "churned",
        "task": "binary",
        "labels": ["No", "Yes"],
        "positive_class": "Yes",
    }
    assert '  labels: ["No", "Yes"]\n  # ' in after and '  positive_class: "Yes"\n' in after
    assert written["project"] == "churn"
    assert written["catalog"]["raw"] == {"kind": "input", "path": str(project / "messy.csv")}
    # Every key written has a comment: a comment line above each key, a trailing one on each column.
    schema_lines = after[after.index("\nschema:\n") + 1 : after.index("\nmake_data:")].strip().splitlines()
    keys = [i for i, line in enumerate(schema_lines) if line.startswith("  ") and not line.lstrip().startswith("#")]
    assert all(
        schema_lines[i].startswith("    ")
        and "  # seen: " in schema_lines[i]
        or schema_lines[i - 1].lstrip().startswith("#")
        for i in keys
    )
    # Outside the owned sections (schema, the project line, the raw entry) the file is as it was, comments included.
    assert _outside_owned(after) == _outside_owned(before)
    assert report.review and any("'signup' looks like dates" in note for note in report.review)
    assert any("'notes' has a different value on every row" in note for note in report.review)
    assert any("category columns accept only the values seen (city)" in note for note in report.review)


def test_the_written_contract_accepts_the_data_it_was_inferred_from(project: Path) -> None:
    init_project(
        str(project / "messy.csv"), target="churned", id_column="row_id", force=True, config_dir=project / "config"
    )
    settings = load_config("local", config_dir=project / "config", env={})

    typed = validate_raw(pd.read_csv(project / "messy.csv"), settings.dataset_schema, settings.make_data)

    assert str(typed["age"].dtype) == "Int64" and str(typed["smoker"].dtype) == "boolean"
    assert settings.dataset_schema.positive_class == "Yes"


def test_init_refuses_to_overwrite_a_contract_without_force(project: Path) -> None:
    base = project / "config" / "base.yaml"
    before = base.read_bytes()

    refused = _init(project, "messy.csv", "--target", "churned")
    kept = _init(project, "--if-missing")

    assert refused.returncode == 2
    assert "already holds a data contract (30 columns under schema.columns)" in refused.stderr
    assert "--force" in refused.stderr
    assert kept.returncode == 0 and "left as it is" in kept.stderr
    assert base.read_bytes() == before


@pytest.mark.slow
def test_init_with_force_from_the_command_line_prints_what_it_inferred_and_what_to_review(project: Path) -> None:
    done = _init(project, "messy.csv", "--target", "churned", "--id-column", "row_id", "--force")

    assert done.returncode == 0, done.stderr
    assert "target 'churned': binary (2 distinct values); labels ['No', 'Yes']; positive class 'Yes'" in done.stdout
    assert "Review" in done.stdout and "nullable: false" in done.stdout
    assert yaml.safe_load((project / "config" / "base.yaml").read_text())["schema"]["id_column"] == "row_id"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["messy.csv", "--force"], "say which column to predict: --target COLUMN"),
        (["messy.csv", "--target", "churn", "--force"], "--target 'churn' is not a column of"),
        (["messy.csv", "--target", "churned", "--id-column", "id", "--force"], "--id-column 'id' is not a column"),
        (["messy.csv", "--target", "city", "--task", "binary", "--force"], "holds 3 values (Lyon, Nice, Paris), not 2"),
        (["messy.csv", "--target", "churned", "--positive-class", "yes", "--force"], "positive class 'yes' is not a"),
        (["missing.csv", "--target", "churned", "--force"], "does not exist"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(project: Path, args: list[str], expected: str) -> None:
    before = (project / "config" / "base.yaml").read_bytes()

    done = _init(project, *args)

    assert done.returncode != 0
    assert expected in done.stderr.replace("\n", " ")
    assert (project / "config" / "base.yaml").read_bytes() == before


@pytest.mark.slow
def test_without_a_data_file_init_completes_the_configs_own_contract(project: Path) -> None:
    """What `make setup` runs in a project from `copier copy`: the schema holds the answers, no columns yet."""
    base = project / "config" / "base.yaml"
    (project / "data" / "raw").mkdir(parents=True)
    shutil.copy(project / "messy.csv", project / "data" / "raw" / "messy.csv")
    answers = 'schema:\n  id_column: row_id\n  target: churned\n  task: auto\n  positive_class: ""\n  columns: {}\n'
    text = set_entry_key(
        replace_section(base.read_text(), "schema", answers),
        "catalog",
        "raw",
        "path",
        str(project / "data" / "raw" / "messy.csv"),
    )
    base.write_text(text)

    done = _init(project, "--if-missing")

    assert done.returncode == 0, done.stderr
    schema = yaml.safe_load(base.read_text())["schema"]
    assert schema["columns"] == MESSY_COLUMNS
    assert (schema["id_column"], schema["task"], schema["positive_class"]) == ("row_id", "binary", "Yes")
    assert yaml.safe_load(base.read_text())["catalog"]["raw"]["path"] == str(project / "data" / "raw" / "messy.csv")


def test_column_types_of_a_parquet_style_frame() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
            "count": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, False, None], dtype="boolean"),
            "level": [-1.5, 0.0, 2.0],
        }
    )

    guesses = {c: infer_column(frame[c]).spec() for c in frame.columns}

    assert guesses == {
        "when": {"type": "string", "nullable": True},
        "count": {"type": "int", "nullable": True, "min": 0},
        "flag": {"type": "bool", "nullable": True},
        "level": {"type": "float", "nullable": False},
    }


def test_an_empty_column_is_refused() -> None:
    with pytest.raises(DataValidationError) as caught:
        infer_column(pd.Series([None, None], name="blank", dtype="object"))

    assert "column 'blank' has no value on any row" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "task", "labels"),
    [
        ([0.5, 1.5, 2.25, 3.0] * 3, "regression", None),
        (list(range(30)), "regression", None),
        ([1, 2, 3, 1, 2, 3], "multiclass", ["1", "2", "3"]),
        (["setosa", "versicolor", "virginica"] * 2, "multiclass", ["setosa", "versicolor", "virginica"]),
        ([0.0, 1.0, None, 1.0], "binary", ["0", "1"]),
        ([True, False, True], "binary", ["False", "True"]),
    ],
)
def test_the_task_is_inferred_from_the_targets_values(values: list, task: str, labels: list[str] | None) -> None:
    guess = infer_target(pd.Series(values, name="y"))

    assert (guess.task, guess.labels) == (task, labels)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"0": 90, "1": 10}, "1"),
        ({"false": 3, "true": 9}, "true"),
        ({"No": 5, "Yes": 7}, "Yes"),
        ({"B": 357, "M": 212}, "M"),
        ({"a": 5, "b": 5}, "b"),
    ],
)
def test_the_positive_class_is_one_true_yes_or_else_the_rarer_label(counts: dict[str, int], expected: str) -> None:
    assert choose_positive_class(counts)[0] == expected


def test_a_task_the_target_cannot_have_is_refused() -> None:
    with pytest.raises(DataValidationError) as text_regression:
        infer_target(pd.Series(["a", "b", "a"], name="y"), "regression")
    with pytest.raises(DataValidationError) as two_classes:
        infer_target(pd.Series(["a", "b", "a"], name="y"), "multiclass")

    assert "which a regression cannot predict" in str(text_regression.value)
    assert "use --task binary" in str(two_classes.value)


def test_an_edit_outside_the_owned_keys_is_refused() -> None:
    from mlsteps.config_text import check_edit

    with pytest.raises(ConfigError) as caught:
        check_edit("a: 1\nschema: {x: 1}\n", "a: 2\nschema: {x: 2}\n", [("schema",)], "base.yaml")

    assert "would change more than the keys it owns" in str(caught.value)


def test_make_setup_infers_a_missing_contract_before_running_the_pipeline(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "requirements.lock").write_text("")

    done = subprocess.run(
        ["make", "-n", "setup", "PYTHON=python3"], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    lines = done.stdout.splitlines()
    init = next(i for i, line in enumerate(lines) if "src/main.py init --if-missing" in line)
    run = next(i for i, line in enumerate(lines) if "src/main.py --environment local" in line)
    assert done.returncode == 0, done.stderr
    assert init < run


def test_a_regression_target_switches_the_classifiers_to_regressors_and_keeps_the_rest() -> None:
    from mlsteps.init_project import InitReport, edit_config

    text = (EXAMPLE_CONFIG / "base.yaml").read_text()
    frame = pd.DataFrame({"x": [1.0, 2.5, 3.0], "y": [10.5, 20.25, 31.0]})
    report = InitReport(
        EXAMPLE_CONFIG / "base.yaml",
        False,
        raw_path="raw/y.csv",
        rows=3,
        columns=[infer_column(frame["x"])],
        target=infer_target(frame["y"]),
    )

    edited, owned = edit_config(text, yaml.safe_load(text), report, None, None)

    train_model = yaml.safe_load(edited)["train_model"]
    assert train_model["estimator"] == "ridge"
    assert {k: v["class"] for k, v in train_model["estimators"].items()} == {
        "ridge": "sklearn.linear_model.Ridge",
        "random_forest": "sklearn.ensemble.RandomForestRegressor",
        "gradient_boosting": "sklearn.ensemble.HistGradientBoostingRegressor",
    }
    assert ("train_model", "estimators") in owned
    assert any("does not fit a regression task" in note for note in report.review)
    kept = yaml.safe_load(text)
    assert {k: v for k, v in yaml.safe_load(edited).items() if k not in ("schema", "train_model")} == {
        k: v for k, v in kept.items() if k not in ("schema", "train_model")
    }
    assert train_model["seed"] == kept["train_model"]["seed"]


@pytest.mark.parametrize(
    ("target", "task", "removed", "kept"),
    [
        (["a", "b", "c"] * 4, "multiclass", ["roc_auc"], {"f1_score": 0.93, "recall_score": 0.92}),
        ([1.5, 2.25, 7.0, 9.5] * 3, "regression", ["f1_score", "recall_score", "roc_auc"], {}),
    ],
)
def test_init_for_another_task_drops_the_gate_metrics_that_do_not_fit_it(
    project: Path, target: list, task: str, removed: list[str], kept: dict
) -> None:
    frame = pd.DataFrame({"x": [float(i) for i in range(12)], "y": target})
    frame.to_csv(project / "other.csv", index=False)
    prd_before = (project / "config" / "prd.yaml").read_text()

    report = init_project(str(project / "other.csv"), target="y", force=True, config_dir=project / "config")

    prd = (project / "config" / "prd.yaml").read_text()
    assert yaml.safe_load(prd)["gate"]["thresholds"] == kept
    assert prd.replace(prd[prd.index("  thresholds:") :], "") == prd_before.replace(
        prd_before[prd_before.index("  thresholds:") :], ""
    )  # the lines before the gate's thresholds are as they were
    assert any(note.startswith(f"prd.yaml: gate.thresholds {', '.join(removed)} removed") for note in report.review)
    assert load_config("prd", config_dir=project / "config", env={}).dataset_schema.task == task


def test_a_gate_metric_of_another_task_is_one_line_naming_the_file(project: Path) -> None:
    prd = project / "config" / "prd.yaml"
    prd.write_text(prd.read_text().replace("roc_auc: 0.97", "r2_score: 0.5"))

    with pytest.raises(ConfigError) as caught:
        load_config("prd", config_dir=project / "config", env={})

    message = str(caught.value)
    assert "not metrics of a binary model: gate.thresholds in prd.yaml: r2_score" in message
    assert "\n" not in message and "'catalog'" not in message  # one line, never the whole config


@pytest.mark.slow
def test_init_reads_a_file_on_s3(project: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from tests.servers import AWS_TEST_ENV

    for key, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="init-data")
    s3.put_object(Bucket="init-data", Key="in/messy.csv", Body=MESSY_CSV.encode())

    init_project(
        "s3://init-data/in/messy.csv", target="churned", id_column="row_id", force=True, config_dir=project / "config"
    )

    written = yaml.safe_load((project / "config" / "base.yaml").read_text())
    assert written["catalog"]["raw"]["path"] == "s3://init-data/in/messy.csv"
    assert written["schema"]["columns"] == MESSY_COLUMNS


def test_a_two_valued_target_given_as_a_regression_gets_a_review_note(project: Path) -> None:
    frame = pd.DataFrame({"x": [float(i) for i in range(12)], "y": [0, 1] * 6})
    frame.to_csv(project / "zero_one.csv", index=False)

    report = init_project(
        str(project / "zero_one.csv"), target="y", task="regression", force=True, config_dir=project / "config"
    )

    assert report.target is not None and report.target.task_reason == "set with --task regression"
    assert any(
        n.startswith("target 'y' holds two values only (0 and 1), and the task is regression") for n in report.review
    )


def test_completing_the_configs_contract_says_the_task_came_from_the_config(project: Path) -> None:
    config = project / "config" / "base.yaml"
    text = config.read_text()
    columns_start = text.index("  columns:\n")
    columns_end = text.index("\n\n", columns_start)
    config.write_text(text[:columns_start] + "  columns: {}" + text[columns_end:])

    report = init_project(config_dir=project / "config")

    assert report.target is not None
    assert report.target.task_reason == "binary, from schema.task in the config"


def test_a_column_named_like_an_id_with_a_value_per_row_is_taken_as_the_id_unless_told_otherwise(
    project: Path,
) -> None:
    # As a loans file holds them: a text id per row, and no --id-column given (a project made by Copier).
    loans = "loan_id,amount,region,defaulted\n" + "".join(
        f"L-{i:04d},{1000 + 37 * i},{'north' if i % 3 else 'south'},{'yes' if i % 4 == 0 else 'no'}\n"
        for i in range(40)
    )
    (project / "loans.csv").write_text(loans)

    chosen = init_project(str(project / "loans.csv"), target="defaulted", force=True, config_dir=project / "config")
    chosen_schema = yaml.safe_load((project / "config" / "base.yaml").read_text())["schema"]
    none = init_project(
        str(project / "loans.csv"), target="defaulted", id_column="", force=True, config_dir=project / "config"
    )
    none_schema = yaml.safe_load((project / "config" / "base.yaml").read_text())["schema"]

    assert chosen_schema["id_column"] == "loan_id" and "loan_id" not in chosen_schema["columns"]
    assert chosen.review[0].startswith("'loan_id' is the id column: it is named like one")
    assert none_schema["id_column"] is None and "loan_id" in none_schema["columns"]
    assert not any("is the id column" in note for note in none.review)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"loan_id": ["a", "b", "c"], "paid": [1, 2, 3]}, "loan_id"),
        ({"customerId": [7, 3, 9], "valid": [1, 2, 3]}, "customerId"),
        ({"ID": [1, 2, 3]}, "ID"),
        ({"loan_id": ["a", "a", "c"]}, None),  # repeats: not an identifier of the row
        ({"loan_id": ["a", None, "c"]}, None),
        ({"score_id": [0.5, 1.5, 2.5]}, None),  # fractions
        ({"loan_id": ["a", "b", "c"], "row_id": [1, 2, 3]}, None),  # two: the person chooses
        ({"paid": [1, 2, 3], "grid": ["a", "b", "c"]}, None),
    ],
)
def test_the_id_column_init_takes(columns: dict, expected: str | None) -> None:
    frame = pd.DataFrame({**columns, "target": ["x", "y", "x"]})

    assert identifier_column(frame, "target") == expected
