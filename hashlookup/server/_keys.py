"""API keys of the lookup service: the keys file, tokens and their checks.

A token is ``hlk_<id>_<secret>``: ``id`` is 12 random hex characters that
name the key (in the keys file, the audit log and the metrics), ``secret``
is 32 random bytes in URL-safe base64 (256 bits).  The keys file stores,
per key, its id, name, a random 16-byte salt and SHA-256(salt + secret),
never the secret itself.

Why a fast salted hash and not scrypt/argon2: those slow hashes protect
low-entropy passwords against guessing.  A 256-bit random secret cannot be
guessed whatever the hash costs, so a slow hash would only add milliseconds
to every request.  The salt keeps equal secrets (there are none) from giving
equal hashes and rules out precomputed tables; comparing with
hmac.compare_digest keeps the check constant-time.

The file is JSON ``{"version": 1, "keys": [...]}``, written atomically
(hashlookup._atomic) with mode 0600; concurrent ``apikey`` commands are
serialised with an flock on ``FILE.lock``.  Revoked keys stay in the file
(with their revocation time) so that the server can answer 403 instead of
401 for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from hashlookup._atomic import atomic_output
from hashlookup.errors import HashLookupError

KEYS_VERSION = 1
TOKEN_PREFIX = "hlk"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_TOKEN_RE = re.compile(r"^hlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class KeysFileError(HashLookupError, ValueError):
    """The keys file is malformed; the message names the file and entry."""


@dataclass(eq=False)
class ApiKey:
    """One entry of the keys file.  (Compared and hashed by identity: the
    audit log caches its line part per key object.)"""

    id: str
    name: str
    salt: str  # hex
    hash: str  # hex SHA-256(salt + secret)
    created: str  # ISO 8601 UTC
    revoked: str | None = None  # ISO 8601 UTC, None while active
    rate: float | None = None  # requests/s, None: the server's default
    burst: float | None = None  # bucket size, None: the server's default

    @property
    def active(self) -> bool:
        return self.revoked is None


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"invalid key name {name!r}: 1 to 64 characters, letters, "
            "digits and . _ @ + - (not first)"
        )
    return name


def _secret_hash(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


def _parse_entry(path: str, i: int, e: Any) -> ApiKey:
    where = f"{path}: key {i + 1}"
    if not isinstance(e, dict):
        raise KeysFileError(f"{where}: expected an object")
    try:
        key = ApiKey(
            **{f: e[f] for f in ("id", "name", "salt", "hash", "created")},
            revoked=e.get("revoked"),
            rate=e.get("rate"),
            burst=e.get("burst"),
        )
    except KeyError as missing:
        raise KeysFileError(f"{where}: missing field {missing}") from None
    if not isinstance(key.id, str) or not _ID_RE.match(key.id):
        raise KeysFileError(f"{where}: id must be 12 lowercase hex characters")
    try:
        check_name(key.name)
        bytes.fromhex(key.salt)
        if len(bytes.fromhex(key.hash)) != 32:
            raise ValueError("hash must be 64 hex characters")
    except (TypeError, ValueError) as exc:
        raise KeysFileError(f"{where} ({key.id}): {exc}") from None
    for f in ("rate", "burst"):
        v = getattr(key, f)
        if v is not None and (not isinstance(v, (int, float)) or v <= 0):
            raise KeysFileError(f"{where} ({key.id}): {f} must be a number > 0")
    if key.revoked is not None and not isinstance(key.revoked, str):
        raise KeysFileError(f"{where} ({key.id}): revoked must be a time or null")
    return key


def read_keys(path: str | os.PathLike[str]) -> list[ApiKey]:
    """The entries of a keys file, revoked ones included.

    Parameters
    ----------
    path : str or os.PathLike
        The keys file.

    Returns
    -------
    list of ApiKey
        Its entries in file order; an empty list if the file does not exist.

    Raises
    ------
    KeysFileError
        The file is not a keys file of this version, or an entry is
        malformed (the message names the file and the entry).
    OSError
        The file exists but cannot be read.

    Examples
    --------
    >>> from hashlookup.server import read_keys
    >>> [k.name for k in read_keys("keys.json") if k.active]  # doctest: +SKIP
    ['alice']
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeysFileError(f"{name}: not a keys file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeysFileError(
            f'{name}: not a keys file (expected {{"version": 1, "keys": [...]}}}})'
        )
    if doc.get("version") != KEYS_VERSION:
        raise KeysFileError(
            f"{name}: keys file version {doc.get('version')!r}, "
            f"this server reads version {KEYS_VERSION}"
        )
    keys = [_parse_entry(name, i, e) for i, e in enumerate(doc["keys"])]
    seen: set[str] = set()
    for k in keys:
        if k.id in seen:
            raise KeysFileError(f"{name}: key id {k.id} appears twice")
        seen.add(k.id)
    return keys


