"""The recursive NBT structure walker the engine used before issue #16, kept as
the oracle for ``world.check_nbt_structure``: the iterative walker that
replaced it must accept and refuse exactly the same bytes (the verification
report stays as strict as it was). One deliberate difference: lists nested
past the depth limit with no compound inside made this walker overflow
Python's recursion (RecursionError); the new one reports "nested too deeply".
"""
from __future__ import annotations

_FIXED_WIDTH = {1: 1, 2: 2, 3: 4, 4: 8, 5: 4, 6: 8}
_ARRAY_WIDTH = {7: 1, 11: 4, 12: 8}
_MAX_DEPTH = 256


def check_nbt_structure(data: bytes) -> None:
    size = len(data)
    if size < 3 or data[0] != 10:
        raise ValueError("root tag is not a compound")
    try:
        end = _walk_compound(data, 3 + int.from_bytes(data[1:3], "big"), size, 0)
    except IndexError:
        raise ValueError("NBT data truncated") from None
    if end != size:
        raise ValueError("NBT data truncated" if end > size else f"{size - end} bytes after the end of the NBT data")


def _walk_compound(data: bytes, pos: int, size: int, depth: int) -> int:
    if depth > _MAX_DEPTH:
        raise ValueError("NBT nested too deeply")
    while True:
        tag = data[pos]
        if tag == 0:
            return pos + 1
        pos += 3 + ((data[pos + 1] << 8) | data[pos + 2])
        width = _FIXED_WIDTH.get(tag)
        pos = pos + width if width is not None else _walk_payload(data, tag, pos, size, depth)
        if pos > size:
            raise IndexError


def _walk_payload(data: bytes, tag: int, pos: int, size: int, depth: int) -> int:
    width = _FIXED_WIDTH.get(tag)
    if width is not None:
        return pos + width
    if tag == 8:
        return pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if tag in _ARRAY_WIDTH:
        count = int.from_bytes(data[pos:pos + 4], "big", signed=True)
        if count < 0 or pos + 4 > size:
            raise ValueError("negative or truncated array length in NBT")
        return pos + 4 + count * _ARRAY_WIDTH[tag]
    if tag == 9:
        item = data[pos]
        count = int.from_bytes(data[pos + 1:pos + 5], "big", signed=True)
        pos += 5
        if pos > size:
            raise IndexError
        if count <= 0:
            return pos
        width = _FIXED_WIDTH.get(item)
        if width is not None:
            return pos + count * width
        if item == 0:
            raise ValueError("non-empty list of End tags in NBT")
        if item == 10:
            for _ in range(count):
                pos = _walk_compound(data, pos, size, depth + 1)
            return pos
        for _ in range(count):
            pos = _walk_payload(data, item, pos, size, depth + 1)
            if pos > size:
                raise IndexError
        return pos
    if tag == 10:
        return _walk_compound(data, pos, size, depth + 1)
    raise ValueError(f"unknown NBT tag type {tag}")
