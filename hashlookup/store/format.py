"""The index file format, version 1 (specified in docs/FORMAT.md).

This module owns every byte layout: the header, the section table, the
per-kind section parameters, and their validation.  Reading is O(1): the
header and section table are checked against each other and against the
file size; section bodies are only checksummed by verify().

Files are untrusted input.  Every check raises IndexFormatError with the
file name and the field that is wrong; nothing here indexes into a section
body before its bounds were checked.
"""

from __future__ import annotations

import itertools
import struct
import time

import xxhash

from hashlookup import algorithms
from hashlookup.errors import IndexFormatError, IndexVersionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAGIC = b"\x89HLX\r\n\x1a\n"  # non-ASCII first byte and CR/LF catch text-mode damage
FORMAT_VERSION = 1
ENDIAN_MARK = 0x0A0B0C0D
ALIGN = 4096  # sections start on page boundaries; the header owns page 0

# magic, version, endian mark, header size, section count, created (ns since
# the epoch), file size, flags, reserved, header checksum.
HEADER = struct.Struct("<8sIIIIQQQQQ")
HEADER_CHECKSUM_OFFSET = 56
# kind, flags, group, reserved, offset, length, checksum, param0..2
SECTION = struct.Struct("<IIIIQQQQQQ")
MAX_SECTIONS = (ALIGN - HEADER.size) // SECTION.size

SECTION_REQUIRED = 1  # a reader that does not know the kind must refuse the file

KIND_KEYS = 1
KIND_LOCATOR = 2
KIND_BLOOM = 3
KIND_METADATA = 4
KIND_ROWMAP = 5  # per key table: uint32 record id of every row
KIND_RECORDS = 6  # dataset: one 24-byte entry per record
KIND_LABEL_BITMAPS = 7  # dataset: serialized roaring bitmaps, back to back
KIND_LABEL_INDEX = 8  # dataset: JSON directory of the bitmaps
KIND_PDQ_HASHES = 9  # dataset: 32-byte PDQ hashes (docs/NEAR.md)
KIND_PDQ_RECORDS = 10  # dataset: record id (u32) and quality (u8) of each
KIND_PDQ_INDEX = 11  # dataset: the multi-index over the PDQ hashes
KIND_PREFILTER = 12  # per key table: first-level filter (optional, not required)
# Record attributes (hashlookup.store.attributes), optional: ids kept well
# away from the next free one (the PDQ kinds took 9, 10, 11)
KIND_ATTR_STRINGS = 17  # dataset: the attribute string table
KIND_ATTR_REFS = 18  # dataset: per record, a string id per attribute name
KIND_CODE_TABLE = 19  # dataset: a table keyed by an attribute's value (NSRL's)
KIND_NAMES = {
    KIND_KEYS: "keys",
    KIND_LOCATOR: "locator",
    KIND_BLOOM: "bloom",
    KIND_METADATA: "metadata",
    KIND_ROWMAP: "rowmap",
    KIND_RECORDS: "records",
    KIND_LABEL_BITMAPS: "label bitmaps",
    KIND_LABEL_INDEX: "label index",
    KIND_PDQ_HASHES: "pdq hashes",
    KIND_PDQ_RECORDS: "pdq records",
    KIND_PDQ_INDEX: "pdq index",
    KIND_PREFILTER: "prefilter",
    KIND_ATTR_STRINGS: "attribute strings",
    KIND_ATTR_REFS: "attribute refs",
    KIND_CODE_TABLE: "code table",
}
PDQ_KINDS = (KIND_PDQ_HASHES, KIND_PDQ_RECORDS, KIND_PDQ_INDEX)

# A record: rows of its md5, sha1 and sha256 digests in their key tables
# (NO_ROW if unknown), flags (0), file size (-1 if unknown).
RECORD = struct.Struct("<IIIIq")
RECORD_DTYPE = [
    ("md5_row", "<u4"),
    ("sha1_row", "<u4"),
    ("sha256_row", "<u4"),
    ("flags", "<u4"),
    ("size", "<i8"),
]
NO_ROW = 0xFFFFFFFF
MAX_RECORDS = 0xFFFFFFFE
MAX_LABEL_INDEX = 64 << 20

