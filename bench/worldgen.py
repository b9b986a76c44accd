"""Deterministic synthetic Minecraft server folders for benchmarks.

    python -m bench.worldgen --size-mb 500 out/

writes ``out/`` as a server folder: ``server.properties``, ``logs/``, and
``world/``, ``world_nether/DIM-1/``, ``world_the_end/DIM1/`` (Bukkit layout),
each a world with ``level.dat`` (gzip NBT). Region files are real Anvil files:
8 KiB header, 4 KiB sectors, chunks of 1.16-format NBT built with nbtlib
(sections with block-state palettes and packed ``BlockStates``, light arrays,
heightmaps, biomes, tile entities) compressed with zlib like the game does.
Terrain is noisy layers (stone with ores and caves, dirt, grass, air), so a
chunk's NBT deflates about 3-5x, close to real worlds; the region files
themselves, being compressed chunks, barely compress further - like real ones.

Chunk NBT is built with nbtlib for a pool of distinct chunks and then each
placed chunk varies that template's block-state longs and coordinates (a
byte-level patch of the serialized NBT), which keeps generation fast enough to
make hundreds of MB in seconds while every chunk stays valid, distinct NBT.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import struct
import time
import zlib

import nbtlib
import numpy as np
from nbtlib import Byte, ByteArray, Compound, Int, IntArray, List, Long, LongArray, String

DATA_VERSION = 2586  # 1.16.5
VERSION_NAME = "1.16.5"
SECTOR = 4096
_BLOCKS = ["minecraft:air", "minecraft:stone", "minecraft:dirt", "minecraft:grass_block",
           "minecraft:coal_ore", "minecraft:iron_ore", "minecraft:gravel", "minecraft:granite",
           "minecraft:andesite", "minecraft:diorite", "minecraft:water", "minecraft:bedrock",
           "minecraft:oak_log", "minecraft:oak_leaves", "minecraft:gold_ore", "minecraft:cave_air"]


def _pack(indices: np.ndarray, bits: int) -> np.ndarray:
    """1.16 packing: values never span two longs."""
    per_long = 64 // bits
    n_longs = -(-len(indices) // per_long)
    padded = np.zeros(n_longs * per_long, dtype=np.uint64)
    padded[: len(indices)] = indices
    shaped = padded.reshape(n_longs, per_long)
    shifts = (np.arange(per_long, dtype=np.uint64) * np.uint64(bits))
    packed = np.bitwise_or.reduce(shaped << shifts, axis=1)
    return packed.view(np.int64).astype(">i8")


def _section(rng: np.random.Generator, y: int, surface: int) -> Compound:
    base_y = y * 16
    heights = np.arange(base_y, base_y + 16).repeat(256)
    ids = np.full(4096, 1, dtype=np.uint64)  # stone
    ids[heights > surface - 4] = 2  # dirt
    ids[heights == surface] = 3
    ids[heights > surface] = 0
    ids[heights > surface][:0] = 0
    noise = rng.random(4096)
    stone = ids == 1
    ids[stone & (noise < 0.06)] = 15  # cave air pockets
    ids[stone & (noise > 0.985)] = 4
    ids[stone & (noise > 0.993)] = 5
    for ore, cut in ((7, 0.03), (8, 0.05), (9, 0.02), (6, 0.04)):
        ids[stone & (rng.random(4096) < cut)] = ore
    if y == 0:
        ids[:256] = 11
    used = np.unique(ids)
    remap = np.zeros(16, dtype=np.uint64)
    remap[used] = np.arange(len(used), dtype=np.uint64)
    bits = max(4, int(len(used) - 1).bit_length())
    palette = List[Compound]([Compound({"Name": String(_BLOCKS[int(i)])}) for i in used])
    sky = np.where(heights[::2] > surface, 0xFF, 0).astype(np.int8)
    return Compound({
        "Y": Byte(y),
        "Palette": palette,
        "BlockStates": LongArray(_pack(remap[ids], bits)),
        "BlockLight": ByteArray(np.zeros(2048, dtype=np.int8)),
        "SkyLight": ByteArray(sky),
    })


def _chunk(rng: np.random.Generator, cx: int, cz: int) -> nbtlib.File:
    surface = int(rng.integers(60, 80))
    sections = List[Compound]([_section(rng, y, surface) for y in range(0, surface // 16 + 2)])
    heightmap = LongArray(rng.integers(0, 2**62, 37, dtype=np.int64).astype(">i8"))
    chests = List[Compound]([
        Compound({"id": String("minecraft:chest"), "x": Int(cx * 16 + k), "y": Int(surface + 1), "z": Int(cz * 16),
                  "Items": List[Compound]([Compound({"Slot": Byte(s), "id": String("minecraft:cobblestone"),
                                                     "Count": Byte(int(rng.integers(1, 64)))}) for s in range(5)])})
        for k in range(int(rng.integers(0, 3)))
    ])
    level = Compound({
        "xPos": Int(cx), "zPos": Int(cz), "LastUpdate": Long(int(rng.integers(0, 10**7))),
        "InhabitedTime": Long(int(rng.integers(0, 10**5))), "Status": String("full"),
        "Biomes": IntArray(np.full(1024, int(rng.integers(0, 30)), dtype=">i4")),
        "Heightmaps": Compound({k: heightmap for k in ("MOTION_BLOCKING", "MOTION_BLOCKING_NO_LEAVES",
                                                       "OCEAN_FLOOR", "WORLD_SURFACE")}),
        "Sections": sections, "TileEntities": chests, "Entities": List[Compound]([]),
        "Structures": Compound({"References": Compound({}), "Starts": Compound({})}),
        "PostProcessing": List[List[Int]]([List[Int]([]) for _ in range(16)]),
    })
    return nbtlib.File({"Level": level, "DataVersion": Int(DATA_VERSION)})


def _serialize(tag: nbtlib.File) -> bytes:
    buf = io.BytesIO()
    tag.write(buf)
    return buf.getvalue()


class _ChunkFactory:
    """Distinct valid chunks fast: templates from nbtlib, then patched copies."""

    def __init__(self, seed: int, templates: int = 48):
        self.rng = np.random.default_rng(seed)
        self.templates = []
        for i in range(templates):
            raw = _serialize(_chunk(self.rng, i, 0))
            self.templates.append(raw)

    def make(self, index: int, cx: int, cz: int) -> bytes:
        raw = bytearray(self.templates[index % len(self.templates)])
        # Overwrite xPos/zPos values and a few long words inside the data so no two chunks are equal.
        for name, value in ((b"xPos", cx), (b"zPos", cz)):
            at = raw.find(b"\x03\x00\x04" + name)
            struct.pack_into(">i", raw, at + 7, value)
        at = raw.find(b"BlockStates")
        if at > 0:
            start = at + len(b"BlockStates") + 4
            words = self.rng.integers(0, 2**63, 48, dtype=np.int64).astype(">i8").tobytes()
            raw[start: start + len(words)] = words
        return bytes(raw)


def write_region(path: str, factory: _ChunkFactory, rx: int, rz: int, chunks: int, counter: list) -> int:
    header = bytearray(2 * SECTOR)
    body = io.BytesIO()
    sector = 2
    for i in range(chunks):
        lx, lz = i % 32, i // 32
        nbt = factory.make(counter[0], rx * 32 + lx, rz * 32 + lz)
        counter[0] += 1
        payload = zlib.compress(nbt, 6)
        data = struct.pack(">IB", len(payload) + 1, 2) + payload
        count = -(-len(data) // SECTOR)
        data += bytes(count * SECTOR - len(data))
        struct.pack_into(">I", header, 4 * i, (sector << 8) | count)
        struct.pack_into(">I", header, SECTOR + 4 * i, 1_600_000_000 + i)
        body.write(data)
        sector += count
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(body.getvalue())
    return 2 * SECTOR + body.tell()


def _level_dat(path: str, name: str, seed: int) -> None:
    data = Compound({
        "LevelName": String(name), "DataVersion": Int(DATA_VERSION), "version": Int(19133),
        "RandomSeed": Long(seed), "SpawnX": Int(0), "SpawnY": Int(64), "SpawnZ": Int(0),
        "Time": Long(123456), "DayTime": Long(6000), "GameType": Int(0), "hardcore": Byte(0),
        "Version": Compound({"Id": Int(DATA_VERSION), "Name": String(VERSION_NAME), "Snapshot": Byte(0)}),
    })
    nbtlib.File({"Data": data}).save(path, gzipped=True)


def generate(out: str, size_mb: float, seed: int = 1234) -> dict:
    """Write a server folder of about ``size_mb`` MB into ``out``; returns stats."""
    started = time.monotonic()
    random.seed(seed)
    target = int(size_mb * 1024 * 1024)
    factory = _ChunkFactory(seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "server.properties"), "w") as fh:
        fh.write("level-name=world\nserver-port=25565\nenable-rcon=true\nmotd=mcsite bench\n")
    with open(os.path.join(out, "eula.txt"), "w") as fh:
        fh.write("eula=true\n")
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    with open(os.path.join(out, "logs", "latest.log"), "w") as fh:
        for i in range(2000):
            fh.write(f"[12:{i % 60:02d}:00] [Server thread/INFO]: Player{i % 7} issued command /home\n")
    dims = [("world", "world"), ("world_nether", "world_nether/DIM-1"), ("world_the_end", "world_the_end/DIM1")]
    shares = [0.7, 0.2, 0.1]
    written = 0
    counter = [0]
    stats = {"regions": 0, "chunks": 0}
    for (world, region_parent), share in zip(dims, shares):
        world_dir = os.path.join(out, world)
        os.makedirs(os.path.join(out, region_parent, "region"), exist_ok=True)
        _level_dat(os.path.join(world_dir, "level.dat"), world, seed)
        budget = target * share
        used = 0
        index = 0
        while used < budget:
            rx, rz = index % 8 - 4, index // 8 - 4
            chunks = 1024 if budget - used > 9_000_000 else max(1, int((budget - used) / 9000))
            path = os.path.join(out, region_parent, "region", f"r.{rx}.{rz}.mca")
            used += write_region(path, factory, rx, rz, min(chunks, 1024), counter)
            stats["regions"] += 1
            index += 1
        # Real worlds hold 0-byte region files created before any chunk is saved.
        open(os.path.join(out, region_parent, "region", "r.99.99.mca"), "wb").close()
        written += used
    _players(out, seed)
    stats.update(size_bytes=written, chunks=counter[0], seconds=round(time.monotonic() - started, 2))
    return stats


def _players(out: str, seed: int) -> None:
    rng = random.Random(seed)
    for sub in ("playerdata", "advancements", "stats", "data"):
        os.makedirs(os.path.join(out, "world", sub), exist_ok=True)
    for i in range(20):
        uuid = f"{rng.getrandbits(32):08x}-0000-4000-8000-{rng.getrandbits(48):012x}"
        player = Compound({"Health": nbtlib.Float(20.0), "XpLevel": Int(rng.randint(0, 50)),
                           "Pos": List[nbtlib.Double]([nbtlib.Double(rng.uniform(-500, 500)) for _ in range(3)]),
                           "Inventory": List[Compound]([])})
        nbtlib.File(player).save(os.path.join(out, "world", "playerdata", f"{uuid}.dat"), gzipped=True)
        with open(os.path.join(out, "world", "advancements", f"{uuid}.json"), "w") as fh:
            json.dump({f"minecraft:story/step_{k}": {"done": True} for k in range(40)}, fh, indent=2)
        with open(os.path.join(out, "world", "stats", f"{uuid}.json"), "w") as fh:
            json.dump({"stats": {"minecraft:mined": {f"minecraft:block_{k}": k * 3 for k in range(60)}}}, fh)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--size-mb", type=float, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.out, args.size_mb, args.seed)))


if __name__ == "__main__":
    main()
