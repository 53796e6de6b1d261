"""PDQ hashes of images, with Meta's reference implementation (the
``pdqhash`` package) and Pillow: the extra ``hashlookup[images]``.

The 256 bits pdqhash returns become 32 bytes most significant bit first,
so the hex form is the one ThreatExchange, HMA and NCMEC lists use.
"""

from __future__ import annotations

import io
import os
from typing import Any, Literal, overload

_MISSING = (
    "PDQ image hashing needs the pdqhash and Pillow packages: "
    "pip install 'hashlookup[images]'"
)


def _modules() -> tuple[Any, Any]:
    try:
        import pdqhash
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"{_MISSING} ({e})") from None
    return pdqhash, Image


@overload
def pdq_hash(image: Any, *, dihedral: Literal[False] = ...) -> tuple[bytes, int]: ...
@overload
def pdq_hash(image: Any, *, dihedral: Literal[True]) -> tuple[list[bytes], int]: ...


def pdq_hash(image: Any, *, dihedral: bool = False) -> Any:
    """The PDQ hash of an image and its quality.

    Parameters
    ----------
    image : str, os.PathLike, bytes-like, PIL.Image.Image or numpy.ndarray
        A path of an image file, the encoded bytes of one (JPEG, PNG, any
        format Pillow reads), a PIL image (any mode: converted to RGB), or
        an RGB ``(height, width, 3)`` uint8 array (a ``(height, width)``
        array is taken as grey).
    dihedral : bool, default False
        Also hash the image rotated and mirrored (PDQ is not invariant to
        either): the eight hashes of the original, rotated by 90, 180 and
        270 degrees, flipped vertically, flipped horizontally, and rotated
        by 90 degrees then flipped vertically or horizontally, computed in
        one pass.  Searching all eight (``Dataset.near_many``) finds a
        rotated or mirrored copy of a known image.

    Returns
    -------
    tuple of (bytes, int), or (list of bytes, int) with `dihedral`
        The 32-byte hash (``.hex()`` gives the usual 64-character form),
        or the eight hashes, and the quality, 0..100; hashes below 50 are
        not matched by default (``Dataset.near``'s `min_quality`).

    Raises
    ------
    ImportError
        The ``images`` extra (pdqhash, Pillow) is not installed.
    ValueError
        The bytes or file are not an image Pillow can read, or an array of
        another shape or type.
    TypeError
        `image` is none of the accepted kinds.
    OSError
        The file cannot be read, unchanged.

    Examples
    --------
    ::

        digest, quality = hashlookup.pdq_hash("photo.jpg")
        ds.near(digest)  # records within 31 bits
    """
    pdqhash, image_module = _modules()
    import numpy as np

    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            data = f.read()
        image = _decode(image_module, data, os.fspath(image))
    elif isinstance(image, (bytes, bytearray, memoryview)):
        image = _decode(image_module, bytes(image), "image bytes")
    if isinstance(image, image_module.Image):
        rgb = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        rgb = image
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB (height, width, 3) uint8 array, got shape "
                f"{rgb.shape} of {rgb.dtype}"
            )
    else:
        raise TypeError(
            "expected an image path, encoded bytes, a PIL image or an RGB "
            f"array, got {type(image).__name__}"
        )
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError("the image has no pixels")
    rgb = np.ascontiguousarray(rgb)
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(rgb)
        return [_pack(v) for v in vectors], int(quality)
    bits, quality = pdqhash.compute(rgb)
    return _pack(bits), int(quality)


def _pack(bits: Any) -> bytes:
    """256 bits (most significant first) as 32 bytes."""
    import numpy as np

    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _decode(image_module: Any, data: bytes, what: str) -> Any:
    try:
        img = image_module.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's "cannot identify"
        raise ValueError(f"{what}: not an image Pillow can read ({e})") from None
    return img
