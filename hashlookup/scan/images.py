"""PDQ hashes of the image files a scan reads (datasets with PDQ hashes).

A file is an image by its first bytes (JPEG, PNG, GIF, BMP, WebP, TIFF),
never by its name.  The scan's readers sniff each file they hashed
(:meth:`ImageReader.sniff`, in the worker thread, after hashing: the file
is in the page cache); an image is then read again and decoded on a pool
of its own (:meth:`ImageReader.read`), so that slow decoding never holds up
the hashing of the files behind it.  The near search itself runs in the
scan's calling thread (:func:`near_hits`): it takes about 0.1 ms.

A file that fails to decode (truncated, corrupt, not what its magic bytes
say) is a per-file error of the scan, never an exception out of it.
docs/SCAN.md ("Images") has the rules.
"""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Callable, Iterator

from hashlookup.scan import _pool
from hashlookup.scan._near_options import (  # noqa: F401 - their former home
    MISSING_EXTRA,
    Sniffed,
    check_options,
    decide,
    extra_available,
)
from hashlookup.scan.reader import ReadError, error_reason, opened_problem
from hashlookup.scan.report import ScanHit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from hashlookup._lazy import NamedTuple

#: Largest image decoded, in pixels (about 300 MB as RGB, twice that while
#: it is converted); larger ones are counted in ``images_too_large``.
MAX_PIXELS = 100_000_000
#: Largest image file read (it is read whole before decoding).
MAX_BYTES = 256 << 20
_HEAD = 32  # bytes read to tell an image (BMP: 18)


def image_kind(head: bytes) -> str | None:
    """The image format whose signature starts `head`, or None.

    Parameters
    ----------
    head : bytes
        The first bytes of a file (18 suffice).

    Returns
    -------
    str or None
        ``"jpeg"``, ``"png"``, ``"gif"``, ``"bmp"``, ``"webp"`` or
        ``"tiff"``; None for anything else.
    """
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    # "BM" alone starts many text files: the DIB header size (bytes 14..17)
    # must be one of the sizes BMP versions use.
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124):
            return "bmp"
    return None


class ImageHash(NamedTuple):
    """An image file's PDQ hash (32 bytes) and quality, 0..100; with
    `dihedral`, the eight hashes of it turned and mirrored (the first is
    `pdq`)."""

    pdq: bytes
    quality: int
    turned: tuple[bytes, ...] = ()


class NearOptions(NamedTuple):
    """A scan's image options: radius, quality floor, decoding threads, and
    whether the eight rotations and mirrorings of each image are searched."""

    max_distance: int
    min_quality: int
    jobs: int
    dihedral: bool = False


class TooLarge(NamedTuple):
    """An image of more than MAX_PIXELS pixels (or a file of more than
    MAX_BYTES: pixels unknown, 0): not decoded."""

    pixels: int


class ImageReader:
    """Sniffs and hashes image files for a scan (methods run in workers).

    Parameters
    ----------
    flags : int
        ``os.open`` flags of the scan's reader (``O_NOFOLLOW`` unless links
        are followed).
    nofollow : bool
        Whether links are not followed (for error reasons).
    max_pixels : int, optional
        Largest image decoded (default MAX_PIXELS).
    dihedral : bool
        Also hash the image turned by 90, 180, 270 degrees and mirrored.
    """

    def __init__(
        self,
        flags: int,
        nofollow: bool,
        max_pixels: int | None = None,
        dihedral: bool = False,
    ) -> None:
        self.flags = flags
        self.nofollow = nofollow
        self.dihedral = dihedral
        self.max_pixels = MAX_PIXELS if max_pixels is None else max_pixels

    def sniff(self, path: str) -> bool:
        """Whether the file starts like an image (False if it cannot be
        opened now: it was hashed, and the hash is what counts then)."""
        try:
            fd = os.open(path, self.flags)
        except OSError:
            return False
        try:
            return image_kind(os.read(fd, _HEAD)) is not None
        except OSError:
            return False
        finally:
            os.close(fd)

    def read(
        self, path: str, size: int, expect: os.stat_result | None
    ) -> ImageHash | TooLarge | ReadError:
        """Read the image file again (it must still be the file of `size`
        bytes that was hashed), decode it and compute its PDQ hash."""
        try:
            fd = os.open(path, self.flags)
        except OSError as e:
            return ReadError(error_reason(e, self.nofollow))
        try:
            before = os.fstat(fd)
            problem = opened_problem(before, expect)
            if problem is not None:
                return problem
            if before.st_size != size:
                return ReadError("file changed while read")
            if size > MAX_BYTES:
                return TooLarge(0)
            chunks = []
            left = size + 1  # one byte more: growth shows
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            after = os.fstat(fd)
            if len(data) != size or (after.st_size, after.st_mtime_ns) != (
                before.st_size,
                before.st_mtime_ns,
            ):
                return ReadError("file changed while read")
        except OSError as e:
            return ReadError(error_reason(e, self.nofollow))
        finally:
            os.close(fd)
        return self.decode(data)

    def decode(self, data: bytes) -> ImageHash | TooLarge | ReadError:
        """The PDQ hash of encoded image bytes; any failure of the decoder
        (it raises many kinds of exceptions on damaged files) is the file's
        error, named by the exception's type (its text may hold object
        addresses, never the file's content)."""
        from PIL import Image

        from hashlookup.near.image import pdq_hash

        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > self.max_pixels:
                return TooLarge(w * h)
            img.load()
            if self.dihedral:
                turned, quality = pdq_hash(img, dihedral=True)
                return ImageHash(turned[0], quality, tuple(turned))
            digest, quality = pdq_hash(img)
        except MemoryError:
            return ReadError("image could not be decoded (out of memory)")
        except Exception as e:
            what = type(e).__name__
            text = str(e)
            if text and "<" not in text:  # no object reprs (addresses)
                what += f": {text[:120]}"
            return ReadError(f"image could not be decoded ({what})")
        return ImageHash(digest, quality)


