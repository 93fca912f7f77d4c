"""Make ``src/voxeldb/data/colors-minecraft.txt``: map colours of vanilla ``minecraft:*`` blocks.

The colours are chosen by hand (approximate average colours of each block's top face; no
game asset is read or shipped), in minetestmapper's ``colors.txt`` format. Families (16 dye
colours, wood kinds, stone variants) are expanded here.

    python scripts/make_minecraft_colors.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src/voxeldb/data/colors-minecraft.txt"

RGB = tuple[int, int, int]

BLOCKS: dict[str, RGB | tuple[int, int, int, int]] = {
    "grass_block": (95, 159, 53), "short_grass": (88, 140, 48), "grass": (88, 140, 48),
    "tall_grass": (88, 140, 48), "fern": (80, 130, 46), "large_fern": (80, 130, 46),
    "dirt": (134, 96, 67), "coarse_dirt": (119, 85, 59), "rooted_dirt": (144, 103, 76),
    "podzol": (106, 76, 44), "mycelium": (111, 99, 105), "farmland": (110, 74, 45),
    "dirt_path": (148, 121, 65), "mud": (60, 57, 60), "moss_block": (89, 109, 45),
    "moss_carpet": (89, 109, 45), "stone": (125, 125, 125), "cobblestone": (110, 110, 110),
    "mossy_cobblestone": (100, 118, 94), "smooth_stone": (158, 158, 158),
    "stone_bricks": (122, 121, 122), "deepslate": (80, 80, 84), "cobbled_deepslate": (77, 77, 80),
    "tuff": (108, 109, 102), "calcite": (223, 224, 220), "bedrock": (50, 50, 50),
    "granite": (149, 103, 85), "diorite": (188, 188, 188), "andesite": (136, 136, 136),
    "gravel": (131, 127, 126), "sand": (219, 207, 163), "red_sand": (190, 102, 33),
    "sandstone": (216, 203, 155), "red_sandstone": (186, 99, 29), "clay": (160, 166, 179),
    "water": (52, 92, 196, 170), "bubble_column": (52, 92, 196, 170), "lava": (207, 92, 15),
    "ice": (145, 183, 253, 200), "packed_ice": (141, 180, 250), "blue_ice": (116, 167, 253),
    "frosted_ice": (140, 181, 252, 200), "snow": (248, 254, 254), "snow_block": (248, 254, 254),
    "powder_snow": (248, 253, 253), "glass": (200, 220, 230, 60), "glass_pane": (200, 220, 230, 60),
    "obsidian": (20, 18, 30), "crying_obsidian": (32, 10, 60), "netherrack": (97, 38, 38),
    "soul_sand": (81, 62, 50), "soul_soil": (75, 57, 46), "basalt": (73, 72, 77),
    "blackstone": (42, 36, 41), "magma_block": (142, 63, 31), "glowstone": (171, 131, 84),
    "end_stone": (219, 222, 158), "purpur_block": (169, 125, 169), "prismarine": (99, 156, 151),
    "sea_lantern": (172, 199, 190), "kelp": (87, 130, 42), "kelp_plant": (87, 130, 42),
    "seagrass": (51, 125, 26), "tall_seagrass": (51, 125, 26), "sugar_cane": (148, 192, 101),
    "cactus": (85, 127, 43), "pumpkin": (198, 118, 24), "melon": (111, 145, 30),
    "hay_block": (166, 139, 12), "bamboo": (93, 144, 19), "vine": (70, 110, 30),
    "lily_pad": (32, 128, 48), "sweet_berry_bush": (64, 96, 40), "dead_bush": (107, 79, 41),
    "poppy": (160, 60, 40), "dandelion": (200, 190, 40), "cornflower": (70, 100, 190),
    "azure_bluet": (170, 190, 170), "oxeye_daisy": (180, 190, 160), "allium": (160, 120, 200),
    "blue_orchid": (40, 150, 180), "lily_of_the_valley": (120, 170, 100),
    "brown_mushroom": (153, 116, 92), "red_mushroom": (217, 75, 68),
    "brown_mushroom_block": (149, 111, 81), "red_mushroom_block": (200, 46, 45),
    "mushroom_stem": (203, 196, 185), "bookshelf": (117, 94, 59), "crafting_table": (120, 73, 42),
    "furnace": (110, 110, 110), "chest": (162, 117, 46), "torch": (255, 210, 80),
    "bricks": (150, 97, 83), "tnt": (170, 60, 50), "coal_block": (16, 15, 15),
    "iron_block": (220, 220, 220), "gold_block": (246, 208, 61), "diamond_block": (98, 237, 228),
    "emerald_block": (42, 203, 87), "lapis_block": (31, 67, 140), "redstone_block": (175, 24, 5),
    "copper_block": (192, 107, 79), "amethyst_block": (133, 97, 191), "rail": (125, 110, 90),
    "farmland_moist": (82, 44, 15), "wheat": (166, 151, 73), "carrots": (80, 140, 40),
    "potatoes": (80, 140, 40), "beetroots": (80, 130, 40), "cobweb": (220, 220, 220, 80),
    "spawner": (36, 46, 62), "dripstone_block": (134, 107, 92), "pointed_dripstone": (129, 102, 89),
    "sculk": (12, 29, 36), "mangrove_roots": (74, 59, 38), "muddy_mangrove_roots": (70, 58, 45),
    "terracotta": (152, 94, 67), "white_terracotta": (209, 178, 161),
}  # fmt: skip

WOODS: dict[str, tuple[RGB, RGB, RGB]] = {  # log (bark), planks, leaves
    "oak": ((109, 85, 50), (162, 130, 78), (59, 122, 32)),
    "spruce": ((58, 37, 16), (114, 84, 48), (47, 82, 47)),
    "birch": ((216, 215, 210), (192, 175, 121), (96, 139, 64)),
    "jungle": ((85, 67, 25), (160, 115, 80), (48, 137, 24)),
    "acacia": ((103, 96, 86), (168, 90, 50), (87, 122, 30)),
    "dark_oak": ((60, 46, 26), (66, 43, 20), (44, 96, 20)),
    "mangrove": ((84, 66, 41), (117, 54, 48), (72, 130, 36)),
    "cherry": ((54, 33, 44), (226, 178, 172), (229, 173, 194)),
    "azalea": ((93, 117, 45), (162, 130, 78), (90, 117, 44)),
    "flowering_azalea": ((93, 117, 45), (162, 130, 78), (112, 121, 64)),
    "pale_oak": ((87, 77, 75), (227, 217, 216), (120, 124, 112)),
    "crimson": ((92, 25, 29), (101, 48, 70), (126, 8, 9)),
    "warped": ((58, 58, 77), (43, 104, 99), (22, 119, 121)),
}

DYES: dict[str, RGB] = {
    "white": (234, 236, 237), "orange": (241, 118, 20), "magenta": (190, 69, 180),
    "light_blue": (58, 175, 217), "yellow": (249, 198, 40), "lime": (112, 185, 26),
    "pink": (238, 141, 172), "gray": (63, 68, 72), "light_gray": (142, 142, 135),
    "cyan": (21, 138, 145), "purple": (122, 42, 173), "blue": (53, 57, 157),
    "brown": (114, 72, 41), "green": (85, 110, 28), "red": (161, 39, 35), "black": (21, 21, 26),
}  # fmt: skip

SHAPES = ("stairs", "slab", "wall", "fence", "fence_gate", "pressure_plate", "button")


def table() -> dict[str, tuple[int, ...]]:
    colours: dict[str, tuple[int, ...]] = dict(BLOCKS)
    for wood, (log, planks, leaves) in WOODS.items():
        stem = "stem" if wood in ("crimson", "warped") else "log"
        for name, colour in (
            (f"{wood}_{stem}", log),
            (f"stripped_{wood}_{stem}", planks),
            (f"{wood}_wood" if stem == "log" else f"{wood}_hyphae", log),
            (f"{wood}_planks", planks),
            (f"{wood}_leaves" if stem == "log" else f"{wood}_wart_block", leaves),
            (f"{wood}_sapling", leaves),
            (f"{wood}_door", planks),
            (f"{wood}_trapdoor", planks),
            (f"{wood}_sign", planks),
        ):
            colours.setdefault(name, colour)
        for shape in SHAPES:
            colours.setdefault(f"{wood}_{shape}", planks)
    for dye, colour in DYES.items():
        for kind, shade in (("wool", 1.0), ("carpet", 1.0), ("concrete", 0.9),
                            ("concrete_powder", 1.05), ("terracotta", 0.6),
                            ("glazed_terracotta", 0.95), ("bed", 1.0), ("banner", 1.0),
                            ("candle", 1.0), ("shulker_box", 0.95)):  # fmt: skip
            colours.setdefault(f"{dye}_{kind}", tuple(min(255, round(c * shade)) for c in colour))
        colours.setdefault(f"{dye}_stained_glass", (*colour, 120))
        colours.setdefault(f"{dye}_stained_glass_pane", (*colour, 120))
    for base in ("stone", "cobblestone", "stone_brick", "sandstone", "red_sandstone", "brick",
                 "granite", "diorite", "andesite", "deepslate_brick", "cobbled_deepslate",
                 "prismarine", "blackstone", "mossy_cobblestone", "smooth_stone"):  # fmt: skip
        source = colours.get(base) or colours.get(base + "s") or colours["stone"]
        for shape in SHAPES:
            colours.setdefault(f"{base}_{shape}", source)
    for ore, colour in (("coal", (105, 105, 105)), ("iron", (136, 129, 122)),
                        ("copper", (124, 125, 120)), ("gold", (143, 140, 125)),
                        ("redstone", (133, 107, 107)), ("diamond", (121, 141, 140)),
                        ("emerald", (117, 136, 124)), ("lapis", (99, 110, 132))):  # fmt: skip
        colours.setdefault(f"{ore}_ore", colour)
        colours.setdefault(f"deepslate_{ore}_ore", tuple(round(c * 0.75) for c in colour))
    return {f"minecraft:{name}": colour for name, colour in sorted(colours.items())}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    lines = [
        "# Map colours of vanilla Minecraft blocks (minetestmapper colors.txt format:",
        "# name r g b [alpha]). Chosen by hand, no game asset read: scripts/make_minecraft_colors.py.",
        "# alpha < 255: one block of it lets what is under it show through.",
    ]
    lines += [f"{name} {' '.join(map(str, colour))}" for name, colour in table().items()]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(lines) - 3} blocks")


if __name__ == "__main__":
    main()
