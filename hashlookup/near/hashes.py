"""PDQ hashes as queries: one hash (64 hex characters or 32 raw bytes) or
many (a ``(n, 32)`` uint8 array or a sequence of either form) -> packed
32-byte rows.

Error messages name the position of a bad item and never echo a queried
hash (docs/NEAR.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np

HASH_BYTES = 32
HEX_LENGTH = 64
_HEX = frozenset("0123456789abcdefABCDEF")


def _where(item: int | None) -> str:
    return "" if item is None else f" (item {item})"


def pdq_bytes(value: Any, item: int | None = None) -> bytes:
    """The 32 raw bytes of one PDQ hash.

    Parameters
    ----------
    value : str or bytes-like
        64 hex characters (any case) or 32 raw bytes.
    item : int, optional
        Position of `value` in a batch, for error messages.

    Returns
    -------
    bytes
        The hash.

    Raises
    ------
    TypeError
        `value` is neither a str nor bytes-like.
    ValueError
        Wrong length, or a non-hex character.
    """
    if isinstance(value, str):
        if len(value) != HEX_LENGTH:
            raise ValueError(
                f"expected a PDQ hash: {HEX_LENGTH} hex characters or "
                f"{HASH_BYTES} raw bytes, got a str of length {len(value)}"
                f"{_where(item)}"
            )
        if not _HEX.issuperset(value):
            bad = next(i for i, c in enumerate(value) if c not in _HEX)
            raise ValueError(
                f"expected a PDQ hash in hex, got a non-hex character at "
                f"position {bad}{_where(item)}"
            )
        return bytes.fromhex(value)
    if isinstance(value, (bytes, bytearray, memoryview)) or hasattr(
        value, "__buffer__"
    ):
        raw = memoryview(value).tobytes()
        if len(raw) != HASH_BYTES:
            raise ValueError(
                f"expected a PDQ hash: {HASH_BYTES} raw bytes or {HEX_LENGTH} hex "
                f"characters, got {len(raw)} bytes{_where(item)}"
            )
        return raw
    if isinstance(value, np.ndarray):
        return pdq_bytes(np.ascontiguousarray(value, dtype=np.uint8).tobytes(), item)
    raise TypeError(
        f"expected a PDQ hash as hex str or raw bytes, got "
        f"{type(value).__name__}{_where(item)}"
    )


def pdq_rows(queries: Any) -> np.ndarray:
    """Many PDQ hashes as a C-contiguous ``(n, 32)`` uint8 array.

    Parameters
    ----------
    queries : numpy.ndarray or iterable
        A ``(n, 32)`` uint8 array (used as is when C-contiguous), a single
        hash (str or bytes: one row), or an iterable of hex str / raw bytes.

    Returns
    -------
    numpy.ndarray
        ``(n, 32)`` uint8, C-contiguous.

    Raises
    ------
    TypeError
        An array that is not uint8, or an item that is not a hash's type.
    ValueError
        An array not of shape ``(n, 32)``, or an item of the wrong length
        or with a non-hex character (naming its position).
    """
    if isinstance(queries, np.ndarray):
        if queries.dtype != np.uint8:
            raise TypeError(
                f"expected a (n, 32) uint8 array, got dtype {queries.dtype}"
            )
        if queries.ndim == 1 and queries.shape[0] == HASH_BYTES:
            queries = queries.reshape(1, HASH_BYTES)
        if queries.ndim != 2 or queries.shape[1] != HASH_BYTES:
            raise ValueError(
                f"expected a (n, 32) uint8 array, got shape {queries.shape}"
            )
        return np.ascontiguousarray(queries)
    if isinstance(queries, (str, bytes, bytearray, memoryview)):
        return np.frombuffer(pdq_bytes(queries), np.uint8).reshape(1, HASH_BYTES)
    if not isinstance(queries, Iterable):
        raise TypeError(
            f"expected PDQ hashes as a (n, 32) uint8 array or an iterable, got "
            f"{type(queries).__name__}"
        )
    packed = b"".join(pdq_bytes(q, i) for i, q in enumerate(queries))
    return np.frombuffer(packed, np.uint8).reshape(-1, HASH_BYTES)


def pdq_hex(raw: Any) -> str:
    """Lowercase hex of a 32-byte hash (bytes or a uint8 row)."""
    return bytes(raw).hex()