def near_hits(
    gen: Any,
    path: str,
    image: ImageHash,
    exact: set[int],
    near: NearOptions,
    labels: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
) -> list[ScanHit]:
    """The near hits of one image file: the records near its hash (the
    label filters applied), nearest first, except those its digests found
    and, for a record with several PDQ hashes, all but its nearest (one hit
    per file and record); none when the image's own quality is below the
    floor.

    Parameters
    ----------
    gen : Generation
        The scan's dataset generation.
    path : str
        The file, as reported.
    image : ImageHash
        Its hash and quality.
    exact : set of int
        Records found by its digests.
    near : NearOptions
        The scan's radius and quality floor.
    labels : tuple
        The scan's ``(only, exclude)`` label filters.
    """
    max_distance, min_quality = near.max_distance, near.min_quality
    if image.quality < min_quality:
        return []
    from hashlookup.near import query

    matches = []
    for h in image.turned or (image.pdq,):
        matches += query.near(gen, h, max_distance, min_quality, *labels)
    if image.turned:  # nearest first over the eight, then by record
        matches.sort(key=lambda m: (m.distance, m.record_id))
    digest = image.pdq.hex()
    seen = set(exact)  # a record with several PDQ hashes: its nearest only
    out = []
    for m in matches:
        if m.record_id not in seen:
            seen.add(m.record_id)
            out.append(
                ScanHit(
                    path,
                    "pdq",
                    digest,
                    m.record_id,
                    m.labels,
                    (),
                    m.distance,
                    image.quality,
                )
            )
    return out


class ImageStage:
    """The image side of a scan: sniffing after hashing (in the hashing
    workers) and decoding on a pool of its own, results in submission
    order.

    Parameters
    ----------
    hash_many : callable
        The scan's ``Hasher.many``.
    reader : ImageReader
        Sniffs and decodes.
    jobs : int
        Decoding threads; at most four times as many images wait decoded
        or decoding (then the scan waits for the oldest).
    """

    def __init__(
        self,
        hash_many: Callable[[list[tuple[str, Any, Any]]], list[Any]],
        reader: ImageReader,
        jobs: int,
    ) -> None:
        self.hash_many = hash_many
        self.reader = reader
        self.limit = jobs * 4
        self.pool = _pool.Pool(jobs)
        self.inflight: collections.deque[tuple[_pool.Task, Any]] = collections.deque()

    def many(self, files: list[tuple[str, Any, Any]]) -> list[Any]:
        """Hash a group of files (a worker's job), then mark the images."""
        out = self.hash_many(files)
        sniff = self.reader.sniff
        for i, ((path, st, _), res) in enumerate(zip(files, out, strict=True)):
            if res.__class__ is not ReadError and sniff(path):
                out[i] = Sniffed(res, st)
        return out

    def submit(
        self, path: str, size: int, st: os.stat_result | None, context: Any
    ) -> None:
        """Decode the image at `path` (hashed with `size` bytes)."""
        fut = self.pool.submit(self.reader.read, path, size, st)
        self.inflight.append((fut, context))

    def ready(self, block: bool) -> Iterator[tuple[Any, Any]]:
        """(result, context) of decoded images, oldest first: those done, the
        oldest waited for when too many wait or `block`."""
        while self.inflight and (
            block or len(self.inflight) > self.limit or self.inflight[0][0].done()
        ):
            fut, context = self.inflight.popleft()
            yield fut.result(), context
            block = False

    def close(self) -> None:
        """Drop what is not started; wait for the decodes running."""
        for fut, _ in self.inflight:
            fut.cancel()
        self.inflight.clear()
        self.pool.shutdown()
