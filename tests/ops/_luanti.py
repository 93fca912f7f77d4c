"""Real Luanti worlds for the import tests and benchmarks, made by Debian's ``minetestserver``.

:func:`make_world` writes a world directory with a server-side mod (``vxdump``) that emerges
an area, puts a chest with an inventory in it, dumps what ``minetest.get_node`` says of
every node of the area to ``nodes.txt`` and shuts the server down: no client, about a second.
:func:`to_postgres` moves the map into a PostgreSQL database with the server's own
``--migrate``. :func:`downgrade` rewrites MapBlocks in the older zlib serializations (25 and
28), which the server (5.6) no longer writes.

Run as a script to make a world by hand: ``python -m tests.ops._luanti DIR [SIZE]``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import zstandard

SERVER = Path(os.environ.get("VOXELDB_TEST_MINETESTSERVER", "/usr/lib/minetest/minetestserver"))
GAME = "minetest_game"
CHEST = (3, 5, 4)

_MOD = """
local p1 = {x = %(x0)d, y = %(y0)d, z = %(z0)d}
local p2 = {x = %(x1)d, y = %(y1)d, z = %(z1)d}
minetest.after(0, function()
  minetest.emerge_area(p1, p2, function(blockpos, action, remaining)
    if remaining > 0 then return end
    local chest = {x = %(cx)d, y = %(cy)d, z = %(cz)d}
    minetest.set_node(chest, {name = "default:chest", param2 = 2})
    local meta = minetest.get_meta(chest)
    meta:set_string("infotext", "voxeldb test chest")
    meta:get_inventory():set_stack("main", 1, "default:dirt 5")
    meta:get_inventory():set_stack("main", 3, "default:torch 2")
    if %(dump)s then
      local out = io.open(minetest.get_worldpath() .. "/nodes.txt", "w")
      for x = p1.x, p2.x do for z = p1.z, p2.z do for y = p1.y, p2.y do
        local n = minetest.get_node({x = x, y = y, z = z})
        out:write(x, " ", y, " ", z, " ", n.name, " ", n.param2, "\\n")
      end end end
      out:close()
    end
    minetest.request_shutdown("voxeldb: done", false, 0)
  end)
end)
"""


def available() -> bool:
    return SERVER.is_file() and Path("/usr/share/games/minetest/games", GAME).is_dir()


def make_world(
    directory: Path, *, half: int = 32, low: int = -32, high: int = 47, dump: bool = True
) -> Path:
    """A world of the ``2 * half`` nodes square around the origin, y ``low`` to ``high``."""
    world = directory / "world"
    if world.exists():
        shutil.rmtree(world)
    mod = world / "worldmods" / "vxdump"
    mod.mkdir(parents=True)
    (world / "world.mt").write_text(
        f"gameid = {GAME}\nbackend = sqlite3\nplayer_backend = sqlite3\n"
        "auth_backend = sqlite3\nmod_storage_backend = sqlite3\n"
    )
    (mod / "mod.conf").write_text("name = vxdump\ndepends = default\n")
    area = {"x0": -half, "y0": low, "z0": -half, "x1": half - 1, "y1": high, "z1": half - 1}
    chest = dict(zip(("cx", "cy", "cz"), CHEST, strict=True))
    (mod / "init.lua").write_text(_MOD % {**area, **chest, "dump": "true" if dump else "false"})
    config = directory / "minetest.conf"
    config.write_text("fixed_map_seed = 42\nmg_name = v7\nserver_announce = false\n")
    subprocess.run(
        [str(SERVER), "--config", str(config), "--world", str(world), "--gameid", GAME,
         "--port", str(30000 + os.getpid() % 5000), "--logfile", str(directory / "server.log"),
         "--quiet"],
        check=True, timeout=600, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if dump and not (world / "nodes.txt").is_file():
        raise RuntimeError(f"the server wrote no dump: see {directory / 'server.log'}")
    return world


def to_postgres(world: Path, conninfo: str) -> None:
    """Move ``world``'s map into the (empty) database ``conninfo`` with ``--migrate``."""
    with (world / "world.mt").open("a") as f:
        f.write(f"pgsql_connection = {conninfo}\n")
    subprocess.run(
        [str(SERVER), "--world", str(world), "--migrate", "postgresql",
         "--logfile", str(world.parent / "migrate.log"), "--quiet"],
        check=True, timeout=300, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _old(data: bytes, version: int) -> bytes | None:
    """A version-29 MapBlock in serialization ``version`` (25 to 28), or None if it has
    node metadata (left as it is: this writer does not walk metadata)."""
    body = zstandard.ZstdDecompressor().decompressobj().decompress(data[1:])
    flags, lighting = body[0], body[1:3]
    pos = 7
    assert body[pos] == 0
    (count,) = struct.unpack_from(">H", body, pos + 1)
    end = pos + 3
    for _ in range(count):
        (n,) = struct.unpack_from(">H", body, end + 2)
        end += 4 + n
    names = body[pos:end]
    widths = body[end : end + 2]
    nodes = body[end + 2 : end + 2 + 4 * 4096]
    pos = end + 2 + 4 * 4096
    if body[pos] != 0:
        return None
    metadata = body[pos : pos + 1]
    pos += 1
    objects_start = pos
    (count,) = struct.unpack_from(">H", body, pos + 1)
    pos += 3
    for _ in range(count):
        (n,) = struct.unpack_from(">H", body, pos + 13)
        pos += 15 + n
    objects, timers, timestamp = body[objects_start:pos], body[pos:], body[3:7]
    head = bytes([version, flags]) + (lighting if version >= 27 else b"")
    return (
        head + widths + zlib.compress(nodes) + zlib.compress(metadata)
        + objects + timestamp + names + timers
    )  # fmt: skip


def downgrade(map_sqlite: Path) -> dict[int, int]:
    """Rewrite MapBlocks of ``map_sqlite`` as versions 25 and 28 (every third block each);
    how many MapBlocks now have each version."""
    counts: dict[int, int] = {}
    with sqlite3.connect(map_sqlite) as conn:
        rows = conn.execute("SELECT pos, data FROM blocks ORDER BY pos").fetchall()
        for i, (pos, data) in enumerate(rows):
            version = (25, 28, 29)[i % 3]
            new = _old(data, version) if version < 29 else None
            if new is None:
                version = 29
            else:
                conn.execute("UPDATE blocks SET data = ? WHERE pos = ?", (new, pos))
            counts[version] = counts.get(version, 0) + 1
    return counts


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    print(make_world(target, half=size // 2, dump=False))
