"""What the command line reads from the environment before any command runs."""

from __future__ import annotations

import pytest
from mlsteps.cli_options import STOP_GRACE_SECONDS, stop_grace_seconds
from mlsteps.errors import ConfigError


def test_the_stop_grace_is_a_positive_number_of_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_STOP_GRACE_SECONDS", raising=False)
    assert stop_grace_seconds() == STOP_GRACE_SECONDS
    monkeypatch.setenv("PIPELINE_STOP_GRACE_SECONDS", "2.5")
    assert stop_grace_seconds() == 2.5
    for wrong in ("8s", "0", "-3", "inf", "nan"):
        monkeypatch.setenv("PIPELINE_STOP_GRACE_SECONDS", wrong)
        with pytest.raises(ConfigError, match="PIPELINE_STOP_GRACE_SECONDS=.* is not a positive number"):
            stop_grace_seconds()