def _write_keys(path: str, keys: list[ApiKey]) -> None:
    doc = {"version": KEYS_VERSION, "keys": [asdict(k) for k in keys]}
    with atomic_output(path, mode=0o600) as f:
        f.write(json.dumps(doc, indent=1).encode() + b"\n")


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Serialise read-modify-write cycles of `apikey` commands."""
    fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_key(
    path: str | os.PathLike[str],
    name: str,
    *,
    rate: float | None = None,
    burst: float | None = None,
) -> tuple[str, ApiKey]:
    """Create an API key and add it to a keys file.

    The file is created if missing and rewritten atomically (mode 0600)
    under a lock, so concurrent calls do not lose keys.  Only a salted hash
    of the token's secret is stored.

    Parameters
    ----------
    path : str or os.PathLike
        The keys file.
    name : str
        Who the key is for: 1 to 64 letters, digits and ``. _ @ + -`` (not
        first).  Several keys may share a name.
    rate : float, optional
        Requests per second for this key (> 0); by default the server's.
    burst : float, optional
        Bucket size for this key (> 0); by default the server's.

    Returns
    -------
    token : str
        ``hlk_<id>_<secret>``, the bearer token to hand out; it cannot be
        recovered from the file.
    entry : ApiKey
        The new entry.

    Raises
    ------
    ValueError
        An invalid name, or a rate or burst that is not > 0.
    KeysFileError
        The existing file is not a valid keys file.
    OSError
        The file cannot be read or written.

    Examples
    --------
    >>> from hashlookup.server import add_key
    >>> token, entry = add_key("keys.json", "alice", rate=10)  # doctest: +SKIP
    >>> token.startswith("hlk_" + entry.id)  # doctest: +SKIP
    True
    """
    check_name(name)
    for what, v in (("rate", rate), ("burst", burst)):
        if v is not None and not v > 0:
            raise ValueError(f"{what} must be > 0, got {v}")
    p = os.fspath(path)
    with _locked(p):
        keys = read_keys(p)
        ids = {k.id for k in keys}
        key_id = secrets.token_hex(6)
        while key_id in ids:  # 48 random bits: a clash is all but impossible
            key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        entry = ApiKey(
            id=key_id,
            name=name,
            salt=salt.hex(),
            hash=_secret_hash(salt, secret),
            created=_now(),
            rate=rate,
            burst=burst,
        )
        keys.append(entry)
        _write_keys(p, keys)
    return f"{TOKEN_PREFIX}_{key_id}_{secret}", entry


def revoke_key(path: str | os.PathLike[str], name_or_id: str) -> list[ApiKey]:
    """Revoke every active key with this name, or the key with this id.

    Revoked keys stay in the file with their revocation time, so a server
    answers 403 (not 401) to their tokens; a running server sees the change
    at its next reload of the file.

    Parameters
    ----------
    path : str or os.PathLike
        The keys file.
    name_or_id : str
        A key name (every active key of that name) or a key id.

    Returns
    -------
    list of ApiKey
        The keys revoked.

    Raises
    ------
    KeyError
        No active key has this name or id.
    KeysFileError
        The file is not a valid keys file.
    OSError
        The file cannot be read or written.

    Examples
    --------
    >>> from hashlookup.server import revoke_key
    >>> [k.id for k in revoke_key("keys.json", "alice")]  # doctest: +SKIP
    ['3f2a9c0b1d4e']
    """
    p = os.fspath(path)
    with _locked(p):
        keys = read_keys(p)
        hit = [k for k in keys if k.active and name_or_id in (k.name, k.id)]
        if not hit:
            raise KeyError(f"{p}: no active key named {name_or_id!r}")
        when = _now()
        for k in hit:
            k.revoked = when
        _write_keys(p, keys)
    return hit


class KeyStore:
    """The keys of one keys file, for checking tokens (read side).

    An unknown key id costs what a known id with a wrong secret costs: both
    hash the secret with a salt and compare the result in constant time (the
    unknown id against a random entry that no secret matches), so the time
    of a 401 does not tell whether a key id exists."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_id: dict[str, tuple[ApiKey | None, bytes, bytes]] = {
            k.id: (k, bytes.fromhex(k.salt), bytes.fromhex(k.hash)) for k in keys
        }
        # the stand-in entry of unknown ids: same salt and hash sizes
        self._nobody: tuple[ApiKey | None, bytes, bytes] = (
            None,
            secrets.token_bytes(16),
            secrets.token_bytes(32),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyStore:
        return cls(read_keys(path))

    def __len__(self) -> int:
        return len(self._by_id)

    def check(self, token: str) -> tuple[str, ApiKey | None]:
        """("ok", key), ("revoked", key) or ("unknown", None)."""
        m = _TOKEN_RE.match(token)
        if m is None:  # not a token: its format is public, nothing to learn
            return "unknown", None
        key, salt, digest = self._by_id.get(m.group(1), self._nobody)
        got = hashlib.sha256(salt + m.group(2).encode("ascii")).digest()
        if not hmac.compare_digest(got, digest) or key is None:
            return "unknown", None
        return ("ok" if key.active else "revoked"), key
