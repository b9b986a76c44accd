"""Blobs and packs of the repository (issue #14, item 1): ids are keyed
(another repository's key gives other ids, so known files cannot be
recognised), a sealed blob opens only under its own id and key, compressible
data is stored zstd-compressed and incompressible data raw, a pack reads
back every blob from its header alone, and a flipped byte, a truncated pack
or another key are named errors — a damaged blob never reads as data."""

import os
import random

import pytest

from backups.repo import pack
from backups.repo.crypto import BlobError, RepoKey
from backups.repo.pack import DATA, TREE, PackError, PackWriter, bytes_reader, read_blob, read_header


def test_ids_are_keyed_and_stable():
    key, other = RepoKey.generate(), RepoKey.generate()
    data = b"level.dat of a world everybody has"
    assert key.blob_id(data) == key.blob_id(data) != other.blob_id(data)
    assert len(key.blob_id(data)) == 32


def test_a_sealed_blob_opens_only_as_itself():
    key = RepoKey.generate()
    text = b"minecraft:stone " * 4000
    noise = random.Random(1).randbytes(50_000)
    blob_id, sealed = key.seal(text)
    assert key.open(blob_id, sealed) == text
    assert len(sealed) < len(text) // 10, "compressible data is stored compressed"
    noise_id, sealed_noise = key.seal(noise)
    assert key.open(noise_id, sealed_noise) == noise and len(sealed_noise) <= len(noise) + 29  # stored raw
    flipped = bytearray(sealed)
    flipped[len(flipped) // 2] ^= 1
    for bad_id, bad in ((blob_id, bytes(flipped)), (noise_id, sealed), (blob_id, sealed[:-1])):
        with pytest.raises(BlobError) as caught:
            key.open(bad_id, bad)
        assert caught.value.blob_id == bad_id
    with pytest.raises(BlobError):
        RepoKey.generate().open(blob_id, sealed)
    empty_id, empty = key.seal(b"")
    assert key.open(empty_id, empty) == b""


def test_a_pack_reads_every_blob_back_from_its_header():
    key = RepoKey.generate()
    rng = random.Random(2)
    blobs = [rng.randbytes(rng.randrange(0, 200_000)) for _ in range(60)] + [b"tree document"]
    writer = PackWriter(key, target_size=2 * 1024 * 1024)
    ids = [writer.add(b, kind=TREE if b == b"tree document" else DATA) for b in blobs]
    assert writer.add(blobs[3]) == ids[3] and len(writer.entries) == len(blobs), "a blob is stored once per pack"
    assert writer.full
    pack_id, data, entries = writer.finish()
    import hashlib

    assert pack_id == hashlib.sha256(data).hexdigest()
    read = read_header(key, bytes_reader(data), len(data))
    assert read == entries and [e.blob_id for e in read] == ids
    assert read[-1].kind == TREE
    for entry, blob in zip(read, blobs):
        assert read_blob(key, bytes_reader(data), entry) == blob


def test_damage_to_a_pack_is_named_and_never_read_as_data():
    key = RepoKey.generate()
    writer = PackWriter(key)
    ids = [writer.add(os.urandom(10_000)) for _ in range(5)]
    _, data, entries = writer.finish()
    damaged = bytearray(data)
    damaged[entries[2].offset + 100] ^= 0x40
    reader = bytes_reader(bytes(damaged))
    for entry in entries:
        if entry.blob_id == ids[2]:
            with pytest.raises(BlobError) as caught:
                read_blob(key, reader, entry)
            assert caught.value.blob_id == ids[2]
        else:
            read_blob(key, reader, entry)  # the other blobs still read
    for bad, size in ((data[:-10], len(data) - 10), (data[:3], 3)):
        with pytest.raises(PackError):
            read_header(key, bytes_reader(bad), size)
    with pytest.raises(PackError):
        read_header(RepoKey.generate(), bytes_reader(data), len(data))
    assert pack.TARGET_SIZE == 16 * 1024 * 1024
