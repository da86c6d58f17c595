"""The template's test fixtures (tests/template_fixtures.py) for its own tests; a generated project has neither file,
only tests/conftest.py."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.template_fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``long`` first (in their order), then the rest: with ``pytest -n 2 --dist worksteal`` the last
    test to start is a short one, so that neither worker waits long for the other at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
