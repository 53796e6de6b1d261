"""Ed25519 signatures of dataset and index files (specified in docs/SIGNING.md).

A signature is a small text file beside the data file (``DATASET.sig``).  It
signs the file's header (which holds every section's xxh3 checksum) and a
SHA-256 of every byte of the file, taken in fixed 4 MiB chunks so that the
chunks hash in parallel.  SHA-256 and not the xxh3 section checksums alone:
xxh3-64 is not collision resistant, so a forger could change a section and
then fix up its xxh3 checksum.

Opening with ``require_signature=`` checks, before anything is looked up:
the signature file's syntax, that it names the mapped file version (size,
creation time, header checksum), and the Ed25519 signature over the bytes
actually mapped.  Every failure raises SignatureError naming the file.

The ``cryptography`` package is needed (``pip install hashlookup[signing]``).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

from hashlookup._threads import thread_pool
from hashlookup.errors import HashLookupError, SignatureError
from hashlookup.store import format as _format

SIG_SUFFIX = ".sig"
CHUNK = 4 << 20
DOMAIN = b"hashlookup-signature-v1\0"
_FIRST_LINE = "hashlookup-signature 1"
_MAX_SIG_FILE = 4096
# (field, pattern of its value); the file holds exactly these lines, in order.
_FIELDS = (
    ("key-id", r"[0-9a-f]{16}"),
    ("file-size", r"[1-9][0-9]{0,19}"),
    ("created-ns", r"0|[1-9][0-9]{0,19}"),
    ("header-xxh3", r"[0-9a-f]{16}"),
    ("signature", r"[0-9a-f]{128}"),
)

# A public key as accepted by require_signature= / --verify-key.
PublicKeySpec = Any  # str | os.PathLike | bytes | Ed25519PublicKey


def ed25519_module() -> Any:
    """The ``cryptography`` package's Ed25519 module (imported on first use).

    Raises
    ------
    HashLookupError
        ``cryptography`` is not installed (the ``signing`` extra).
    """
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise HashLookupError(
            "signed datasets need the 'cryptography' package: "
            "pip install 'hashlookup[signing]'"
        ) from e
    return ed25519


def serialization_module() -> Any:
    """The ``cryptography`` package's key serialization module (raises as
    ed25519_module when it is not installed)."""
    ed25519_module()
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_key: Any) -> str:
    """Short fingerprint of a public key: first 8 bytes of the SHA-256 of
    its 32 raw bytes, in hex."""
    s = serialization_module()
    raw = public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + SIG_SUFFIX


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def public_key_bytes(spec: PublicKeySpec) -> bytes:
    """The 32 raw bytes of a public key given as load_public_key takes it:
    a form that pickles, for processes that check signatures themselves
    (Dask workers)."""
    s = serialization_module()
    return bytes(load_public_key(spec).public_bytes(s.Encoding.Raw, s.PublicFormat.Raw))


def load_public_key(spec: PublicKeySpec) -> Any:
    """An Ed25519 public key from a path (PEM or OpenSSH ``ssh-ed25519``
    line), from the bytes of such a file, from its 32 raw bytes, or an
    Ed25519PublicKey object."""
    ed = ed25519_module()
    s = serialization_module()
    if isinstance(spec, ed.Ed25519PublicKey):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        name = os.fspath(spec)
        with open(name, "rb") as f:
            data = f.read(1 << 16)
    elif isinstance(spec, (bytes, bytearray, memoryview)):
        name, data = "public key", bytes(spec)
        if len(data) == 32:
            return ed.Ed25519PublicKey.from_public_bytes(data)
    else:
        raise TypeError(
            "require_signature: expected a public key file path, its "
            f"bytes, or an Ed25519PublicKey, got {type(spec).__name__}"
        )
    if b"PRIVATE KEY" in data:
        raise SignatureError(
            f"{name}: a private key; verify with the public key (the .pub file)"
        )
    try:
        if data.lstrip().startswith(b"ssh-ed25519 "):
            key = s.load_ssh_public_key(data.strip())
        else:
            key = s.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise SignatureError(f"{name}: not a PEM or OpenSSH public key ({e})") from None
    if not isinstance(key, ed.Ed25519PublicKey):
        raise SignatureError(f"{name}: not an Ed25519 public key")
    return key


# --------------------------------------------------------------------------
# What is signed
# --------------------------------------------------------------------------


def _chunk_digests(buf: Any, size: int) -> bytes:
    """SHA-256 of every CHUNK of buf[:size], concatenated (hashed in
    parallel: hashlib releases the GIL on large buffers)."""
    with memoryview(buf) as view:
        spans = [(a, min(a + CHUNK, size)) for a in range(0, size, CHUNK)]

        def one(span: tuple[int, int]) -> bytes:
            return hashlib.sha256(view[span[0] : span[1]]).digest()

        if len(spans) < 4:
            digests = [one(s) for s in spans]
        else:
            digests = list(thread_pool().map(one, spans))
    return b"".join(digests)


def signed_message(buf: Any, header: _format.Header, signer: str) -> bytes:
    """The bytes the Ed25519 signature covers (docs/SIGNING.md); `signer` is
    the key id written in the signature file, signed too so that no byte of
    that file can change unnoticed."""
    return (
        DOMAIN
        + bytes.fromhex(signer)
        + struct.pack("<QQ", header.file_size, CHUNK)
        + bytes(buf[: header.header_size])
        + _chunk_digests(buf, header.file_size)
    )


# --------------------------------------------------------------------------
# The signature file
# --------------------------------------------------------------------------


@dataclass
class SignatureFile:
    """The contents of a detached signature file."""

    key_id: str
    file_size: int
    created_ns: int
    header_xxh3: int
    signature: bytes

    def encode(self) -> bytes:
        values = (
            self.key_id,
            str(self.file_size),
            str(self.created_ns),
            f"{self.header_xxh3:016x}",
            self.signature.hex(),
        )
        lines = [_FIRST_LINE] + [
            f"{k} {v}" for (k, _), v in zip(_FIELDS, values, strict=True)
        ]
        return ("\n".join(lines) + "\n").encode("ascii")


def parse_signature_file(data: bytes, name: str) -> SignatureFile:
    """Strict: the file must be exactly what `sign` writes, byte for byte."""

    def fail(msg: str) -> SignatureError:
        return SignatureError(f"{name}: {msg}")

    if len(data) > _MAX_SIG_FILE:
        raise fail("too large for a signature file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise fail("not a hashlookup signature file (non-ASCII bytes)") from None
    lines = text.split("\n")
    if lines[0] != _FIRST_LINE:
        raise fail(
            f"line 1: expected {_FIRST_LINE!r} (not a hashlookup signature "
            "file, or a newer version)"
        )
    values = []
    for i, (key, pattern) in enumerate(_FIELDS, 2):
        line = lines[i - 1] if i - 1 < len(lines) else ""
        m = re.fullmatch(re.escape(key) + " (" + pattern + ")", line)
        if m is None:
            raise fail(f"line {i}: expected '{key} <value>', got {line[:80]!r}")
        values.append(m.group(1))
    sig = SignatureFile(
        values[0],
        int(values[1]),
        int(values[2]),
        int(values[3], 16),
        bytes.fromhex(values[4]),
    )
    if sig.encode() != data:
        raise fail("unexpected bytes after the signature (or missing final newline)")
    return sig


# --------------------------------------------------------------------------
# Signing and checking
# --------------------------------------------------------------------------


def check_signature(
    buf: Any, header: _format.Header, path: str, public_key: Any
) -> None:
    """Raise SignatureError unless path's signature file signs exactly the
    mapped bytes `buf` with `public_key` (from load_public_key)."""
    sig_path = signature_path(path)
    try:
        with open(sig_path, "rb") as f:
            data = f.read(_MAX_SIG_FILE + 1)
    except FileNotFoundError:
        raise SignatureError(
            f"{path}: not signed: no signature file {sig_path} "
            "(sign it with `hashlookup sign`)"
        ) from None
    except OSError as e:
        raise SignatureError(
            f"{sig_path}: cannot read the signature file ({e.strerror})"
        ) from None
    sig = parse_signature_file(data, sig_path)
    want = key_id(public_key)
    if (sig.file_size, sig.created_ns, sig.header_xxh3) != (
        header.file_size,
        header.created_ns,
        header.checksum,
    ):
        raise SignatureError(
            f"{path}: the signature in {sig_path} is for another version of the "
            f"file (signed: {sig.file_size} bytes, header {sig.header_xxh3:016x}; "
            f"file: {header.file_size} bytes, header {header.checksum:016x}): the "
            "file was changed or replaced after signing; sign the new version"
        )
    message = signed_message(buf, header, sig.key_id)
    try:
        public_key.verify(sig.signature, message)
    except Exception as e:  # cryptography's InvalidSignature
        if type(e).__name__ != "InvalidSignature":
            raise
        if sig.key_id != want:
            raise SignatureError(
                f"{path}: signed by key {sig.key_id}, not by the required key {want}"
            ) from None
        raise SignatureError(
            f"{path}: signature check failed for key {want}: "
            f"{_what_changed(buf, header)}"
        ) from None


def _what_changed(buf: Any, header: _format.Header) -> str:
    """Best explanation of a failed signature (failure path only)."""
    with memoryview(buf) as view:
        for i, s in enumerate(header.sections):
            got = _format.section_checksum(view[s.offset : s.offset + s.length])
            if got != s.checksum:
                return (
                    f"section {i} ({s.name}) was modified (its checksum no "
                    "longer matches)"
                )
    return (
        "the file's bytes are not those that were signed (modified, with "
        "checksums fixed up), or the signature file was altered"
    )
