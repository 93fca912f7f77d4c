"""The public names of ``voxeldb`` and its packages stay.

``voxeldb.__all__`` is pinned exactly. A package's ``__all__`` is also the interface the
packages above it use (docs/architecture.md), so it may grow; the names users program
against must stay in it, and every exported name must resolve.
"""

from __future__ import annotations

import inspect
import sys

import voxeldb
import voxeldb.chunks
import voxeldb.errors


def test_voxeldb_exports() -> None:
    assert set(voxeldb.__all__) == {
        "BlockEdit",
        "Change",
        "ChunkStore",
        "Database",
        "RollbackReport",
        "__version__",
        "connect",
        "errors",
    }
    assert voxeldb.Change is voxeldb.chunks.Change  # the journal's record, one class
    assert voxeldb.errors is sys.modules["voxeldb.errors"]
    assert isinstance(voxeldb.__version__, str) and voxeldb.__version__[0].isdigit()
    params = inspect.signature(voxeldb.connect).parameters
    assert list(params) == ["url", "cache"]
    assert params["url"].default is None
    assert params["cache"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["cache"].default is None


def _exports(module: object) -> set[str]:
    names: list[str] = module.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names)), f"{module!r}: a name is exported twice"
    assert not [n for n in names if n.startswith("_") and n != "__version__"], names
    return set(names)


def test_chunks_exports() -> None:
    assert _exports(voxeldb.chunks) >= {
        "ChunkLRU",
        "ChunkStore",
        "RedisChunkCache",
        "decode_chunk",
        "encode_chunk",
        "intern_states",
        "lookup_states",
        "normalize_state",
    }
    assert voxeldb.chunks.ChunkStore is voxeldb.ChunkStore
    from voxeldb.chunks.codec import decode_chunk, encode_chunk

    assert voxeldb.chunks.encode_chunk is encode_chunk
    assert voxeldb.chunks.decode_chunk is decode_chunk


def test_errors_exports() -> None:
    assert _exports(voxeldb.errors) >= {
        "ChunkFormatError",
        "ConcurrencyError",
        "ConfigurationError",
        "CoordinateError",
        "DatabaseUnavailableError",
        "NotFoundError",
        "SnapshotError",
        "TransferError",
        "ValidationError",
        "VoxelDBError",
    }
    for name in ("ChunkFormatError", "CoordinateError", "ValidationError", "ConfigurationError"):
        assert issubclass(getattr(voxeldb.errors, name), ValueError)
        assert issubclass(getattr(voxeldb.errors, name), voxeldb.errors.VoxelDBError)


def test_every_exported_name_resolves_and_store_methods_exist() -> None:
    for module in (voxeldb, voxeldb.chunks, voxeldb.errors):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)
    for method in (
        "put",
        "put_many",
        "get",
        "region",
        "stream",
        "get_block",
        "set_block",
        "set_blocks",
        "delete",
    ):
        assert callable(getattr(voxeldb.ChunkStore, method))
    stream = inspect.signature(voxeldb.ChunkStore.stream).parameters
    assert stream["encoded"].kind is inspect.Parameter.KEYWORD_ONLY
    for method in ("create_schema", "session", "chunks", "close", "create_world"):
        assert callable(getattr(voxeldb.Database, method))


def test_meta_services_and_tools_exports() -> None:
    import voxeldb.cli
    import voxeldb.meta
    import voxeldb.services
    import voxeldb.setup
    import voxeldb.terrain

    assert _exports(voxeldb.meta) >= {
        "AIAgent",
        "AIAgentActivity",
        "Base",
        "BlockState",
        "Character",
        "CharacterRelationship",
        "InventoryItem",
        "SessionLocal",
        "Story",
        "StoryChoice",
        "User",
        "UserSession",
        "World",
        "WorldChunk",
        "WorldEvolutionLog",
        "check_database_health",
        "configure",
        "get_engine",
    }
    assert _exports(voxeldb.services) >= {
        "UnknownIdError",
        "add_item",
        "authenticate_user",
        "change_password",
        "check_user_permission",
        "create_agent",
        "create_character",
        "create_story",
        "create_user",
        "create_world",
        "get_chunk",
        "get_world_settings",
        "login",
        "logout",
        "make_choice",
        "reset_cache",
        "run_agent_activity",
        "set_block",
        "update_world_settings",
        "user_for_token",
    }
    assert voxeldb.setup.__all__ == ["DatabaseSetup"]
    assert set(voxeldb.cli.__all__) == {"app", "main", "run"}
    assert _exports(voxeldb.terrain) >= {
        "SEA_LEVEL",
        "TERRAIN_STATES",
        "generate_chunk",
        "terrain_chunks",
    }
    import voxeldb.ops

    assert _exports(voxeldb.ops) >= {
        "DatabaseSetup",
        "collect_health",
        "create_world_snapshot",
        "ensure_world",
        "generate_terrain",
        "map_frame",
        "read_manifest",
        "render_map",
        "resolve_world",
        "restore_world_snapshot",
        "transfer_database",
    }
    assert voxeldb.setup.DatabaseSetup is voxeldb.ops.DatabaseSetup
    for module in (
        voxeldb.meta,
        voxeldb.services,
        voxeldb.setup,
        voxeldb.cli,
        voxeldb.terrain,
        voxeldb.ops,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
