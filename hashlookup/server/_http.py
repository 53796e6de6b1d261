"""HTTP plumbing of the lookup service: responses, errors, headers,
credentials and query strings of ASGI scopes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

JSON = b"application/json"

Response = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]


class ClientGone(Exception):
    """The client disconnected while its body was being read."""


def error(status: int, message: str, **extra: Any) -> Response:
    return status, orjson.dumps({"message": message, **extra}), JSON, []


def header(scope: Any, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v
    return None


def api_token(scope: Any) -> str | None:
    """The API key of a request: ``Authorization: Bearer TOKEN``, or Basic
    credentials whose password is the token (for clients that only take a
    URL, e.g. ``http://key:TOKEN@host/``)."""
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, cred = value.partition(b" ")
    scheme = scheme.lower()
    try:
        if scheme == b"bearer":
            return cred.strip().decode("ascii")
        if scheme == b"basic":
            text = base64.b64decode(cred.strip(), validate=True).decode("ascii")
            return text.partition(":")[2]
    except (UnicodeDecodeError, binascii.Error):
        return None
    return None


def hashes_of(body: bytes, message: str) -> list[Any] | Response:
    """The 'hashes' array of a JSON body, or a 400 response (`message` when
    the JSON is well-formed but has no such array)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"malformed JSON: {exc}")
    hashes = doc.get("hashes") if isinstance(doc, dict) else None
    if not isinstance(hashes, list):
        return error(400, message)
    return hashes


def is_json(ctype: bytes) -> bool:
    """JSON, or the form type that `curl -d` sends (CIRCL's server reads any
    body as JSON; the documented curl examples rely on it)."""
    main = ctype.split(b";")[0].strip().lower()
    return main in (
        b"application/json",
        b"application/x-www-form-urlencoded",
    ) or main.endswith(b"+json")


def query_param(scope: Any, name: bytes) -> str | None:
    qs: bytes = scope.get("query_string", b"")
    for part in qs.split(b"&"):
        k, _, v = part.partition(b"=")
        if k == name:
            return v.decode("latin-1")
    return None


def raw_hex(body: bytes, i: int, width: int) -> str:
    """Hex of the i-th raw digest of `width` bytes in body."""
    w = width
    return body[i * w : (i + 1) * w].hex()
