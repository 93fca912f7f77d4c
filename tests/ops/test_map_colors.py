"""Maps that know their blocks: built-in colour tables, colors.txt files, the unknown count,
north at the top, the legend strip, and maps drawn from summaries (or decoded chunks)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import voxeldb
from voxeldb import Database
from voxeldb.chunks import world_chunks_table
from voxeldb.errors import ValidationError
from voxeldb.ops import BACKGROUND, render_map, resolve_world
from voxeldb.ops._map_colors import builtin_colors, parse_colors, resolve_color
from voxeldb.ops._map_legend import LEGEND_HEIGHT, LEGEND_MIN_WIDTH

HEIGHT = 32


def test_builtin_tables_load_from_the_installed_package() -> None:
    data = resources.files("voxeldb") / "data"
    for name in ("colors-minecraft.txt", "colors-luanti.txt"):
        assert (data / name).is_file(), f"{name} is not package data"
    assert Path(str(data)).resolve().parent == Path(voxeldb.__file__).resolve().parent
    table = builtin_colors()
    assert len([n for n in table if n.startswith("minecraft:")]) > 400
    assert len([n for n in table if n.startswith("default:")]) > 150
    for sand in ("minecraft:sand", "default:sand", "default:desert_sand"):
        r, g, b, a = table[sand]
        assert r > b + 30 and g > b + 20 and r > 150 and a == 255, sand  # sandy, not blue-grey
    for water in ("minecraft:water", "default:water_source", "default:river_water_source"):
        r, g, b, a = table[water]
        assert b > r + 60 and a < 255, water  # blue and see-through, not dark red
    assert resolve_color("grass_block") == table["minecraft:grass_block"]  # generated worlds


def test_packaged_data_is_declared() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["voxeldb"]
    assert "data/*.txt" in declared


def test_colors_txt_lines() -> None:
    table = parse_colors(
        "# minetestmapper colors.txt\n"
        "default:stone 97 94 93\n"
        "\n"
        "default:water_source 39 66 106 128 224  # alpha and t\n"
        "mymod:glow   255 0 255 200\n"
    )
    assert table == {
        "default:stone": (97, 94, 93, 255),
        "default:water_source": (39, 66, 106, 128),
        "mymod:glow": (255, 0, 255, 200),
    }
    for bad in ("default:stone 1 2", "x 1 2 300", "x a b c", "x 1 2 3 4 5 6"):
        with pytest.raises(ValidationError, match="line 1"):
            parse_colors(bad)


@pytest.fixture
def db(database_url: str) -> Database:
    database = voxeldb.connect(database_url, cache="memory")
    database.create_schema()
    return database


def column_world(db: Database, name: str, settings: Mapping[str, object]) -> None:
    """Chunk (0, -1) holds a gold block on stone, chunk (0, 0) plain stone; y 0-9 is stone."""
    world = db.create_world(name, {"height": HEIGHT, "min_y": 0, **settings})
    store = db.chunks(world)
    edits = [(x, y, z, "minecraft:stone") for x in range(16) for z in range(-16, 16)
             for y in range(10)]  # fmt: skip
    edits += [(x, 10, z, "minecraft:gold_block") for x in range(16) for z in range(-16, 0)]
    store.set_blocks(edits)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


@pytest.mark.parametrize(("north", "gold_row"), [(None, 0), ("-z", 0), ("+z", 1)])
def test_north_is_at_the_top(
    db: Database, tmp_path: Path, north: str | None, gold_row: int
) -> None:
    settings = {} if north is None else {"north": north}
    column_world(db, f"n{gold_row}{north}", settings)
    world = resolve_world(db, f"n{gold_row}{north}")
    info = render_map(db, world, tmp_path / "m.png", legend=False)
    assert info.north == (north or "-z")
    image = pixels(tmp_path / "m.png")
    assert image.shape == (32, 16, 3)
    gold = np.array(builtin_colors()["minecraft:gold_block"][:3])
    halves = [image[:16].reshape(-1, 3).mean(axis=0), image[16:].reshape(-1, 3).mean(axis=0)]
    distance = [np.abs(h - gold).sum() for h in halves]
    assert distance[gold_row] < distance[1 - gold_row]  # the -z chunk is drawn on its side


def test_colors_file_wins_and_unknown_columns_are_counted(db: Database, tmp_path: Path) -> None:
    world_id = db.create_world("modded", {"height": HEIGHT, "min_y": 0, "north": "+z"})
    store = db.chunks(world_id)
    store.set_blocks(
        [
            (x, 3, z, "mymod:glow" if x < 8 else "othermod:thing")
            for x in range(16)
            for z in range(16)
        ]
    )
    world = resolve_world(db, "modded")
    plain = render_map(db, world, tmp_path / "plain.png", legend=False)
    assert plain.unknown_columns == 256
    assert set(plain.unknown_names) == {"mymod:glow", "othermod:thing"}
    colors = tmp_path / "colors.txt"
    colors.write_text("# mine\nmymod:glow 255 0 255\n")
    info = render_map(db, world, tmp_path / "m.png", colors=colors, legend=False)
    assert info.unknown_columns == 128 and info.unknown_names == ("othermod:thing",)
    image = pixels(tmp_path / "m.png")
    r, g, b = image[5, 2]  # mymod:glow, shaded by height only
    assert r > 3 * g and b > 3 * g
    fallback = image[5, 12]
    assert tuple(fallback) == tuple(pixels(tmp_path / "plain.png")[5, 12])  # stable


def test_water_is_blended_over_its_floor_by_depth(db: Database, tmp_path: Path) -> None:
    world_id = db.create_world("lake", {"height": HEIGHT, "min_y": 0})
    store = db.chunks(world_id)
    # A flat water surface at y = 15 over a sand floor that falls towards +x.
    edits = [(x, y, z, "minecraft:sand" if y < 15 - x else "minecraft:water")
             for x in range(16) for z in range(16) for y in range(16)]  # fmt: skip
    store.set_blocks(edits)
    render_map(db, resolve_world(db, "lake"), tmp_path / "m.png", legend=False)
    image = pixels(tmp_path / "m.png")
    shallow, deep = image[8, 0], image[8, 15]
    assert shallow[0] > deep[0] + 30  # sand shows through shallow water
    assert deep[2] > deep[0] + 60  # deep water is blue


def test_legend_present_or_not(db: Database, tmp_path: Path) -> None:
    column_world(db, "legend", {})
    world = resolve_world(db, "legend")
    bare = render_map(db, world, tmp_path / "bare.png", legend=False)
    full = render_map(db, world, tmp_path / "full.png")
    assert (bare.width, bare.height) == (16, 32)
    assert (full.width, full.height) == (LEGEND_MIN_WIDTH, 32 + LEGEND_HEIGHT)
    image = pixels(tmp_path / "full.png")
    assert (image[:32, :16] == pixels(tmp_path / "bare.png")).all()
    assert tuple(image[0, 100]) == BACKGROUND  # widened with the background
    strip = image[32:]
    assert len(np.unique(strip.reshape(-1, 3), axis=0)) > 2  # text and a scale bar


def test_map_decodes_chunks_without_summary_and_rebuilds_them(db: Database, tmp_path: Path) -> None:
    column_world(db, "old", {})
    world = resolve_world(db, "old")
    first = render_map(db, world, tmp_path / "a.png", legend=False)
    assert first.decoded_chunks == 0
    with db.engine.begin() as conn:  # as before the summary column existed
        conn.execute(world_chunks_table.update().values(summary=None))
    second = render_map(db, world, tmp_path / "b.png", legend=False)
    assert second.decoded_chunks == 2 and second.rebuilt_chunks == 0
    assert (pixels(tmp_path / "a.png") == pixels(tmp_path / "b.png")).all()
    third = render_map(db, world, tmp_path / "c.png", legend=False, rebuild_summaries=True)
    assert third.decoded_chunks == 2 and third.rebuilt_chunks == 2
    assert render_map(db, world, tmp_path / "d.png", legend=False).decoded_chunks == 0
    assert (pixels(tmp_path / "a.png") == pixels(tmp_path / "d.png")).all()
