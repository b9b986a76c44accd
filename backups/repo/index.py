"""The in-memory index of a repository: blob id → (pack id, Entry), in
about 120 bytes a blob instead of a dict of objects (a 4 GiB world is some
half a million blobs; the backup's memory bound is 200 MiB). The dict maps
each id to a slot; the slot's fields live in typed arrays, and pack ids are
numbered once. It answers the few calls Repository makes of a dict."""

from __future__ import annotations

import base64
from array import array

from backups.repo.pack import Entry


class BlobIndex:
    def __init__(self):
        self._slot: dict[bytes, int] = {}
        self._pack = array("I")
        self._kind = array("B")
        self._offset = array("Q")
        self._length = array("I")
        self._raw = array("I")
        self._pack_ids: list[str] = []
        self._pack_no: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._slot

    def _number(self, pack_id: str) -> int:
        number = self._pack_no.get(pack_id)
        if number is None:
            number = self._pack_no[pack_id] = len(self._pack_ids)
            self._pack_ids.append(pack_id)
        return number

    def __setitem__(self, blob_id: bytes, value: tuple[str, Entry]) -> None:
        pack_id, entry = value
        self.put(blob_id, pack_id, entry.kind, entry.offset, entry.length, entry.raw_length)

    def put(self, blob_id: bytes, pack_id: str, kind: int, offset: int, length: int, raw_length: int) -> None:
        slot = self._slot.get(blob_id)
        if slot is None:
            self._slot[blob_id] = len(self._pack)
            self._pack.append(self._number(pack_id))
            self._kind.append(kind)
            self._offset.append(offset)
            self._length.append(length)
            self._raw.append(raw_length)
            return
        self._pack[slot] = self._number(pack_id)
        self._kind[slot] = kind
        self._offset[slot] = offset
        self._length[slot] = length
        self._raw[slot] = raw_length

    def load(self, pack_id: str, entries, *, replaces) -> None:
        """An index file's entries of one pack, fast: by column (what
        repository.index_columns writes: bulk appends when no blob is known
        yet), or as rows ([kind, hex id, offset, length, raw length]). A
        blob already known keeps its place unless ``replaces(known pack
        id)`` says this pack wins."""
        if isinstance(entries, dict):
            raw_ids = base64.b64decode(entries["ids"])
            ids = [raw_ids[i:i + 32] for i in range(0, len(raw_ids), 32)]
            kinds = base64.b64decode(entries["kind"])
            columns = (kinds, entries["offset"], entries["length"], entries["raw"])
            if len({len(ids), *map(len, columns)}) != 1:
                raise ValueError("an index entry's columns differ in length")
            if self._slot.keys().isdisjoint(ids) and len(set(ids)) == len(ids):
                number, start = self._number(pack_id), len(self._pack)
                self._slot.update(zip(ids, range(start, start + len(ids))))
                self._pack.extend([number] * len(ids))
                self._kind.frombytes(kinds)
                self._offset.extend(entries["offset"])
                self._length.extend(entries["length"])
                self._raw.extend(entries["raw"])
                return
            entries = [[k, b.hex(), o, n, r] for b, k, o, n, r in zip(ids, kinds, *columns[1:])]
        number = self._number(pack_id)
        slots, packs, kinds = self._slot, self._pack, self._kind
        offsets, lengths, raws, pack_ids = self._offset, self._length, self._raw, self._pack_ids
        for kind, blob_hex, offset, length, raw_length in entries:
            blob_id = bytes.fromhex(blob_hex)
            slot = slots.get(blob_id)
            if slot is None:
                slots[blob_id] = len(packs)
                packs.append(number)
                kinds.append(kind)
                offsets.append(offset)
                lengths.append(length)
                raws.append(raw_length)
            elif replaces(pack_ids[packs[slot]]):
                packs[slot], kinds[slot], offsets[slot], lengths[slot], raws[slot] = \
                    number, kind, offset, length, raw_length

    def has_all(self, blob_ids, *, unless_in=frozenset()) -> bool:
        """Every id is indexed, in a pack not in ``unless_in``."""
        if not unless_in:
            return all(map(self._slot.__contains__, blob_ids))
        return all(self.pack_of(b) not in (None, *unless_in) for b in blob_ids)

    def _at(self, blob_id: bytes, slot: int) -> tuple[str, Entry]:
        return (self._pack_ids[self._pack[slot]],
                Entry(self._kind[slot], blob_id, self._offset[slot], self._length[slot], self._raw[slot]))

    def __getitem__(self, blob_id: bytes) -> tuple[str, Entry]:
        return self._at(blob_id, self._slot[blob_id])

    def get(self, blob_id: bytes, default=None):
        slot = self._slot.get(blob_id)
        return default if slot is None else self._at(blob_id, slot)

    def pack_of(self, blob_id: bytes) -> str | None:
        slot = self._slot.get(blob_id)
        return None if slot is None else self._pack_ids[self._pack[slot]]

    def __delitem__(self, blob_id: bytes) -> None:
        del self._slot[blob_id]  # the slot's fields stay unused

    def items(self):
        for blob_id, slot in self._slot.items():
            yield blob_id, self._at(blob_id, slot)

    def values(self):
        for blob_id, slot in self._slot.items():
            yield self._at(blob_id, slot)

    def by_pack(self):
        """{pack id: lazily, its (blob id, Entry) pairs}: a mapping whose
        values are generators, built from slot numbers only."""
        slots: dict[int, list[int]] = {}
        ids: dict[int, bytes] = {}
        for blob_id, slot in self._slot.items():
            slots.setdefault(self._pack[slot], []).append(slot)
            ids[slot] = blob_id
        return {self._pack_ids[number]: _Entries(self, ids, members) for number, members in slots.items()}

    def pack_ends(self) -> dict[str, int]:
        """{pack id: the end of its last indexed blob}."""
        ends: dict[int, int] = {}
        for slot in self._slot.values():
            end = self._offset[slot] + self._length[slot]
            number = self._pack[slot]
            if end > ends.get(number, 0):
                ends[number] = end
        return {self._pack_ids[number]: end for number, end in ends.items()}

    def pack_ids(self) -> set[str]:
        """The packs some indexed blob is in."""
        return {self._pack_ids[self._pack[slot]] for slot in self._slot.values()}


class _Entries:
    """The (blob id, Entry) pairs of one pack, made when iterated."""

    def __init__(self, index: BlobIndex, ids: dict, slots: list):
        self._index, self._ids, self._slots = index, ids, slots

    def __iter__(self):
        for slot in self._slots:
            blob_id = self._ids[slot]
            yield blob_id, self._index._at(blob_id, slot)[1]
