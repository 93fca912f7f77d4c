"""World lookup (``voxeldb.services.resolve_world``): by id, by name, and the clear failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import voxeldb
from tests._services import temporary_database
from voxeldb import services
from voxeldb.errors import NotFoundError, ValidationError
from voxeldb.services import WorldRef, resolve_world


@pytest.fixture
def db(database_url: str, engine: Engine) -> Iterator[voxeldb.Database]:
    database = voxeldb.connect(database_url, cache="memory")
    yield database
    database.close()


def test_by_name_and_by_id(db: voxeldb.Database) -> None:
    world_id = db.create_world("Eldoria", {"height": 32, "min_y": -16})
    by_name = resolve_world(db, "  Eldoria ")
    by_id = resolve_world(db, world_id)
    assert by_name == by_id
    assert isinstance(by_name, WorldRef)
    assert (by_name.id, by_name.name) == (world_id, "Eldoria")
    assert (by_name.height, by_name.min_y) == (32, -16)
    assert resolve_world(db, str(world_id)).id == world_id


def test_an_id_that_names_no_world_is_tried_as_a_name(db: voxeldb.Database) -> None:
    # A world may be named like a UUID: the id wins, the name is tried next.
    odd = str(uuid.uuid4())
    world_id = db.create_world(odd)
    assert resolve_world(db, odd).id == world_id


def test_unknown_and_empty(db: voxeldb.Database) -> None:
    with pytest.raises(NotFoundError, match="'nowhere'"):
        resolve_world(db, "nowhere")
    with pytest.raises(ValidationError) as info:
        resolve_world(db, "   ")
    assert info.value.field == "world"


def test_with_a_session_or_session_local(session_local: sessionmaker[Session]) -> None:
    world = services.create_world("Avalon")
    with session_local() as s:
        assert resolve_world(None, "Avalon", session=s).id == world.id
    assert resolve_world(None, world.id).name == "Avalon"


def test_a_database_without_the_schema_says_so(backend: str) -> None:
    with temporary_database(backend) as url:
        database = voxeldb.connect(url, cache="memory")
        try:
            with pytest.raises(NotFoundError, match="no voxeldb schema yet"):
                resolve_world(database, "anything")
        finally:
            database.close()
