"""Type aliases of the public API's parameters, for annotations only.

They exist for type checkers (``if TYPE_CHECKING``); modules name them in
annotations, which ``from __future__ import annotations`` never evaluates,
so importing this module costs nothing at run time and needs neither numpy
nor cryptography.

``Digest``
    One digest: hex ``str`` (any case) or raw bytes (``bytes``,
    ``bytearray``, ``memoryview``, any buffer) of an md5, sha1 or sha256.
``Labels``
    A label filter (``only=``, ``exclude=``): one label, several, or None.
``KeyBatch``
    Many keys of one width for the batch calls: a ``(n, width)`` uint8
    numpy array, a flat buffer of ``n * width`` bytes, or a sequence of hex
    str / raw bytes.
``DatasetInputs``
    The hash lists of a dataset build: a path, paths or ``(source name,
    path)`` pairs, or a ``{source name: path}`` mapping.
``BuildOptions``
    The keyword options of ``build_dataset`` that ``update_dataset`` takes.
``PublicKeySpec``
    A public key for ``require_signature=``: the path of ``NAME.pub``, its
    bytes (or its 32 raw bytes), or a ``cryptography`` Ed25519 public key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping, Sequence

    import numpy as np
    import numpy.typing as npt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from typing_extensions import Buffer

    Digest: TypeAlias = str | Buffer
    Labels: TypeAlias = str | Iterable[str] | None
    KeyBatch: TypeAlias = npt.NDArray[np.uint8] | Buffer | Sequence[str | Buffer]
    PublicKeySpec: TypeAlias = str | os.PathLike[str] | bytes | Ed25519PublicKey
    _Path: TypeAlias = str | os.PathLike[str]
    DatasetInputs: TypeAlias = (
        _Path | Iterable[_Path | tuple[str, _Path]] | Mapping[str, _Path]
    )

    class BuildOptions(TypedDict, total=False):
        """The options of build_dataset that update_dataset passes on."""

        input_format: str | None
        columns: dict[str, str] | None
        label_columns: dict[str, str] | None
        attributes: list[str] | None
        skip_invalid: bool
        bloom_bits_per_key: float
        bloom_hashes: int
        prefilter_bits_per_key: float | None
        metadata: dict[str, Any] | None
        memory: int
        tmp_dir: str | os.PathLike[str] | None
        progress: bool


__all__: list[str] = []
