"""Signing side of Ed25519 signatures: key generation and `sign_dataset`
(the checks made when a file is opened are in hashlookup.store.signature;
the format is specified in docs/SIGNING.md)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from hashlookup._atomic import atomic_output
from hashlookup.errors import SignatureError
from hashlookup.store import format as _format
from hashlookup.store.dataset import _State
from hashlookup.store.index import (
    HashIndex,
    check_unchanged,
    close_mapping,
    file_identity,
    map_file,
)
from hashlookup.store.signature import (
    SignatureFile,
    _crypto,
    _serialization,
    key_id,
    signature_path,
    signed_message,
)


@dataclass
class KeyPair:
    """What generate_signing_key wrote."""

    private_key: str   # path, mode 0600
    public_key: str    # path (private_key + ".pub")
    key_id: str


def generate_signing_key(path: str | os.PathLike[str]) -> KeyPair:
    """Write a new Ed25519 private key to `path` (PEM PKCS#8, mode 0600) and
    its public key to `path`.pub (PEM).  Existing files are never
    overwritten (FileExistsError)."""
    ed = _crypto()
    s = _serialization()
    path = os.fspath(path)
    pub_path = path + ".pub"
    if os.path.lexists(pub_path):
        raise FileExistsError(17, "refusing to overwrite an existing key", pub_path)
    key = ed.Ed25519PrivateKey.generate()
    private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,
                                s.NoEncryption())
    public = key.public_key().public_bytes(s.Encoding.PEM,
                                           s.PublicFormat.SubjectPublicKeyInfo)
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


def load_private_key(path: str | os.PathLike[str]) -> Any:
    ed = _crypto()
    s = _serialization()
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    try:
        key = s.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise SignatureError(f"{path}: not an unencrypted PEM private key "
                             f"({e})") from None
    if not isinstance(key, ed.Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    return key


@dataclass
class SignReport:
    path: str
    signature_path: str
    key_id: str
    file_size: int
    seconds: float


def sign_dataset(path: str | os.PathLike[str], key: str | os.PathLike[str],
                 output: str | os.PathLike[str] | None = None) -> SignReport:
    """Verify the file at `path` completely (checksums and structure), then
    write its signature with the private key file `key` to `output`
    (default: path + ".sig"), atomically."""
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
    sig = SignatureFile(signer, header.file_size,
                        header.created_ns, header.checksum, private.sign(message))
    out = os.fspath(output) if output is not None else signature_path(path)
    with atomic_output(out) as f:
        f.write(sig.encode())
    return SignReport(path, out, sig.key_id, header.file_size,
                      time.perf_counter() - t0)


def _verify_mapping(mm: Any, header: _format.Header, path: str) -> None:
    """Full verify() of an index or dataset over an existing mapping."""
    groups = _format.table_groups(header)
    if len(groups) == 1 and not _format.find_sections(header, _format.KIND_RECORDS):
        table = HashIndex._from_mapping(mm, header, path, groups[0])
        try:
            table.verify()
        finally:
            table.close()
        return
    state = _State.__new__(_State)
    state.mm = None  # not owned: the caller closes mm
    state.identity = None
    try:
        state._load(path, mm, header)
        tables = list(state.tables.values())
        for i, t in enumerate(tables):
            t.verify(checksums=i == 0)
    finally:
        state.close()
