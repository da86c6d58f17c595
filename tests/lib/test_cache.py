"""Cache keys: every part that must change the key does, and nothing else does."""

from __future__ import annotations

from src.lib.cache import TAG_CODE, TAG_INPUTS, TAG_PARAMS, code_digest, make_key

CODE = ("src/data",)


def _key(params=None, inputs=None, environment="local", code=CODE):
    return make_key("make_data", environment, code, params or {"a": 1, "b": [1, 2]}, inputs or {"raw": "sha256:x"})


def test_same_parts_same_key() -> None:
    assert _key().value == _key().value


def test_parameter_order_does_not_matter() -> None:
    assert _key(params={"b": [1, 2], "a": 1}).value == _key().value


def test_each_part_changes_the_key() -> None:
    base = _key().value

    assert _key(params={"a": 2, "b": [1, 2]}).value != base
    assert _key(inputs={"raw": "sha256:y"}).value != base
    assert _key(environment="dev").value != base
    assert _key(code=("src/features",)).value != base


def test_difference_names_what_changed() -> None:
    old = _key().tags()

    assert _key(params={"a": 2}).difference(old) == "parameters changed since the last run"
    assert _key(inputs={"raw": "z"}).difference(old) == "inputs changed since the last run"
    both = _key(params={"a": 2}, inputs={"raw": "z"}).difference(old)
    assert both == "parameters and inputs changed since the last run"
    assert _key().difference({**old, TAG_CODE: "other"}) == "code changed since the last run"
    assert _key().difference(old) == "the cached run's outputs are gone"
    assert {TAG_PARAMS, TAG_INPUTS} <= set(old)


def test_code_digest_covers_every_file_of_a_folder() -> None:
    folder = code_digest(("src/data",))
    one_file = code_digest(("src/data/make_dataset.py",))

    assert folder != one_file
    assert len(folder) == 64
