"""Run the Alembic migrations shipped inside the package (``voxeldb/migrations``).

``db.create_schema()``, the operator jobs and the tests come through here; the ``alembic``
command line uses the same ``env.py`` through ``alembic.ini``. It lives in ``meta`` because
the migrations describe the ORM's tables (``Base.metadata``). Alembic itself is imported when
a function needs it, so ``import voxeldb.meta`` stays light.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from voxeldb.meta._base import Base, UUIDType

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config

__all__ = [
    "alembic_config",
    "configure_kwargs",
    "current",
    "downgrade",
    "head_revision",
    "include_object",
    "pending_changes",
    "render_item",
    "script_location",
    "sqlite_foreign_keys_off",
    "upgrade",
]


def script_location() -> str:
    """Where the migration scripts are, for the wheel and the editable install alike."""
    return str(files("voxeldb") / "migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the shipped scripts; env.py runs on ``connection`` if given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (default: the newest)."""
    from alembic import command

    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database of ``engine`` back to ``revision`` (``"base"``: nothing left)."""
    from alembic import command

    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), revision)
        conn.commit()


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision of the shipped migrations (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def include_object(dialect_name: str) -> Any:
    """An ``include_object`` hook leaving out the indexes made only on other backends.

    An index whose ``info["dialects"]`` does not name ``dialect_name`` (the GIN indexes, made
    on PostgreSQL only) is neither created there nor reported missing.
    """

    def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # The journal's partitions (PostgreSQL) are made at run time, a day each, not by the
        # metadata: autogenerate cannot compare them (docs/journal.md).
        if type_ == "table" and reflected and compare_to is None and _journal_partition(name):
            return False
        if type_ == "index" and not reflected:
            dialects = obj.info.get("dialects")
            if dialects and dialect_name not in dialects:
                return False
        return True

    return _include


def _journal_partition(name: str | None) -> bool:
    from voxeldb.chunks import JOURNAL_PARTITION_PREFIX

    return name is not None and (
        name.startswith(JOURNAL_PARTITION_PREFIX) or name == "world_journal_default"
    )


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render voxeldb's ``UUIDType`` as the plain ``sa.Uuid()`` it is in DDL."""
    if type_ == "type" and isinstance(obj, UUIDType):
        return "sa.Uuid()"
    return False


def configure_kwargs(connection: Connection) -> dict[str, Any]:
    """What env.py passes to ``context.configure`` (and the tests to ``compare_metadata``)."""
    return {
        "render_as_batch": connection.dialect.name == "sqlite",
        "include_object": include_object(connection.dialect.name),
        "render_item": render_item,
        "compare_type": True,
    }


def pending_changes(engine: Engine) -> list[Any]:
    """Differences between the models and the database (``alembic check``): [] when in sync."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts=configure_kwargs(conn))
        return list(compare_metadata(ctx, Base.metadata))


@contextlib.contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Foreign keys off around a migration on SQLite.

    Batch mode rebuilds a table (copy, drop, rename); with foreign keys on, dropping the old
    table would cascade-delete the rows that reference it. The pragma only works outside a
    transaction, hence on the raw connection before the migration's transaction begins.
    """
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.commit()
        raw.execute("PRAGMA foreign_keys=ON")
