"""Text for people: byte sizes, and database or Redis URLs without their passwords."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

__all__ = ["format_size", "safe_url"]

_UNITS = ("bytes", "kB", "MB", "GB", "TB")


def format_size(size: int) -> str:
    """``size`` bytes the way ``pg_size_pretty`` writes them: ``"512 bytes"``, ``"1.5 MB"``.

    Units are powers of 1024.
    """
    value = float(size)
    for unit in _UNITS[:-1]:
        if abs(value) < 1024:
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"


def safe_url(url: str | URL) -> str:
    """``url`` with its password masked (``***``), safe to print and log.

    SQLAlchemy's own rendering (``hide_password=True``) for database and Redis URLs alike; a
    string that is not a URL at all becomes ``"<unparseable URL>"`` rather than being echoed.
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
