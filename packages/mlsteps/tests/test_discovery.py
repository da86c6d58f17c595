"""Reading step declarations from source: a wrong-looking option spec is refused with the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlsteps.discovery import DeclarationError, declarations


def _src(tmp_path: Path, options: str) -> Path:
    src = tmp_path / "src"
    (src / "steps").mkdir(parents=True)
    (src / "steps" / "one.py").write_text(
        f'STEP = Step(name="one", reads=("raw",), writes=("out",), run=None, options={options})\n'
    )
    return src


def test_declared_options_are_read_without_importing_the_step(tmp_path: Path) -> None:
    (found,) = declarations(_src(tmp_path, '{"--seed": {"key": "seed", "type": "int"}}'))

    assert found.options == {"--seed": {"key": "seed", "type": "int"}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ('{"--verbose-fit": {"key": "verbose", "type": "bool"}}', "type 'bool' is not one of flag, float, int, str"),
        ('{"--seed": {"key": "seed", "default": 3}}', "unknown spec key(s) ['default']"),
        ('{"--seed": {"type": "int"}}', "give a mapping with the config key it sets"),
        ('{"seed": {"key": "seed"}}', "an option is named '--like-this'"),
    ],
)
def test_an_option_spec_that_looks_right_but_is_not_is_refused(tmp_path: Path, options: str, expected: str) -> None:
    src = _src(tmp_path, options)

    with pytest.raises(DeclarationError) as caught:
        declarations(src)

    assert expected in str(caught.value)
    assert "one.py" in str(caught.value)
