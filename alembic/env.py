"""Alembic environment: programmatic runs (voxeldb.meta.upgrade) and the ``alembic`` CLI."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from voxeldb._engine import make_engine
from voxeldb.meta import Base, configure_kwargs, sqlite_foreign_keys_off

config = context.config
target_metadata = Base.metadata

# Only the CLI (with alembic.ini) configures logging; a library call must not reconfigure
# its host application's loggers.
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str | None:
    # An explicit -x url=... or sqlalchemy.url wins; otherwise DATABASE_URL via the settings.
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )


def run_migrations_offline() -> None:
    from voxeldb._engine import normalize_url
    from voxeldb._settings import get_settings

    url = normalize_url(_url() or get_settings().database_url)
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    with sqlite_foreign_keys_off(connection):
        context.configure(
            connection=connection, target_metadata=target_metadata, **configure_kwargs(connection)
        )
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
