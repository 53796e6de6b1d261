"""HTTP plumbing of the lookup service: responses, errors, headers,
credentials and query strings of ASGI scopes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
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


class UploadBudget:
    """Bytes of request bodies one worker holds while they arrive: at most
    `total`, and at most `per_client` for one client address.  An upload
    that would go over is refused (take() says which cap) instead of waiting,
    so stalled uploads cannot pile up memory until their deadline."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.used = 0
        self.by_client: dict[str, int] = {}

    def take(self, client: str, n: int) -> str | None:
        """Reserve `n` bytes for `client`: None, or "client" / "worker" when
        that cap would be passed (nothing reserved then)."""
        held = self.by_client.get(client, 0)
        if held + n > self.per_client:
            return "client"
        if self.used + n > self.total:
            return "worker"
        self.used += n
        self.by_client[client] = held + n
        return None

    def give(self, client: str, n: int) -> None:
        """Release `n` bytes reserved by take()."""
        if n <= 0:
            return
        self.used -= n
        left = self.by_client.get(client, 0) - n
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)


class ItemBound:
    """An upper bound on the items of a batch body, counted chunk by chunk as
    the body arrives, so that a body of millions of tiny items is refused
    after reading a fraction of it, before parsing (which would cost a
    Python object per item).

    - JSON: commas.  Each item but the last of an array follows a comma, so
      a batch of n items has n - 1 of them, plus those of other keys and
      inside strings; a JSON value count is at most about twice the commas
      (plus the nesting depth), so parsing a body that passes costs O(n).
    - text: runs of ASCII non-blank bytes, plus one per byte >= 0x80 (a
      non-ASCII character may be a blank or a token of its own): at least
      the tokens str.split() would make, which are at least the non-blank
      lines that are the items; exact for ASCII.
    - raw digests: the bytes over the digest width.
    """

    def __init__(self, kind: str, width: int = 1) -> None:
        self.kind = kind
        self.width = width
        self.count = 0
        self._bytes = 0
        self._in_token = False

    def feed(self, chunk: bytes) -> int:
        """Count `chunk`; returns the bound so far."""
        if self.kind == "json":
            self.count += chunk.count(b",")
        elif self.kind == "text":
            if chunk:
                t = chunk.translate(_TOKEN_CLASS)  # see _TOKEN_CLASS
                self.count += (
                    t.count(b"\nx")
                    + t.count(b"hx")
                    + t.count(b"h")
                    + (t[0] == 0x78 and not self._in_token)
                )
                self._in_token = t[-1] == 0x78
        else:
            self._bytes += len(chunk)
            self.count = self._bytes // self.width
        return self.count


#: bytes -> b"\n" for ASCII whitespace, b"h" for bytes >= 0x80, b"x" else
_TOKEN_CLASS = bytes(
    0x0A if b in b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f" else 0x68 if b >= 0x80 else 0x78
    for b in range(256)
)


_BOUND_OF = {"json": "commas", "text": "tokens", "raw": "digests"}
#: A batch body whose item bound passes max_batch by more than this is
#: refused while it is read; the exact count is checked after parsing.  The
#: slack covers commas outside the array (other keys, strings).
ITEM_SLACK = 1024


def too_large(message: str) -> Response:
    """413, and the connection closes (the rest of the body is not read)."""
    status, body, ctype, _ = error(413, message)
    return status, body, ctype, [(b"connection", b"close")]


def _upload_refused(which: str) -> Response:
    if which == "client":
        status, message = 429, "too many uploads in progress from this address"
    else:
        status, message = 503, "too many uploads in progress; retry"
    status, body, ctype, _ = error(status, message)
    return status, body, ctype, [(b"retry-after", b"1"), (b"connection", b"close")]


async def read_body(
    scope: Any,
    receive: Any,
    max_body: int,
    uploads: UploadBudget,
    on_limit: Callable[[str, str | None], None],
    items: ItemBound | None = None,
    max_batch: int = 0,
) -> bytes | Response:
    """The request body, or the answer that refuses it: over `max_body`
    (413, before reading when the Content-Length says so), an item bound
    (`items`) over `max_batch` + ITEM_SLACK (413 as soon as it passes,
    before the rest is read or anything is parsed), or over the worker's
    upload memory (429 for a client's share, 503 for the worker's; reserved
    from the Content-Length, else as the bytes come).  Refusals by items or
    memory are reported to `on_limit(reason, client address)`.

    Raises ClientGone when the client disconnects (also when the body
    deadline of _protocol closes the connection)."""
    length = header(scope, b"content-length")
    declared = 0
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            return error(400, "invalid Content-Length")
        if declared > max_body:
            return too_large(
                f"request body of {declared} bytes is over "
                f"the limit of {max_body} bytes"
            )
    client = scope.get("client")
    who = client[0] if client else "?"
    max_items = max_batch + ITEM_SLACK
    held = 0
    try:
        if declared > 0:
            refused = uploads.take(who, declared)
            if refused:
                on_limit("upload_memory", who)
                return _upload_refused(refused)
            held = declared
        chunks = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > max_body:
                return too_large(f"request body is over the limit of {max_body} bytes")
            if size > held:  # no (or a short) Content-Length
                refused = uploads.take(who, size - held)
                if refused:
                    on_limit("upload_memory", who)
                    return _upload_refused(refused)
                held = size
            if items is not None and items.feed(chunk) > max_items:
                on_limit("batch_items", who)
                return too_large(
                    f"more than {max_batch} items per request (refused while "
                    f"reading: over {max_items} {_BOUND_OF[items.kind]})"
                )
            chunks.append(chunk)
            if not msg.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        uploads.give(who, held)
