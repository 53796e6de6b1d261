# Stub for the lookup service's Cython extension hashlookup.server._render
# (see _render.pyx).
from collections.abc import Callable

from pyroaring import FrozenBitMap
from typing_extensions import Buffer

from hashlookup._core import KeyTable, RecordTable

ANSWER_MISS: int
ANSWER_INVALID: int
ANSWER_UNKNOWN: int

class HitRenderer:
    def __init__(
        self,
        reader: RecordTable,
        tables: tuple[KeyTable | None, KeyTable | None, KeyTable | None],
        labels: tuple[tuple[str, FrozenBitMap], ...],
        drop: int,
        label_json: Callable[[tuple[str, ...]], bytes],
        tail: bytes,
        audit_middle: bytes,
        masks: Buffer | None = None,
    ) -> None: ...
    def answer(
        self,
        algorithm: str,
        digest: str,
        audit: bytearray | None = None,
        who: bytes | None = None,
    ) -> bytes | int: ...

def append_audit_line(
    buf: bytearray, who: bytes, digest: str, middle: bytes, record: bytes
) -> None: ...
