"""The in-memory blob index (backups/repo/index.py): index files by column
load in bulk, rows (the first format) still load, and a blob in two packs
(a repack) keeps the place the repository prefers."""

import os

from backups.repo.index import BlobIndex
from backups.repo.pack import Entry
from backups.repo.repository import index_columns


def entries(n: int, offset: int = 0) -> list[Entry]:
    return [Entry(0, os.urandom(32), offset + 100 * i, 100, 90 + i) for i in range(n)]


def test_columns_and_rows_load_the_same():
    blobs = entries(50)
    by_column, by_row = BlobIndex(), BlobIndex()
    by_column.load("p1", index_columns(blobs), replaces=lambda known: False)
    by_row.load("p1", [[e.kind, e.blob_id.hex(), e.offset, e.length, e.raw_length] for e in blobs],
                replaces=lambda known: False)
    for e in blobs:
        assert by_column.get(e.blob_id) == by_row.get(e.blob_id) == ("p1", e)
    assert len(by_column) == len(by_row) == 50 and by_column.pack_ids() == {"p1"}


def test_a_blob_in_two_packs_keeps_the_preferred_place():
    blobs = entries(10)
    index = BlobIndex()
    index.load("old", index_columns(blobs), replaces=lambda known: False)
    moved = [Entry(e.kind, e.blob_id, 1000 + e.offset, e.length, e.raw_length) for e in blobs[:3]]
    new = entries(2, offset=5000)
    index.load("new", index_columns(moved + new), replaces=lambda known: False)  # the old place wins
    assert index.pack_of(blobs[0].blob_id) == "old" and index.pack_of(new[0].blob_id) == "new"
    index.load("new", index_columns(moved), replaces=lambda known: known == "old")  # the new place wins
    assert index.get(blobs[0].blob_id) == ("new", moved[0]) and index.pack_of(blobs[5].blob_id) == "old"
    assert index.has_all([e.blob_id for e in blobs]) and not index.has_all([os.urandom(32)])
    assert not index.has_all([blobs[0].blob_id], unless_in={"new"})
