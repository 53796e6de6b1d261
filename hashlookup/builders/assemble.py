"""Writing an index file section by section, without holding it in memory.

format.write_file lays out sections held in memory; a build past memory
produces its sections as streams instead.  A FileAssembler gives each
section its place as soon as its length is known, in the order of the
file, with the same layout rules (every section on a 4096-byte boundary,
zero padding), and hashes each one as it is written; the header goes in
last.  The result is byte for byte what write_file writes for the same
sections.  Sections may be filled out of order once placed: a key table's
rowmap gets its place when the table's size is known and its contents
after every table has been merged.
"""

from __future__ import annotations

import os
from typing import Any

import xxhash

from hashlookup.store import format as _format


class Slot:
    """One placed section: written front to back, hashed as it goes."""

    def __init__(
        self,
        fd: int,
        kind: int,
        offset: int,
        length: int | None,
        flags: int,
        group: int,
        params: tuple[int, int, int],
    ) -> None:
        self.fd = fd
        self.kind = kind
        self.offset = offset
        self.length = length  # None while an open-ended stream is written
        self.flags = flags
        self.group = group
        self.params = params
        self.written = 0
        self._hash = xxhash.xxh3_64()

    def write(self, data: Any) -> None:
        """Append bytes (any C-contiguous buffer) to the section."""
        mv = _format.byte_view(data)
        n = mv.nbytes
        if self.length is not None and self.written + n > self.length:
            raise ValueError(f"section kind {self.kind}: more bytes than placed")
        self._hash.update(mv)
        pos = 0
        while pos < n:  # pwrite may write less than asked
            pos += os.pwrite(self.fd, mv[pos:], self.offset + self.written + pos)
        self.written += n

    def section(self) -> _format.Section:
        if self.length is None or self.written != self.length:
            raise ValueError(
                f"section kind {self.kind}: {self.written} of "
                f"{self.length} bytes written"
            )
        return _format.Section(
            self.kind,
            self.offset,
            self.length,
            self._hash.intdigest(),
            self.flags,
            self.group,
            self.params,
        )


class FileAssembler:
    """Places and writes the sections of one file opened for writing (an
    atomic_output file): place() in file order, then fill each slot, then
    finish()."""

    def __init__(self, f: Any) -> None:
        f.flush()
        self.fd = f.fileno()
        self.next_offset = _format.ALIGN
        self.slots: list[Slot] = []

    def _check_open(self) -> None:
        if self.slots and self.slots[-1].length is None:
            raise ValueError("the previous open-ended section is not closed")

    def place(
        self,
        kind: int,
        length: int | None,
        *,
        flags: int = _format.SECTION_REQUIRED,
        group: int = 0,
        params: tuple[int, int, int] = (0, 0, 0),
    ) -> Slot:
        """The next section; `length` None: open-ended until close()."""
        self._check_open()
        if len(self.slots) >= _format.MAX_SECTIONS:
            raise ValueError(
                f"at most {_format.MAX_SECTIONS} sections fit in the header"
            )
        slot = Slot(self.fd, kind, self.next_offset, length, flags, group, params)
        self.slots.append(slot)
        if length is not None:
            self._advance(length)
        return slot

    def close(self, slot: Slot, params: tuple[int, int, int] | None = None) -> None:
        """End an open-ended section at what was written to it."""
        if slot.length is not None:
            raise ValueError("close() is for open-ended sections")
        slot.length = slot.written
        if params is not None:
            slot.params = params
        self._advance(slot.length)

    def _advance(self, length: int) -> None:
        if length:
            self.next_offset = _format.align_up(self.next_offset + length)

    def add(self, part: _format.SectionData) -> None:
        """A section held in memory, written at once."""
        data = _format.byte_view(part.data)
        slot = self.place(
            part.kind,
            data.nbytes,
            flags=part.flags,
            group=part.group,
            params=part.params,
        )
        slot.write(data)

    def finish(self, created_ns: int) -> int:
        """Write the header and set the file's size; returns it."""
        self._check_open()
        sections = [s.section() for s in self.slots]
        file_size = (
            max(_format.ALIGN, sections[-1].offset + sections[-1].length)
            if sections
            else _format.ALIGN
        )
        header = _format.encode_header(sections, created_ns, file_size)
        os.pwrite(self.fd, header.ljust(_format.ALIGN, b"\0"), 0)
        # Padding between sections is never written: holes read as zeros,
        # as write_file's explicit padding does.
        os.ftruncate(self.fd, file_size)
        return file_size
