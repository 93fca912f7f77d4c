"""The map renderer: vectorized top-block search and the picture it makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import voxeldb
from voxeldb.ops import (
    BACKGROUND,
    BLOCK_COLORS,
    VOID,
    color_for,
    ensure_world,
    render_map,
    top_blocks,
)


def test_top_blocks_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 5, size=(3, 32, 16, 16), dtype=np.uint16)
    stack[rng.random(stack.shape) < 0.7] = 0  # mostly air, some columns all air
    stack[1, :, 3, 4] = 0
    y_index, ids = top_blocks(stack)
    for n in range(3):
        for z in range(16):
            for x in range(16):
                column = stack[n, :, z, x]
                solid = np.nonzero(column)[0]
                if len(solid) == 0:
                    assert y_index[n, z, x] == -1 and ids[n, z, x] == 0
                else:
                    assert y_index[n, z, x] == solid[-1]
                    assert ids[n, z, x] == column[solid[-1]]
    assert y_index[1, 3, 4] == -1


def test_colors_by_type_with_stable_fallback() -> None:
    assert color_for({"type": "water"}) == BLOCK_COLORS["minecraft:water"]
    assert (
        color_for({"type": "minecraft:dark_oak_leaves", "persistent": "true"})
        == (BLOCK_COLORS["minecraft:dark_oak_leaves"])
    )
    odd = color_for({"type": "moon_cheese"})
    assert odd == color_for({"type": "moon_cheese"}) and all(64 <= c < 192 for c in odd)


def test_render_map_draws_top_blocks_void_and_absent(database_url: str, tmp_path: Path) -> None:
    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        world, created = ensure_world(db, "painted", height=32, min_y=0)
        assert created
        store = db.chunks(world.id)
        lava = np.zeros((32, 16, 16), dtype=np.uint16)
        store.set_block(0, 0, 0, "stone")  # registers stone (1) in chunk (0, 0)
        chunk = np.zeros((32, 16, 16), dtype=np.uint16)
        stone = store.get(0, 0)
        assert stone is not None
        chunk[:10] = stone[0, 0, 0]  # stone up to y = 9 everywhere
        store.set_block(16, 0, 0, "lava")
        lava_chunk = store.get(1, 0)
        assert lava_chunk is not None
        lava_id = int(lava_chunk[0, 0, 0])
        lava[:3] = lava_id
        lava[:, 0, 0] = 0  # one all-air column
        store.put_many([(0, 0, chunk), (1, 0, lava)])
        out = tmp_path / "m.png"
        info = render_map(db, world, out, center=(0, 0), radius=1, legend=False)
    assert (info.width, info.height, info.chunks_present, info.chunks_total) == (48, 48, 2, 9)
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # Pixel (px, pz) = block (x, z) + 16: chunk (0, 0) at [16:32, 16:32], (1, 0) at [16:32, 32:48].
    assert tuple(image[0, 0]) == BACKGROUND
    assert tuple(image[16, 32]) == VOID
    stone, lava_px = image[20, 20], image[20, 40]
    assert abs(stone - np.array(BLOCK_COLORS["minecraft:stone"])).max() < 80
    assert lava_px[0] > lava_px[2] + 60  # lava is orange-red
    assert not np.array_equal(stone, lava_px)


def test_default_frame_is_the_stored_chunks(database_url: str, tmp_path: Path) -> None:
    from voxeldb.ops import map_frame, stored_bounds

    with voxeldb.connect(database_url, cache="memory") as db:
        db.create_schema()
        world, _ = ensure_world(db, "framed", height=16, min_y=0)
        empty = render_map(db, world, tmp_path / "empty.png", legend=False)
        assert (empty.width, empty.height, empty.chunks_present) == (16, 16, 0)
        store = db.chunks(world.id)
        for cx, cz in ((5, -2), (7, -2), (5, 0), (6, -1)):
            store.set_block(cx * 16 + 1, 3, cz * 16 + 2, "stone")
        other, _ = ensure_world(db, "elsewhere", height=16, min_y=0)
        db.chunks(other.id).set_block(-500, 0, 900, "stone")  # must not widen the frame
        assert stored_bounds(db, world) == (5, -2, 7, 0)
        assert map_frame(db, world) == (5, -2, 3, 3)
        info = render_map(db, world, tmp_path / "whole.png", legend=False)
        assert (info.width, info.height, info.chunks_present, info.chunks_total) == (48, 48, 4, 9)
        image = np.asarray(Image.open(tmp_path / "whole.png").convert("RGB")).astype(int)
        assert tuple(image[2, 1]) != BACKGROUND  # the stone at chunk (5, -2)
        assert tuple(image[0, 16]) == BACKGROUND  # chunk (6, -2) is not stored
        # An explicit centre keeps the old square of radius 16 around it.
        square = render_map(db, world, tmp_path / "square.png", center=(6, -1), legend=False)
        assert (square.width, square.chunks_total, square.chunks_present) == (33 * 16, 33**2, 4)
        # A radius alone is centred on the middle of the stored chunks.
        assert map_frame(db, world, radius=0) == (6, -1, 1, 1)
