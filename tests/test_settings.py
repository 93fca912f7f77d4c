"""A malformed setting is a ConfigurationError naming its variable (issue 12, item 16)."""

from __future__ import annotations

import pytest

from voxeldb._settings import get_settings
from voxeldb.errors import ConfigurationError


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("VOXELDB_BCRYPT_ROUNDS", "abc", "an integer from 4 to 31"),
        ("VOXELDB_REDIS_MODE", "bogus", "'encoded' or 'decoded'"),
        ("VOXELDB_REDIS_TIMEOUT_SECONDS", "0", "a number greater than 0"),
        ("VOXELDB_CACHE_BYTES", "-1", "an integer of at least 0"),
    ],
)
def test_malformed_variable_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r} is not valid"), message
    assert allowed in message, message
    assert "\n" not in message
    assert caught.value.__cause__ is None or not isinstance(caught.value.__cause__, KeyError)


def test_good_values_still_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXELDB_BCRYPT_ROUNDS", "5")
    monkeypatch.setenv("VOXELDB_REDIS_MODE", "decoded")
    settings = get_settings()
    assert settings.bcrypt_rounds == 5 and settings.redis_mode == "decoded"


def test_malformed_override_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="bcrypt_rounds"):
        get_settings(bcrypt_rounds="x")
