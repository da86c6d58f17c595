"""The GitHub Actions workflows (.github/): actionlint finds nothing, every command they run is a target of the
Makefile or a command of src/main.py, AWS is reached by assuming a role (OIDC), never with stored keys, and every
action is pinned to a version (the checks: mlsteps.workflows). docs/ci-cd.md says what runs when."""

from __future__ import annotations

from mlsteps import workflows
from mlsteps.cli import cli
from mlsteps.config import REPO_ROOT


def test_the_workflows_exist() -> None:
    names = {path.name for path in workflows.workflows(REPO_ROOT)}

    assert {"ci.yml", "pipeline-dev.yml", "release-prd.yml"} <= names
    assert workflows.run_scripts(REPO_ROOT)


def test_actionlint_finds_nothing() -> None:
    result = workflows.actionlint(REPO_ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_a_workflow_runs_is_a_make_target_or_a_cli_command() -> None:
    assert workflows.command_problems(REPO_ROOT, cli) == []


def test_aws_only_by_assuming_a_role_and_actions_pinned() -> None:
    assert workflows.access_problems(REPO_ROOT) == []


def test_the_release_runs_the_pipeline_on_prd_then_deploys() -> None:
    main = [".venv/bin/python", "src/main.py"]
    dev = [w for _, s in workflows.run_scripts(REPO_ROOT) for w in workflows.commands(s) if "src/main.py" in w]
    release_file = REPO_ROOT / ".github" / "workflows" / "release-prd.yml"
    release = [w for s in workflows.steps(release_file) if "run" in s for w in workflows.commands(s["run"])]

    assert [*main, "-e", "dev"] in dev
    assert release.index([*main, "deploy", "-e", "prd"]) > release.index([*main, "-e", "prd"])
