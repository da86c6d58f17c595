"""``providers`` names the distributions ``importlib.metadata.packages_distributions`` maps each module to."""

from __future__ import annotations

from importlib.metadata import packages_distributions

from mlsteps.packages import providers


def test_every_installed_module_has_the_providers_the_standard_library_finds() -> None:
    expected = packages_distributions()

    found = {module: providers(module) for module in expected}

    assert found == {module: list(names) for module, names in expected.items()}
    assert found["sklearn"] == ["scikit-learn"]


def test_a_module_of_no_distribution_has_none() -> None:
    assert providers("no_such_module_anywhere") == []
