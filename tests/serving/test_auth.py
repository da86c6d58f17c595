"""API keys: digests from the environment or a secrets file, checked in either header."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mlsteps.errors import ConfigError
from mlsteps.serving.auth import ENV_DIGESTS, ENV_FILE, load_api_keys


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_no_keys_configured_means_keys_are_off() -> None:
    assert not load_api_keys({}).enabled


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "holder"),
    [
        ("Bearer k-one", None, "key-" + _sha("k-one")[:8]),
        ("bearer   k-one ", None, "key-" + _sha("k-one")[:8]),
        (None, "k-two", "key-" + _sha("k-two")[:8]),
        ("Bearer wrong", None, None),
        ("Basic k-one", None, None),
        (None, "", None),
        (None, None, None),
    ],
)
def test_keys_from_the_environment(authorization: str | None, x_api_key: str | None, holder: str | None) -> None:
    keys = load_api_keys({ENV_DIGESTS: f"{_sha('k-one')}, {_sha('k-two').upper()}"})

    assert keys.enabled
    assert keys.holder(authorization, x_api_key) == holder


def test_keys_from_a_secrets_file_carry_their_labels(tmp_path: Path) -> None:
    secrets = tmp_path / "api-keys"
    secrets.write_text(f"# who holds which key\n{_sha('alpha')} team-a\n\n{_sha('beta')}  # no label\n")

    keys = load_api_keys({ENV_FILE: str(secrets)})

    assert keys.holder("Bearer alpha", None) == "team-a"
    assert keys.holder(None, "beta") == "key-" + _sha("beta")[:8]
    assert keys.holder(None, _sha("alpha")) is None  # the digest itself is not a key


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({ENV_DIGESTS: "my-plain-secret"}, f"{ENV_DIGESTS} (item 1) is not a SHA-256 digest"),
        ({ENV_DIGESTS: f"{_sha('a')},abc123"}, f"{ENV_DIGESTS} (item 2) is not a SHA-256 digest"),
        ({ENV_FILE: "/nonexistent/api-keys"}, "cannot be read"),
    ],
)
def test_malformed_keys_stop_the_server_with_where_they_are(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_api_keys(env)

    assert message in str(caught.value)
    assert "my-plain-secret" not in str(caught.value)


def test_a_malformed_line_of_the_file_is_named(tmp_path: Path) -> None:
    secrets = tmp_path / "api-keys"
    secrets.write_text(f"{_sha('alpha')} team-a\nnot-a-digest team-b\n")

    with pytest.raises(ConfigError) as caught:
        load_api_keys({ENV_FILE: str(secrets)})

    assert f"line 2 of {ENV_FILE}={secrets}" in str(caught.value)
    assert "sha256sum" in str(caught.value)