# algorithm name -> (id stored in the keys section, width in bytes or 0)
ALGORITHMS = {
    "raw": (algorithms.RAW_FORMAT_ID, 0),
    **{a.name: (a.format_id, a.width) for a in algorithms.DIGESTS},
}
ALGORITHM_BY_ID = {aid: name for name, (aid, _) in ALGORITHMS.items()}
ALGORITHM_BY_WIDTH = {w: name for name, (_, w) in ALGORITHMS.items() if w}

MAX_WIDTH = 64
MAX_KEYS = 0xFFFFFFFF  # locator entries are uint32 row numbers
MAX_LOCATOR_BITS = 32
MAX_BLOOM_K = 16
MAX_BLOOM_BLOCKS = 1 << 32
MAX_PREFILTER_K = 4
MAX_PREFILTER_WORDS = 1 << 32
MAX_METADATA = 16 << 20
BLOOM_BLOCK = 64


class _Record:
    """Base of the records every open reads (header, layouts) and of the
    sections a build writes: a dataclass's repr and ``==`` (field by field,
    same class only; unhashable), written out, since making a dataclass
    costs about half a millisecond of every one-shot lookup each.
    ``__slots__`` lists the fields in their order (not sorted)."""

    __slots__: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed, as ``dataclasses.replace`` makes
        (tests rewrite section table entries with it)."""
        values = {f: getattr(self, f) for f in self.__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__qualname__} has no field {min(unknown)!r}")
        values.update(changes)
        return type(self)(**values)


class Section(_Record):
    """One entry of the section table."""

    __slots__ = (  # noqa: RUF023  (field order: __init__, repr)
        "kind", "offset", "length", "checksum", "flags", "group", "params",
    )  # fmt: skip

    def __init__(
        self,
        kind: int,
        offset: int,
        length: int,
        checksum: int = 0,
        flags: int = 0,
        group: int = 0,
        params: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.kind = kind
        self.offset = offset
        self.length = length
        self.checksum = checksum
        self.flags = flags
        self.group = group
        self.params = params

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind {self.kind}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "kind_id": self.kind,
            "offset": self.offset,
            "length": self.length,
            "checksum": f"{self.checksum:016x}",
            "required": bool(self.flags & SECTION_REQUIRED),
            "group": self.group,
        }


class Header(_Record):
    """The parsed file header: version, sizes, creation time, flags,
    checksum and section table."""

    __slots__ = (  # noqa: RUF023  (field order: __init__, repr)
        "version", "header_size", "created_ns", "file_size", "flags", "checksum",
        "sections",
    )  # fmt: skip

    def __init__(
        self,
        version: int,
        header_size: int,
        created_ns: int,
        file_size: int,
        flags: int,
        checksum: int,
        sections: list[Section] | None = None,
    ) -> None:
        self.version = version
        self.header_size = header_size
        self.created_ns = created_ns
        self.file_size = file_size
        self.flags = flags
        self.checksum = checksum
        self.sections: list[Section] = [] if sections is None else sections


class TableLayout(_Record):
    """Where one key table's parts are, with their validated parameters."""

    __slots__ = (  # noqa: RUF023  (field order: __init__, repr)
        "algorithm", "width", "count", "keys", "locator", "locator_bits", "bloom",
        "bloom_blocks", "bloom_k", "bloom_seed", "prefilter", "prefilter_words",
        "prefilter_k", "prefilter_seed",
    )  # fmt: skip

    def __init__(
        self,
        algorithm: str,
        width: int,
        count: int,
        keys: Section,
        locator: Section,
        locator_bits: int,
        bloom: Section | None,
        bloom_blocks: int,
        bloom_k: int,
        bloom_seed: int,
        prefilter: Section | None = None,
        prefilter_words: int = 0,
        prefilter_k: int = 0,
        prefilter_seed: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.width = width
        self.count = count
        self.keys = keys
        self.locator = locator
        self.locator_bits = locator_bits
        self.bloom = bloom
        self.bloom_blocks = bloom_blocks
        self.bloom_k = bloom_k
        self.bloom_seed = bloom_seed
        self.prefilter = prefilter
        self.prefilter_words = prefilter_words
        self.prefilter_k = prefilter_k
        self.prefilter_seed = prefilter_seed


def iso_utc(created_ns: int) -> str:
    """A header's creation time (ns since the epoch) in ISO 8601, UTC, as
    ``datetime.fromtimestamp(created_ns / 1e9, timezone.utc).isoformat()``
    spells it (microseconds rounded half to even, left out when zero).

    Written with ``time.gmtime``: importing ``datetime`` costs about a
    millisecond of every one-shot lookup, which prints this string.
    """
    whole, frac = divmod(created_ns / 1e9, 1.0)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        whole, us = whole + 1, us - 1_000_000
    t = time.gmtime(int(whole))
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    return f"{text}.{us:06d}+00:00" if us else f"{text}+00:00"


def header_checksum(header_bytes: bytes | bytearray | memoryview) -> int:
    """xxh3-64 of the header bytes with the checksum field taken as zero."""
    b = bytearray(header_bytes)
    b[HEADER_CHECKSUM_OFFSET : HEADER_CHECKSUM_OFFSET + 8] = bytes(8)
    return xxhash.xxh3_64_intdigest(bytes(b))


def section_checksum(data: Any) -> int:
    return xxhash.xxh3_64_intdigest(data)


def align_up(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


class SectionData(_Record):
    """One section to write: its kind, contents and table entry fields."""

    __slots__ = ("kind", "data", "flags", "group", "params")  # noqa: RUF023

    def __init__(
        self,
        kind: int,
        data: Any,  # bytes-like, C-contiguous
        flags: int = SECTION_REQUIRED,
        group: int = 0,
        params: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self.kind = kind
        self.data = data
        self.flags = flags
        self.group = group
        self.params = params


def write_file(f: Any, parts: list[SectionData], created_ns: int) -> int:
    """Write a complete index to the binary file object f; returns its size."""
    if len(parts) > MAX_SECTIONS:
        raise ValueError(f"at most {MAX_SECTIONS} sections fit in the header")
    sections = []
    offset = ALIGN
    for p in parts:
        mv = byte_view(p.data)
        sections.append(
            Section(
                p.kind,
                offset,
                mv.nbytes,
                section_checksum(mv),
                p.flags,
                p.group,
                p.params,
            )
        )
        offset = align_up(offset + mv.nbytes) if mv.nbytes else offset
    file_size = (
        max(ALIGN, sections[-1].offset + sections[-1].length) if sections else ALIGN
    )
    header = encode_header(sections, created_ns, file_size)
    f.write(header.ljust(ALIGN, b"\0"))
    pos = ALIGN
    for p, s in zip(parts, sections, strict=True):
        if s.offset > pos:
            f.write(bytes(s.offset - pos))
            pos = s.offset
        f.write(byte_view(p.data))
        pos += s.length
    if pos < file_size:
        f.write(bytes(file_size - pos))
    return file_size


def byte_view(data: Any) -> memoryview:
    """The bytes of a C-contiguous buffer (numpy structured arrays and
    non-native formats included)."""
    mv = memoryview(data)
    if mv.format in ("B", "b", "c") and mv.ndim == 1:
        return mv
    if not mv.c_contiguous:
        raise ValueError("section data must be C-contiguous")
    return mv.cast("B") if len(mv.format) == 1 else memoryview(mv.tobytes())


def encode_header(sections: list[Section], created_ns: int, file_size: int) -> bytes:
    header_size = HEADER.size + SECTION.size * len(sections)
    buf = bytearray(header_size)
    HEADER.pack_into(
        buf,
        0,
        MAGIC,
        FORMAT_VERSION,
        ENDIAN_MARK,
        header_size,
        len(sections),
        created_ns,
        file_size,
        0,
        0,
        0,
    )
    for i, s in enumerate(sections):
        SECTION.pack_into(
            buf,
            HEADER.size + i * SECTION.size,
            s.kind,
            s.flags,
            s.group,
            0,
            s.offset,
            s.length,
            s.checksum,
            *s.params,
        )
    struct.pack_into("<Q", buf, HEADER_CHECKSUM_OFFSET, header_checksum(buf))
    return bytes(buf)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_header(buf: Any, file_size: int, name: str) -> Header:
    """Parse and validate the header and section table of buf (the whole file).

    Raises IndexFormatError (IndexVersionError for newer versions) naming the
    file and the field at fault.
    """

    def fail(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{name}: {msg}")

    if file_size == 0:
        raise fail("empty file, not a hashlookup index")
    if file_size < len(MAGIC) or bytes(buf[: len(MAGIC)]) != MAGIC:
        raise fail("not a hashlookup index (bad magic bytes)")
    if file_size < HEADER.size:
        raise fail(
            f"truncated: {file_size} bytes, smaller than the {HEADER.size}-byte header"
        )
    (
        _,
        version,
        endian,
        header_size,
        count,
        created_ns,
        declared_size,
        flags,
        _reserved,
        checksum,
    ) = HEADER.unpack_from(buf, 0)
    if version > FORMAT_VERSION:
        raise IndexVersionError(
            f"{name}: format version {version} is newer than this hashlookup "
            f"supports (version {FORMAT_VERSION}); upgrade hashlookup"
        )
    if version == 0:
        raise fail("format version 0 is invalid")
    if endian != ENDIAN_MARK:
        if endian == int.from_bytes(ENDIAN_MARK.to_bytes(4, "little"), "big"):
            raise fail(
                "endianness marker says big-endian; format version 1 "
                "files are little-endian"
            )
        raise fail(f"bad endianness marker 0x{endian:08x}")
    if count > MAX_SECTIONS:
        raise fail(f"section count {count} exceeds the maximum {MAX_SECTIONS}")
    if header_size != HEADER.size + SECTION.size * count:
        raise fail(f"header size {header_size} does not match {count} sections")
    if header_size > file_size:
        raise fail(f"truncated: {file_size} bytes, header needs {header_size}")
    if header_checksum(buf[:header_size]) != checksum:
        raise fail("header checksum mismatch (header corrupt)")
    if flags != 0:
        raise fail(f"unknown header flags 0x{flags:x}")
    if declared_size != file_size:
        if file_size < declared_size:
            raise fail(f"truncated: {file_size} bytes, header says {declared_size}")
        raise fail(
            f"{file_size - declared_size} bytes of trailing data after the "
            f"{declared_size} bytes the header declares"
        )

    header = Header(version, header_size, created_ns, declared_size, flags, checksum)
    for i in range(count):
        (kind, sflags, group, _r, offset, length, schecksum, p0, p1, p2) = (
            SECTION.unpack_from(buf, HEADER.size + i * SECTION.size)
        )
        s = Section(kind, offset, length, schecksum, sflags, group, (p0, p1, p2))
        where = f"section {i} ({s.name})"
        if offset % ALIGN or offset < ALIGN:
            raise fail(
                f"{where}: offset {offset} is not a {ALIGN}-byte aligned "
                "position after the header"
            )
        if offset + length > file_size:
            raise fail(
                f"{where}: ends at {offset + length}, past the end of the "
                f"file ({file_size} bytes)"
            )
        if sflags & ~SECTION_REQUIRED:
            raise fail(f"{where}: unknown section flags 0x{sflags:x}")
        if kind not in KIND_NAMES and sflags & SECTION_REQUIRED:
            raise fail(
                f"{where}: required section kind {kind} is not supported "
                "by this version of hashlookup"
            )
        header.sections.append(s)
    spans = sorted(
        (s.offset, s.offset + s.length, i)
        for i, s in enumerate(header.sections)
        if s.length
    )
    for (_, end, i), (start, _, j) in itertools.pairwise(spans):
        if start < end:
            raise fail(f"sections {i} and {j} overlap")
    return header


def table_layout(header: Header, name: str, group: int = 0) -> TableLayout:
    """Find and validate the key table of `group`: keys, locator, Bloom and
    first-level filter."""

    def fail(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{name}: {msg}")

    found: dict[int, Section] = {}
    for s in header.sections:
        if s.group != group or s.kind not in _TABLE_KINDS:
            continue
        if s.kind in found:
            raise fail(f"two {s.name} sections for table {group}")
        found[s.kind] = s
    keys = found.get(KIND_KEYS)
    loc = found.get(KIND_LOCATOR)
    if keys is None:
        raise fail(f"no keys section for table {group}")
    if loc is None:
        raise fail(f"no locator section for table {group}")

    alg_id, width, count = keys.params
    if alg_id not in ALGORITHM_BY_ID:
        raise fail(f"keys section: unknown algorithm id {alg_id}")
    algorithm = ALGORITHM_BY_ID[alg_id]
    expected_width = ALGORITHMS[algorithm][1]
    if expected_width and width != expected_width:
        raise fail(
            f"keys section: {algorithm} keys are {expected_width} bytes, "
            f"header says {width}"
        )
    if not 1 <= width <= MAX_WIDTH:
        raise fail(f"keys section: key width {width} outside 1..{MAX_WIDTH}")
    if count > MAX_KEYS:
        raise fail(f"keys section: {count} keys exceeds the maximum {MAX_KEYS}")
    if keys.length != count * width:
        raise fail(
            f"keys section: length {keys.length} is not {count} keys of {width} bytes"
        )

    bits, entry_size, _ = loc.params
    if bits > min(MAX_LOCATOR_BITS, 8 * width):
        raise fail(
            f"locator section: {bits} prefix bits out of range for {width}-byte keys"
        )
    if entry_size != 4:
        raise fail(f"locator section: entry size {entry_size}, expected 4")
    if loc.length != 4 * ((1 << bits) + 1):
        raise fail(
            f"locator section: length {loc.length} does not match {bits} prefix bits"
        )

    bloom = found.get(KIND_BLOOM)
    blocks = k = seed = 0
    if bloom is not None:
        blocks, k, seed = bloom.params
        if not 1 <= blocks <= MAX_BLOOM_BLOCKS:
            raise fail(f"bloom section: block count {blocks} out of range")
        if not 1 <= k <= MAX_BLOOM_K:
            raise fail(f"bloom section: {k} probes per key, expected 1..{MAX_BLOOM_K}")
        if bloom.length != blocks * BLOOM_BLOCK:
            raise fail(
                f"bloom section: length {bloom.length} is not {blocks} "
                f"blocks of {BLOOM_BLOCK} bytes"
            )
    layout = TableLayout(
        algorithm, width, count, keys, loc, bits, bloom, blocks, k, seed
    )
    pre = found.get(KIND_PREFILTER)
    if pre is not None:
        words, pk, _ = pre.params
        if not 1 <= words <= MAX_PREFILTER_WORDS:
            raise fail(f"prefilter section: word count {words} out of range")
        if not 1 <= pk <= MAX_PREFILTER_K:
            raise fail(
                f"prefilter section: {pk} probes per key, expected 1..{MAX_PREFILTER_K}"
            )
        if pre.length != 8 * words:
            raise fail(
                f"prefilter section: length {pre.length} is not {words} words "
                "of 8 bytes"
            )
        layout.prefilter = pre
        layout.prefilter_words, layout.prefilter_k, layout.prefilter_seed = pre.params
    return layout


_TABLE_KINDS = (KIND_KEYS, KIND_LOCATOR, KIND_BLOOM, KIND_PREFILTER)


def find_sections(header: Header, kind: int) -> list[Section]:
    return [s for s in header.sections if s.kind == kind]


def table_groups(header: Header) -> list[int]:
    """Groups that have a keys section, in file order."""
    return [s.group for s in header.sections if s.kind == KIND_KEYS]


class DatasetLayout(_Record):
    """Record-level sections of a dataset file (validated sizes)."""

    __slots__ = ("records", "count", "rowmaps", "label_bitmaps", "label_index")  # noqa: RUF023

    def __init__(
        self,
        records: Section,
        count: int,
        rowmaps: dict[int, Section],  # group -> rowmap section
        label_bitmaps: Section | None,
        label_index: Section | None,
    ) -> None:
        self.records = records
        self.count = count
        self.rowmaps = rowmaps
        self.label_bitmaps = label_bitmaps
        self.label_index = label_index


def dataset_layout(
    header: Header, tables: dict[int, TableLayout], name: str
) -> DatasetLayout | None:
    """Validate the record sections of a dataset; None for a plain index."""

    def fail(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{name}: {msg}")

    records = find_sections(header, KIND_RECORDS)
    if not records:
        if any(
            s.kind in (KIND_ROWMAP, KIND_LABEL_BITMAPS, KIND_LABEL_INDEX)
            for s in header.sections
        ):
            raise fail("record-level sections without a records section")
        return None
    if len(records) > 1:
        raise fail("more than one records section")
    rec = records[0]
    if rec.length % RECORD.size:
        raise fail(
            f"records section: length {rec.length} is not a multiple of {RECORD.size}"
        )
    count = rec.length // RECORD.size
    if count != rec.params[0]:
        raise fail(f"records section: {count} entries, header says {rec.params[0]}")
    if count > MAX_RECORDS:
        raise fail(f"records section: {count} records exceeds {MAX_RECORDS}")
    rowmaps: dict[int, Section] = {}
    for s in find_sections(header, KIND_ROWMAP):
        if s.group not in tables:
            raise fail(f"rowmap section for table {s.group}, which has no keys")
        if s.group in rowmaps:
            raise fail(f"two rowmap sections for table {s.group}")
        if s.length != 4 * tables[s.group].count:
            raise fail(
                f"rowmap section of table {s.group}: length {s.length} is "
                f"not 4 x {tables[s.group].count} rows"
            )
        rowmaps[s.group] = s
    for g in tables:
        if g not in rowmaps:
            raise fail(f"table {g} has no rowmap section")
    bitmaps = find_sections(header, KIND_LABEL_BITMAPS)
    index = find_sections(header, KIND_LABEL_INDEX)
    if len(bitmaps) > 1 or len(index) > 1 or len(bitmaps) != len(index):
        raise fail("label sections must come as one bitmaps and one index section")
    if index and index[0].length > MAX_LABEL_INDEX:
        raise fail("label index section too large")
    return DatasetLayout(
        rec,
        count,
        rowmaps,
        bitmaps[0] if bitmaps else None,
        index[0] if index else None,
    )


class PdqLayout(_Record):
    """Where a dataset's PDQ sections are, with their validated parameters."""

    __slots__ = ("count", "hashes", "records", "index", "chunks", "bucket_bits")  # noqa: RUF023

    def __init__(
        self,
        count: int,  # PDQ rows
        hashes: Section,  # count x 32 bytes
        records: Section,  # count x u32 record id, then count x u8 quality
        index: Section,  # the multi-index body (hashlookup.near)
        chunks: int,
        bucket_bits: int,
    ) -> None:
        self.count = count
        self.hashes = hashes
        self.records = records
        self.index = index
        self.chunks = chunks
        self.bucket_bits = bucket_bits


def pdq_layout(
    header: Header, dataset: DatasetLayout | None, name: str
) -> PdqLayout | None:
    """Validate the PDQ sections of a dataset; None when it has none.

    The three sections come together, once each, in a dataset (a records
    section); their lengths must match one row count and the index
    parameters (chunks, bucket bits) must be ones the near search knows,
    with the body size they imply.  O(1): no section body is read.
    """

    def fail(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{name}: {msg}")

    found: dict[int, Section] = {}
    for s in header.sections:
        if s.kind in PDQ_KINDS:
            if s.kind in found:
                raise fail(f"two {s.name} sections")
            found[s.kind] = s
    if not found:
        return None
    # below the store: the body's size (imported only for files with PDQ)
    from hashlookup.near import _near

    missing = [KIND_NAMES[k] for k in PDQ_KINDS if k not in found]
    if missing:
        raise fail(f"PDQ sections incomplete: no {', '.join(missing)} section")
    if dataset is None:
        raise fail("PDQ sections without a records section")
    hashes = found[KIND_PDQ_HASHES]
    records = found[KIND_PDQ_RECORDS]
    index = found[KIND_PDQ_INDEX]
    count = hashes.params[0]
    if count > _near.MAX_ROWS:
        raise fail(f"pdq hashes section: {count} rows exceeds {_near.MAX_ROWS}")
    if hashes.length != 32 * count:
        raise fail(
            f"pdq hashes section: length {hashes.length} is not {count} hashes "
            "of 32 bytes"
        )
    if records.params[0] != count or records.length != 5 * count:
        raise fail(
            f"pdq records section: length {records.length} (rows "
            f"{records.params[0]}) does not match {count} PDQ rows"
        )
    chunks, bits, icount = index.params
    if icount != count:
        raise fail(f"pdq index section: {icount} rows, the hashes have {count}")
    try:
        size = _near.body_size(chunks, bits, count)
    except (ValueError, OverflowError):
        raise fail(
            f"pdq index section: {chunks} chunks of {bits} bucket bits are out of range"
        ) from None
    if index.length != size:
        raise fail(
            f"pdq index section: length {index.length}, {chunks} chunks and "
            f"{bits} bucket bits over {count} rows need {size}"
        )
    return PdqLayout(count, hashes, records, index, chunks, bits)


class _JsonContext:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``: the
    settings of ``json.loads`` without arguments."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


def _make_scanner() -> Any:
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without the C accelerator
        return None
    ctx: Any = _JsonContext()  # (typeshed wants a JSONDecoder: the same fields)
    return make_scanner(ctx)


_SCAN = _make_scanner()
_JSON_SPACE = " \t\n\r"


def loads_json(text: str) -> Any:
    """``json.loads(text)``, without importing ``json`` (and ``re``, which
    it imports) when `text` is valid JSON.

    Every open reads JSON sections (the metadata, the label directory);
    importing json costs about 2 ms of a one-shot lookup's start-up, which
    the C scanner that ``json`` itself uses (``_json.make_scanner``, given
    the settings of ``json.loads``) saves: it parses the value after the
    leading whitespace, and only whitespace may follow.  Anything else
    (invalid JSON, a byte-order mark, no C scanner) goes to ``json.loads``,
    which then raises its own error or gives its own answer: the result
    and the errors are always json.loads's.
    """
    if _SCAN is not None:
        start = len(text) - len(text.lstrip(_JSON_SPACE))
        try:
            value, end = _SCAN(text, start)
        except Exception:  # json.loads says what is wrong, below
            pass
        else:
            if not text[end:].strip(_JSON_SPACE):
                return value
    import json

    return json.loads(text)


def read_json_section(buf: Any, s: Section, name: str, what: str) -> Any:
    """A JSON section's value, or IndexFormatError naming the file and the
    section (`what`) for text that is not UTF-8 or not JSON (nested too
    deeply included)."""
    raw = bytes(buf[s.offset : s.offset + s.length])
    try:
        return loads_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise IndexFormatError(
            f"{name}: {what} section is not valid JSON ({e})"
        ) from None


def read_metadata(buf: Any, header: Header, name: str) -> dict[str, Any]:
    """The JSON metadata section as a dict ({} if there is none)."""
    for s in header.sections:
        if s.kind == KIND_METADATA:
            if s.length > MAX_METADATA:
                raise IndexFormatError(
                    f"{name}: metadata section larger than {MAX_METADATA} bytes"
                )
            value = read_json_section(buf, s, name, "metadata")
            if not isinstance(value, dict):
                raise IndexFormatError(f"{name}: metadata section is not a JSON object")
            return value
    return {}
