"""The IFD0, EXIF and GPS directories of an EXIF block, read straight from its bytes.

The scan reads the same few dozen tags from every photo. Pillow's ``Image.Exif``
turns each tag through several layers of Python (some 110 µs a camera JPEG, a
fifth of what the scan spends on a file); this reads only the tags asked for, in
about a tenth of that, and gives each value the shape Pillow would give it:
``str`` for ASCII (Latin-1, one trailing NUL dropped), ``bytes`` for BYTE and
UNDEFINED, a number or a tuple of numbers otherwise (a single value when there is
one, or when the tag's specification says one), rationals as :class:`Ratio`.

Only well-formed blocks are read here. Anything unusual — another byte order
mark, a directory or value outside the block, a missing sub-directory, no
readable tag in IFD0 — raises :class:`Unusual`, and the caller reads the block
with Pillow instead, whose handling of damaged data (and the warnings the owner
sees about it) stays the reference. ``tests/test_exif_directories.py`` checks
that both agree on every corpus file and on thousands of damaged blocks.
"""

from __future__ import annotations

import struct

from PIL import TiffTags

EXIF_IFD, GPS_IFD = 0x8769, 0x8825

# type: (bytes per value, struct code or None for the types kept as bytes / text)
_TYPES = {
    1: (1, None), 2: (1, None), 3: (2, "H"), 4: (4, "L"), 5: (8, "L"), 6: (1, "b"), 7: (1, None),
    8: (2, "h"), 9: (4, "l"), 10: (8, "l"), 11: (4, "f"), 12: (8, "d"), 13: (4, "L"), 16: (8, "Q"),
}  # fmt: skip
_ASCII, _RATIONAL, _SIGNED_RATIONAL = 2, 5, 10


class Unusual(ValueError):
    """The block is not plainly well formed: read it with Pillow instead."""


class Ratio:
    """A TIFF rational as stored (not reduced); a zero denominator is kept, as Pillow keeps it."""

    __slots__ = ("numerator", "denominator")

    def __init__(self, numerator: int, denominator: int):
        self.numerator, self.denominator = numerator, denominator

    def __repr__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def _spec(tags, group) -> dict[int, tuple[int | None, dict]]:
    return {tag: (info.length, info.enum) for tag in tags for info in [TiffTags.lookup(tag, group)]}


class Reader:
    """Reads the listed tags of IFD0 and the EXIF directory, and every GPS tag (0–31)."""

    def __init__(self, tags):
        tags = tuple(tags)
        self._ifd0 = _spec((*tags, EXIF_IFD, GPS_IFD), None)
        self._exif = _spec(tags, EXIF_IFD)
        self._gps = _spec(range(32), GPS_IFD)

    def read(self, raw: bytes) -> tuple[dict, dict, dict]:
        """The ``(ifd0, exif, gps)`` directories of ``raw`` (with or without
        the ``Exif\\0\\0`` header JPEG puts in front); raises :class:`Unusual`."""
        try:
            return self._read(bytes(raw))
        except struct.error as exc:  # a block shorter than its header says
            raise Unusual(str(exc)) from exc

    def _read(self, data: bytes) -> tuple[dict, dict, dict]:
        for _ in range(2):  # Pillow drops up to two headers
            if data.startswith(b"Exif\x00\x00"):
                data = data[6:]
        order = data[:4]
        if order == b"II*\x00":
            endian = "<"
        elif order == b"MM\x00*":
            endian = ">"
        else:
            raise Unusual("not a classic TIFF header")
        (first,) = struct.unpack_from(endian + "L", data, 4)
        ifd0 = self._directory(data, endian, first, self._ifd0)
        if not ifd0:
            raise Unusual("no readable tag in IFD0")
        exif = gps = {}
        if EXIF_IFD in ifd0:
            exif = self._directory(data, endian, self._pointer(ifd0.pop(EXIF_IFD)), self._exif)
        if GPS_IFD in ifd0:
            gps = self._directory(data, endian, self._pointer(ifd0.pop(GPS_IFD)), self._gps)
        return ifd0, exif, gps

    @staticmethod
    def _pointer(value) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Unusual("a sub-directory pointer that is not one number")
        return value

    def _directory(self, data: bytes, endian: str, offset: int, wanted: dict) -> dict:
        end = len(data)
        if offset < 8 or offset + 2 > end:
            raise Unusual("a directory outside the block")
        (count,) = struct.unpack_from(endian + "H", data, offset)
        if offset + 2 + 12 * count > end:
            raise Unusual("a directory running past the block")
        found, stored, total = {}, set(), 0
        entry = struct.Struct(endian + "HHL")
        pointer = struct.Struct(endian + "L")
        for position in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, typ, n = entry.unpack_from(data, position)
            if tag in stored:
                continue  # Pillow keeps a tag's first entry
            kind = _TYPES.get(typ)
            if kind is None:
                continue  # and skips types it does not know
            size = kind[0] * n
            if size > 4:
                (start,) = pointer.unpack_from(data, position + 8)
                total += size
                if total > end or start + size > end:  # Pillow skips or stops there, with a warning
                    raise Unusual("values outside the block")
            elif not size:
                continue  # and values with no data
            else:
                start = position + 8
            stored.add(tag)
            if tag in wanted:
                found[tag] = self._value(data, endian, start, size, typ, kind, wanted[tag])
        return found

    @staticmethod
    def _value(data: bytes, endian: str, start: int, size: int, typ: int, kind, spec):
        raw = data[start : start + size]
        if typ == _ASCII:
            if raw.endswith(b"\x00"):
                raw = raw[:-1]
            text = raw.decode("latin-1", "replace")
            length, enum = spec
            return enum.get(text, text) if enum else text
        unit, code = kind
        if code is None:  # BYTE, UNDEFINED
            return raw
        if typ in (_RATIONAL, _SIGNED_RATIONAL):
            numbers = struct.unpack(f"{endian}{size // 4}{code}", raw)
            values = tuple(Ratio(a, b) for a, b in zip(numbers[::2], numbers[1::2]))
        else:
            values = struct.unpack(f"{endian}{size // unit}{code}", raw)
        length = spec[0]
        return values[0] if length == 1 or len(values) == 1 else values
