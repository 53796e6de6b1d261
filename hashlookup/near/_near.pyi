from typing import final

from typing_extensions import Buffer

HASH_BYTES: int
HASH_BITS: int
MIN_CHUNKS: int
MAX_CHUNKS: int
MAX_BUCKET_BITS: int
DEFAULT_CHUNKS: int
MAX_ROWS: int
AUTO: int
MIH: int
LINEAR: int

def body_size(chunks: int, bucket_bits: int, n: int) -> int: ...
def bucket_bits_for(chunks: int, n: int) -> int: ...
def build(hashes: Buffer, chunks: int, bucket_bits: int) -> bytearray: ...
def distance(a: Buffer, b: Buffer) -> int: ...

@final
class NearTable:
    def _attach(
        self,
        buffer: Buffer,
        hashes_off: int,
        quality_off: int,
        n: int,
        chunks: int,
        bucket_bits: int,
        body_off: int,
        body_len: int,
    ) -> None: ...
    def _detach(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def uses_mih(self, max_distance: int) -> bool: ...
    def search(
        self,
        queries: Buffer,
        max_distance: int,
        min_quality: int = 0,
        strategy: int = 0,
        first_no: int = 0,
        release_gil: bool = True,
    ) -> tuple[bytes, bytes, bytes]: ...
    def check(self) -> None: ...
