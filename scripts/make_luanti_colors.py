"""Make ``src/voxeldb/data/colors-luanti.txt``: one map colour per node of minetest_game.

Runs Debian's ``minetestserver`` (packages ``minetest-server``, ``minetest-data``) once on a
throw-away world with a server-side mod that writes every registered node's draw type and
top texture, then averages each texture's opaque pixels (Pillow). Liquids and glass get an
alpha (the ``a`` column of minetestmapper's ``colors.txt`` format): how much one node of them
hides what is under it. Nodes drawn as air (``airlike``) are left out.

    python scripts/make_luanti_colors.py [OUT]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SERVER = Path(os.environ.get("VOXELDB_TEST_MINETESTSERVER", "/usr/lib/minetest/minetestserver"))
GAME_DIR = Path("/usr/share/games/minetest/games/minetest_game")
OUT = Path(__file__).resolve().parents[1] / "src/voxeldb/data/colors-luanti.txt"

_MOD = """
minetest.after(0, function()
  local out = io.open(minetest.get_worldpath() .. "/nodes.tsv", "w")
  for name, def in pairs(minetest.registered_nodes) do
    local tile = def.tiles and def.tiles[1]
    if type(tile) == "table" then tile = tile.name or tile.image end
    local liquid = def.liquidtype or "none"
    out:write(name, "\\t", def.drawtype or "normal", "\\t", tostring(tile or ""), "\\t",
              liquid, "\\t", tostring(def.use_texture_alpha or ""), "\\n")
  end
  out:close()
  minetest.request_shutdown("done", false, 0)
end)
"""

_TRANSLUCENT = {"glasslike": 64, "glasslike_framed": 64, "glasslike_framed_optional": 64}
_LIQUID_ALPHA = 160


def dump_nodes(directory: Path) -> list[list[str]]:
    world = directory / "world"
    mod = world / "worldmods" / "vxnodes"
    mod.mkdir(parents=True)
    (world / "world.mt").write_text("gameid = minetest_game\nbackend = sqlite3\n")
    (mod / "mod.conf").write_text("name = vxnodes\n")
    (mod / "init.lua").write_text(_MOD)
    subprocess.run(
        [str(SERVER), "--world", str(world), "--gameid", "minetest_game",
         "--port", str(30000 + os.getpid() % 5000), "--quiet"],
        check=True, timeout=300, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = (world / "nodes.tsv").read_text().splitlines()
    return [line.split("\t") for line in lines]


def textures() -> dict[str, Path]:
    return {p.name: p for p in GAME_DIR.rglob("*.png")}


def average(path: Path) -> tuple[int, int, int] | None:
    rgba = np.asarray(Image.open(path).convert("RGBA")).reshape(-1, 4)
    opaque = rgba[rgba[:, 3] > 127, :3]
    if not len(opaque):
        return None
    r, g, b = (round(float(v)) for v in opaque.mean(axis=0))
    return r, g, b


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    found = textures()
    with tempfile.TemporaryDirectory() as tmp:
        nodes = dump_nodes(Path(tmp))
    lines = [
        "# Map colours of Luanti's minetest_game nodes (minetestmapper colors.txt format:",
        "# name r g b [alpha]). Made by scripts/make_luanti_colors.py from the average of each",
        "# node's top texture in Debian's minetest-data 5.6.1 (textures CC BY-SA 3.0, see that",
        "# package's copyright); alpha < 255: one node of it lets what is under it show through.",
    ]
    for name, drawtype, tile, liquid, _alpha in sorted(nodes):
        if drawtype == "airlike" or not tile or ":" not in name:
            continue
        path = found.get(tile.split("^")[0].strip("()"))
        colour = average(path) if path is not None else None
        if colour is None:
            continue
        r, g, b = colour
        alpha = _LIQUID_ALPHA if liquid != "none" else _TRANSLUCENT.get(drawtype, 255)
        lines.append(f"{name} {r} {g} {b}" + (f" {alpha}" if alpha != 255 else ""))
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(lines) - 4} nodes")


if __name__ == "__main__":
    main()
