"""A client-side limit on PostgreSQL is not a lost connection (issue 12, item 8)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from voxeldb.chunks import open_backend


@pytest.mark.parametrize("backend", ["postgresql"])
def test_too_many_bind_parameters_is_not_a_lost_connection(engine: Engine) -> None:
    import uuid

    backend = open_backend(engine, uuid.uuid4())
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with pytest.raises(Exception) as info:
            raw.execute("SELECT " + ", ".join(["%s"] * 70_000), [1] * 70_000)
        assert backend.classify(info.value) is None
        assert raw.execute("SELECT 1").fetchone() == (1,)
