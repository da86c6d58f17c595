"""Cache keys: every part that must change the key does, and nothing else does; code digests from imports."""

from __future__ import annotations

from pathlib import Path

from mlsteps.config import REPO_ROOT
from mlsteps.reuse.keys import TAG_CODE, TAG_INPUTS, TAG_PARAMS, code_digest, import_closure, make_key


def _key(params=None, inputs=None, environment="local", code="code-a"):
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
    assert _key(code="code-b").value != base


def test_difference_names_what_changed() -> None:
    old = _key().tags()

    assert _key(params={"a": 2}).difference(old) == "parameters changed since the last run"
    assert _key(inputs={"raw": "z"}).difference(old) == "inputs changed since the last run"
    both = _key(params={"a": 2}, inputs={"raw": "z"}).difference(old)
    assert both == "parameters and inputs changed since the last run"
    assert _key().difference({**old, TAG_CODE: "other"}) == "code changed since the last run"
    assert _key().difference(old) == "the cached run's outputs are gone"
    assert {TAG_PARAMS, TAG_INPUTS} <= set(old)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _relative(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_closure_follows_imports_at_any_depth_but_not_type_checking_blocks(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "src/__init__.py": "",
            "src/a/step.py": (
                "from typing import TYPE_CHECKING\nimport pandas\nfrom src.a.helpers import f\n"
                "if TYPE_CHECKING:\n    from src.b.policy import rule\n"
                "def run():\n    from src.c import lazy\n"
            ),
            "src/a/helpers.py": "from .deeper import g\n",
            "src/a/deeper.py": "",
            "src/b/policy.py": "",
            "src/c/lazy.py": "",
            "src/c/__init__.py": "",
        },
    )

    closure = _relative(import_closure("src.a.step", root), root)

    assert closure == ["src/a/deeper.py", "src/a/helpers.py", "src/a/step.py", "src/c/__init__.py", "src/c/lazy.py"]


def test_changing_an_imported_module_changes_the_digest_and_others_do_not(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"src/a/step.py": "from src.a import helpers\n", "src/a/helpers.py": "X = 1\n", "src/b/other.py": "Y = 1\n"},
    )
    before = code_digest("src.a.step", root)
    (root / "src/b/other.py").write_text("Y = 2\n")
    code_digest.cache_clear()
    unrelated = code_digest("src.a.step", root)
    (root / "src/a/helpers.py").write_text("X = 2\n")
    code_digest.cache_clear()
    related = code_digest("src.a.step", root)

    assert unrelated == before
    assert related != before


def test_train_model_key_covers_its_transforms_not_the_promotion_policy_or_serving() -> None:
    closure = _relative(import_closure("src.models.train_model"), REPO_ROOT)

    lib = "packages/mlsteps/src/mlsteps"
    assert {"src/models/train_model.py", f"{lib}/estimators.py", f"{lib}/schema.py"} <= set(closure)
    assert not {f"{lib}/promotion.py", f"{lib}/serving/app.py", f"{lib}/runs.py", f"{lib}/pipeline.py"} & set(closure)
