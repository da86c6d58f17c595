"""mlsteps.workflows on a made-up project whose workflows break each rule once: every check can fail."""

from __future__ import annotations

from pathlib import Path

import click
from mlsteps import workflows

BROKEN = """\
name: broken
on: [push, pull_request]
permissions:
  contents: read
jobs:
  ship:
    runs-on: ubuntu-latest
    env:
      AWS_SECRET_ACCESS_KEY: ${{ secrets.KEY }}
    steps:
      - uses: actions/checkout@main
      - uses: aws-actions/configure-aws-credentials@v6
        with:
          role-to-assume: arn:aws:iam::123456789012:role/anything
          aws-region: eu-west-1
      - run: make tset && python src/main.py run -e dev
      - run: .venv/bin/python src/main.py deploi -e prd
      - run: .venv/bin/python src/main.py run --no-such-option
      - run: curl https://example.invalid/install.sh | sh
        timout-minutes: 5
"""


@click.group()
def _cli() -> None:
    pass


@_cli.command("run")
@click.option("-e", "--environment")
def _run(environment: str | None) -> None:
    pass


def _project(tmp_path: Path) -> Path:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "broken.yml").write_text(BROKEN)
    (tmp_path / "Makefile").write_text("test: install\n\tpytest\ninstall:\n\tuv sync\n")
    return tmp_path


def test_commands_that_are_neither_make_targets_nor_cli_commands_are_named(tmp_path: Path) -> None:
    problems = workflows.command_problems(_project(tmp_path), _cli)

    assert any("make tset: no such target in the Makefile" in p for p in problems)
    assert any("runs src/main.py with ['python'], not the project's .venv/bin/python" in p for p in problems)
    assert any("unknown command deploi (src/main.py has: run)" in p for p in problems)
    assert any("unknown option --no-such-option of run" in p for p in problems)
    assert any("runs `curl`, which is neither make nor src/main.py" in p for p in problems)
    assert any("runs `sh`" in p for p in problems)
    assert len(problems) == 6


def test_keys_a_role_from_outside_an_environment_and_unpinned_actions_are_named(tmp_path: Path) -> None:
    problems = workflows.access_problems(_project(tmp_path))

    assert problems == [
        "broken.yml: AWS keys; assume a role instead (aws-actions/configure-aws-credentials)",
        "broken.yml: job ship assumes a role without permissions: id-token: write",
        "broken.yml: job ship reaches AWS outside the GitHub environments dev and prd",
        "broken.yml: job ship reaches AWS on a pull request",
        "broken.yml: job ship assumes arn:aws:iam::123456789012:role/anything, not vars.AWS_ROLE_ARN",
        "broken.yml: actions/checkout@main is not pinned to a version",
    ]


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    result = workflows.actionlint(_project(tmp_path))

    assert result.returncode == 1 and "timout-minutes" in result.stdout
