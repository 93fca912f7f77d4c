"""``voxeldb._text``: sizes for people, URLs without passwords."""

from __future__ import annotations

import pytest

from voxeldb._text import format_size, safe_url


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 kB"), (1536 * 1024, "1.5 MB"),
     (3 * 1024**3, "3.0 GB"), (2048 * 1024**4, "2048.0 TB")],
)  # fmt: skip
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://game:s3cret@db/prod", "redis://:s3cret@cache:6379/0"],
)
def test_safe_url_hides_the_password(url: str) -> None:
    shown = safe_url(url)
    assert "s3cret" not in shown
    assert "***" in shown


def test_safe_url_never_echoes_what_it_cannot_parse() -> None:
    assert safe_url("not a url :s3cret@") == "<unparseable URL>"
