"""Signing side of Ed25519 signatures: key generation and `sign_dataset`
(the checks made when a file is opened are in hashlookup.store.signature;
the format is specified in docs/SIGNING.md)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hashlookup._atomic import atomic_output
from hashlookup.errors import SignatureError
from hashlookup.store import format as _format
from hashlookup.store.generation import Generation
from hashlookup.store.index import (
    HashIndex,
    check_unchanged,
    close_mapping,
    file_identity,
    map_file,
)
from hashlookup.store.signature import (
    SignatureFile,
    ed25519_module,
    key_id,
    serialization_module,
    signature_path,
    signed_message,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass
class KeyPair:
    """What generate_signing_key wrote.

    Attributes
    ----------
    private_key : str
        Path of the private key (PEM PKCS#8, unencrypted, mode 0600).
    public_key : str
        Path of the public key (PEM): ``private_key + ".pub"``.
    key_id : str
        The key's fingerprint, as signature files name it: 16 hex
        characters (the first 8 bytes of the SHA-256 of the raw public
        key).
    """

    private_key: str
    public_key: str
    key_id: str


def generate_signing_key(path: str | os.PathLike[str]) -> KeyPair:
    """Make a new Ed25519 key pair and write it to two files.

    The private key goes to `path` (PEM PKCS#8, unencrypted, created with
    mode 0600), the public key to ``path + ".pub"`` (PEM).  Existing files
    are never overwritten.

    Parameters
    ----------
    path : str or os.PathLike
        The private key file to create.

    Returns
    -------
    KeyPair
        The two paths and the key id.

    Raises
    ------
    FileExistsError
        `path` or ``path + ".pub"`` exists.
    HashLookupError
        The ``cryptography`` package is not installed.
    OSError
        A key file cannot be written (a private key file that could not be
        written whole is removed).

    Examples
    --------
    ::

        pair = hashlookup.generate_signing_key("hotline")
        pair.public_key   # "hotline.pub": give it to the readers
    """
    ed = ed25519_module()
    s = serialization_module()
    path = os.fspath(path)
    pub_path = path + ".pub"
    if os.path.lexists(pub_path):
        raise FileExistsError(17, "refusing to overwrite an existing key", pub_path)
    key = ed.Ed25519PrivateKey.generate()
    private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    public = key.public_key().public_bytes(
        s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo
    )
    # O_EXCL with mode 0600 from the start: the key is never readable by
    # others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(private)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(path)
        raise
    with atomic_output(pub_path) as f:
        f.write(public)
    return KeyPair(path, pub_path, key_id(key.public_key()))


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a file.

    Parameters
    ----------
    path : str or os.PathLike
        An unencrypted PEM private key (as written by
        :func:`generate_signing_key`); only its first 64 KiB are read.

    Returns
    -------
    cryptography.hazmat.primitives.asymmetric.ed25519.Ed25519PrivateKey

    Raises
    ------
    SignatureError
        Not an unencrypted PEM private key, or not an Ed25519 one.
    HashLookupError
        The ``cryptography`` package is not installed.
    OSError
        The file cannot be read.
    """
    ed = ed25519_module()
    s = serialization_module()
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    try:
        key = s.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise SignatureError(
            f"{path}: not an unencrypted PEM private key ({e})"
        ) from None
    if not isinstance(key, ed.Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    private: Ed25519PrivateKey = key
    return private


@dataclass
class SignReport:
    """What sign_dataset wrote.

    Attributes
    ----------
    path : str
        The signed file.
    signature_path : str
        The signature file written.
    key_id : str
        Id of the signing key (see :class:`KeyPair`).
    file_size : int
        Size of the signed file in bytes.
    seconds : float
        Wall-clock time of the verification and signing.
    """

    path: str
    signature_path: str
    key_id: str
    file_size: int
    seconds: float


def sign_dataset(
    path: str | os.PathLike[str],
    key: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
) -> SignReport:
    """Verify a dataset or index file completely, then sign it.

    The file at `path` is mapped once: its checksums and the structure of
    every key table are checked, then its signature by the private key
    `key` is written to `output` atomically.  The file itself is not
    modified.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset or index file to sign.
    key : str or os.PathLike
        The private key file (unencrypted PEM Ed25519, as written by
        :func:`generate_signing_key`).
    output : str or os.PathLike, optional
        The signature file (default: ``path + ".sig"``, where
        ``require_signature`` looks for it).

    Returns
    -------
    SignReport
        The signature file written and the signing key's id.

    Raises
    ------
    SignatureError
        `key` is not an unencrypted PEM Ed25519 private key.
    IndexFormatError
        The file fails verification, or was modified in place while it was
        being signed.
    HashLookupError
        The ``cryptography`` package is not installed.
    OSError
        The file or the key cannot be read, or the signature cannot be
        written (``FileNotFoundError``...).

    Examples
    --------
    ::

        hashlookup.sign_dataset("known.hlds", "hotline")   # known.hlds.sig
        hashlookup.open_dataset("known.hlds", require_signature="hotline.pub")
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    private = load_private_key(key)
    mm, header, st = map_file(path)
    try:
        _verify_mapping(mm, header, path)
        signer = key_id(private.public_key())
        message = signed_message(mm, header, signer)
        # The bytes hashed are those verified; make sure nobody changed them.
        check_unchanged(path, file_identity(st))
    finally:
        close_mapping(mm)
    sig = SignatureFile(
        signer,
        header.file_size,
        header.created_ns,
        header.checksum,
        private.sign(message),
    )
    out = os.fspath(output) if output is not None else signature_path(path)
    with atomic_output(out) as f:
        f.write(sig.encode())
    return SignReport(path, out, sig.key_id, header.file_size, time.perf_counter() - t0)


def _verify_mapping(mm: Any, header: _format.Header, path: str) -> None:
    """Full verify() of an index or dataset over an existing mapping."""
    groups = _format.table_groups(header)
    if len(groups) == 1 and not _format.find_sections(header, _format.KIND_RECORDS):
        table = HashIndex.over_mapping(mm, header, path, groups[0])
        try:
            table.verify()
        finally:
            table.close()
        return
    generation = Generation.over_mapping(path, mm, header)
    try:
        for i, t in enumerate(generation.tables.values()):
            t.verify(checksums=i == 0)
    finally:
        generation.close()
