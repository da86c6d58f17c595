"""The command line, run as a user runs it: a subprocess from the repo root or from src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT

from tests.helpers import scrubbed_env


def _run(args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    full_env = scrubbed_env(env)
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def test_help_lists_steps_and_environment() -> None:
    result = _run(["src/main.py", "--help"])

    assert result.returncode == 0
    assert "--step" in result.stdout
    assert "--environment" in result.stdout
    assert all(step in result.stdout for step in ("make_data", "feat_data", "train_model", "predict"))


def test_another_python_runs_the_projects_own_or_says_to_make_setup(tmp_path: Path) -> None:
    # The Python the project's virtualenv was made from has no mlsteps: `python src/main.py` outside the virtualenv.
    base = Path(sys.base_prefix) / "bin" / "python3"
    env = scrubbed_env(drop=("PIPELINE_REEXEC", "PYTHONPATH"))
    lacks = subprocess.run([base, "-c", "import mlsteps"], check=False, capture_output=True, env=env)
    assert lacks.returncode != 0, f"{base} has mlsteps installed: this test needs a Python without it"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text((REPO_ROOT / "src" / "main.py").read_text())

    run = [base, "src/main.py", "--help"]
    helped = subprocess.run(run, check=False, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    refused = subprocess.run(run, check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)

    assert helped.returncode == 0 and "Usage: main.py" in helped.stdout, helped.stderr[-2000:]
    assert refused.returncode == 2 and "run `make setup`" in refused.stderr
    assert f"{tmp_path / '.venv' / 'bin' / 'python'} does not exist" in refused.stderr


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, runpy; sys.argv = ['main.py', '--help']\n"
        # Not run as __main__: main() ends the process with os._exit, before this probe could print.
        "runpy.run_path('src/main.py', run_name='probe')\nfrom mlsteps.cli import cli\n"
        "try:\n    cli()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'pandas', 'sklearn', 'pandera') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = _run(["-c", code])

    assert "HEAVY []" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        (["--environment", "staging"], "unknown environment 'staging'", 2),
        (["--step", "train"], "unknown step(s) ['train']", 2),
        (["--estimator", "xgb"], "train_model.estimator", 2),
        (["--seed", "abc"], "'abc' is not a valid int", 2),
        (["--param", "C"], "is not KEY=VALUE", 2),
        (["--param", "Cee=1"], "['Cee'] not accepted by LogisticRegression", 2),
        # 0 workers or a timeout of 0 s would otherwise fall back to the config's values without a word
        # another environment's model on this environment's endpoint, not asked for
        (["deploy", "-e", "prd", "--model-uri", "models:/breast-cancer-dev/1"], "the model of environment 'dev'", 2),
        # a step named as if it were a command
        (
            ["predict", "--input", "new.csv"],
            "'predict' is a step: python src/main.py --step predict --input new.csv",
            2,
        ),
        (["serve", "--workers", "0"], "'--workers': 0 is not in the range x>=1", 2),
        (["serve", "--timeout", "0"], "'--timeout': 0.0 is not in the range x>0", 2),
    ],
)
def test_bad_options_fail_with_one_clear_message(tmp_path: Path, args: list[str], expected: str, code: int) -> None:
    env = {"PIPELINE_DATA_ROOT": str(tmp_path / "data"), "PIPELINE_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}

    result = _run(["src/main.py", *args], env)

    assert result.returncode == code
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_runs_from_src_folder_and_prints_a_summary(workspace) -> None:
    result = _run(["main.py", "--step", "make_data,feat_data"], workspace.env(), cwd=REPO_ROOT / "src")

    assert result.returncode == 0, result.stderr
    # Not a terminal: one line per step, saying why it ran.
    assert "ok make_data in" in result.stderr and "(no earlier run)" in result.stderr
    assert "ok feat_data" in result.stderr
    assert "[1/2]" not in result.stderr
    assert "make_data" in result.stdout and "feat_data" in result.stdout
    assert f"mlflow ui --backend-store-uri {workspace.tracking_uri}" in result.stdout
    assert list(workspace.data_root.glob("processed/*/train.parquet"))


@pytest.mark.slow
def test_missing_raw_file_fails_cleanly(workspace) -> None:
    (workspace.data_root / "raw" / "breast_cancer.csv").unlink()

    result = _run(["src/main.py", "--step", "make_data"], workspace.env())

    assert result.returncode == 1
    assert "breast_cancer.csv' does not exist" in result.stderr
    assert "marked FAILED" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_unknown_model_uri_fails_cleanly(workspace) -> None:
    setup = _run(["src/main.py", "--step", "make_data,feat_data"], workspace.env())
    assert setup.returncode == 0, setup.stderr

    result = _run(["src/main.py", "--step", "predict", "--model-uri", "models:/nope@champion"], workspace.env())

    assert result.returncode == 2  # a usage error, also when the step resolves the URI
    assert "model 'models:/nope@champion' does not exist" in result.stderr
    assert not list(workspace.data_root.glob("processed/predictions/**/*.parquet"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from-run", "0" * 32], f"run '{'0' * 32}' does not exist"),
        (["promote", "--version", "99"], "has no version 99"),
        (["--step", "predict", "--input", "missing.csv"], "does not exist: check the path given to --input"),
        (["check", "--environment", "staging"], "unknown environment 'staging'"),  # as the pipeline says it
    ],
)
def test_what_the_command_names_and_does_not_exist_exits_2(workspace, args: list[str], expected: str) -> None:
    result = _run(["src/main.py", *args], workspace.env())

    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in (result.stdout + result.stderr).replace("\n", " ")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_step_that_could_not_start_does_not_claim_a_failed_run(workspace) -> None:
    result = _run(["src/main.py", "--step", "feat_data"], workspace.env())

    assert result.returncode == 1
    assert "no finished 'make_data' run" in result.stderr
    assert "the step did not start; the pipeline run is marked FAILED" in result.stderr
    assert "the step's run and the pipeline run are marked FAILED" not in result.stderr


@pytest.mark.slow
def test_quiet_prints_nothing_but_errors(workspace) -> None:
    quiet = _run(["src/main.py", "--step", "make_data", "--quiet"], workspace.env())
    both = _run(["src/main.py", "--quiet", "--verbose"], workspace.env())

    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert both.returncode == 2
    assert "--quiet and --verbose contradict each other" in both.stderr
