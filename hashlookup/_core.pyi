# Stub for the private Cython extension hashlookup._core (see _core.pyx).
from collections.abc import Iterable
from typing import Any

from typing_extensions import Buffer

# C functions exported to other Cython modules (_core.pxd: _check,
# _load_key, ...), as capsules; not for Python callers.
__pyx_capi__: dict[str, object]

MAX_WIDTH: int
BLOOM_MAX_K: int
PREFILTER_MAX_K: int
BLOOM_BLOCK: int
OK: int
EHEX: int
ELENGTH: int
ENOSPACE: int
ETOOLONG: int

class KeyTable:
    @property
    def closed(self) -> bool: ...
    @property
    def width(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def find(self, key: Buffer | str) -> int: ...
    def _attach(
        self,
        buffer: Buffer,
        keys_off: int,
        n: int,
        width: int,
        loc_off: int,
        loc_bits: int,
        bloom_off: int,
        nblocks: int,
        bloom_k: int,
        bloom_seed: int,
        what: str,
    ) -> None: ...
    def _attach_prefilter(
        self, offset: int, nwords: int, k: int, seed: int
    ) -> None: ...
    def _check_prefilter(self) -> int | None: ...
    # the buffer given to _attach, whatever its type (a memoryview or a bytearray)
    def _detach(self) -> Any: ...
    def _contains_into(self, keys: Buffer, out: Buffer) -> None: ...
    def _find_into(self, keys: Buffer, out: Buffer) -> None: ...
    def match_lines(
        self,
        buf: Buffer,
        max_line: int,
        skip_invalid: bool,
        invert: bool,
        out: Buffer | None,
    ) -> tuple[int, int, int, int, int, int, int, int, int, int]: ...
    def _check_structure(self) -> tuple[str, int] | None: ...

def pack_keys(keys: Iterable[object], width: int, what: str) -> bytearray: ...
def pack_any_hex(
    items: list[object], kinds: Buffer, out16: Buffer, out20: Buffer, out32: Buffer
) -> tuple[int, int, int]: ...

KIND_NOT_STR: int
KIND_LENGTH: int
KIND_NOT_HEX: int

def parse_lines(
    buf: Buffer,
    width: int,
    max_line: int,
    out: Buffer,
    line_index: Buffer | None,
    line_offset: Buffer | None,
    skip_invalid: bool,
) -> tuple[int, int, int, int, int, int, int, int]: ...
def decode_hex(text: Buffer, out: Buffer) -> int: ...
def decode_hex_at(text: Buffer, starts: Buffer, width: int, out: Buffer) -> int: ...
def locator_bits_for(n: int, width: int) -> int: ...
def bloom_blocks_for(n: int, bits_per_key: float) -> int: ...
def build_locator(keys: Buffer, n: int, width: int, bits: int, out: Buffer) -> None: ...
def prefilter_words_for(n: int, bits_per_key: float) -> int: ...
def add_prefilter(keys: Buffer, width: int, k: int, seed: int, out: Buffer) -> None: ...
def build_bloom(
    keys: Buffer, n: int, width: int, nblocks: int, k: int, seed: int, out: Buffer
) -> None: ...
def sort_unique(keys: Buffer, width: int) -> int: ...
def narrow_rows(buf: Buffer, n: int, from_width: int, to_width: int) -> None: ...
def merge_rows(
    bufs: list[Any],
    counts: Buffer,
    pos: Buffer,
    more: Buffer,
    width: int,
    out: Buffer,
    unique: bool,
    last: Buffer,
    have_last: bool,
) -> tuple[int, bool]: ...
def kernel_name() -> str: ...
def filehash_available() -> bool: ...
def hash_files(
    paths: list[bytes],
    expects: list[tuple[int, int] | None],
    algorithms: int,
    open_flags: int,
    buf: Buffer,
    stop: Buffer | None = None,
    probe: tuple[KeyTable | None, KeyTable | None, KeyTable | None] | None = None,
    rest: int = 0,
) -> list[int | tuple[int, bytes | None, bytes | None, bytes | None, int]]: ...

class RecordTable:
    def __init__(
        self,
        buffer: Buffer,
        rec_off: int,
        count: int,
        keys: list[tuple[int, int, int] | None],
        rowmaps: list[int | None],
        what: str,
    ) -> None: ...
    def _detach(self) -> None: ...
    def hit(
        self, algorithm: int, row: int
    ) -> tuple[int, str | None, str | None, str | None, int | None]: ...
    def read(
        self, record_id: int
    ) -> tuple[str | None, str | None, str | None, int | None]: ...

HASHDEEP_END: int
HASHDEEP_FULL: int
HASHDEEP_IRREGULAR: int

def hashdeep_parse(
    data: Buffer,
    start: int,
    layout: tuple[int, int, int, int, int, int],
    max_line: int,
    md5: Buffer,
    sha1: Buffer,
    sha256: Buffer,
    has_md5: Buffer,
    has_sha1: Buffer,
    has_sha256: Buffer,
    size: Buffer,
) -> tuple[int, int, int, int]: ...
def pack_rows(dig: Buffer, has: Buffer, base: int, out: Buffer, at: int) -> int: ...
def rowmap_invert(ids: Buffer, row0: int, lo: int, hi: int, col: Buffer) -> None: ...
def split_merged(
    rows: Buffer,
    width: int,
    prev: Buffer | None,
    carry: int,
    ukeys: Buffer,
    uheads: Buffer,
    edge_row: Buffer,
    edge_head: Buffer,
) -> tuple[int, int, int]: ...
def sort_unique_with(keys: Buffer, width: int, scratch: Buffer) -> int: ...
