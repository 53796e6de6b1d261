"""The ASGI application of the lookup service (one instance per worker).

A hand-written ASGI app rather than a framework: the hot path (route,
authenticate, rate-limit, look up, render, count) is a few dict and string
operations, so a single GET costs little more than an endpoint that returns
a constant (see docs/SERVER.md for the figures).

Privacy: no request path, query string or body is ever logged (paths hold
digests); only hits go to the audit log, and the access log is off.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson

from hashlookup import algorithms
from hashlookup._version import __version__
from hashlookup.server import _check as checks
from hashlookup.server import _circl
from hashlookup.server import _pdq as near
from hashlookup.server._audit import FLUSH_BYTES, AuditLog
from hashlookup.server._bloom import BloomCache
from hashlookup.server._config import ServerConfig
from hashlookup.server._files import LastGood, WorkerFiles
from hashlookup.server._http import (
    JSON,
    ClientGone,
    ItemBound,
    Response,
    UploadBudget,
    api_token,
    error,
    hashes_of,
    header,
    is_json,
    query_param,
    raw_hex,
    read_body,
    too_large,
)
from hashlookup.server._keys import ApiKey, KeyStore
from hashlookup.server._metrics import Metrics
from hashlookup.server._openapi import openapi
from hashlookup.server._ratelimit import RateLimiter, retry_after
from hashlookup.store.dataset import Dataset

log = logging.getLogger("hashlookup.server")

# CIRCL's "value incorrect" message spells the names without the hyphen
# ("SHA1"), its 404 with it ("Non existing SHA-1").
_BAD_NAME = {a.name: a.display.replace("-", "") for a in algorithms.DIGESTS}
_UNSUPPORTED = ("/children/", "/parents/", "/session/", "/stats/")
# path -> (endpoint name for metrics, allowed method, needs a key)
_ROUTES = {
    "/info": ("info", "GET", True),
    "/bulk/md5": ("bulk", "POST", True),
    "/bulk/sha1": ("bulk", "POST", True),
    "/bulk/sha256": ("bulk", "POST", True),
    "/stats/top": ("top", "GET", True),
    "/v1/check": ("check", "POST", True),
    "/v1/pdq": ("pdq", "POST", True),
    "/m/raw_lookup": ("hma", "GET", True),  # HMA's matching endpoints
    "/m/lookup": ("hma", "GET", True),
    "/v1/ping": ("ping", "GET", True),
    "/healthz": ("healthz", "GET", False),
    "/readyz": ("readyz", "GET", False),
    "/metrics": ("metrics", "GET", True),
    "/openapi.json": ("openapi", "GET", False),
}
_PING = b'{"pong":true}'
_HEALTHY = b'{"status":"ok"}'
# the last headers of every answer but a Bloom file's (before its extra ones)
_FIXED_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)
_FIXED_LINES = b"".join(k + b": " + v + b"\r\n" for k, v in _FIXED_HEADERS)
_QUICK_HEAD = b"content-type: %s\r\ncontent-length: %d\r\nx-dataset-version: %s\r\n"
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14
_PREFAULT_CHUNK = 64 << 20
_BLOOM_CHUNK = 1 << 20


class LookupApp:
    """ASGI callable; the dataset is opened at lifespan startup (in the
    worker process, so every worker has its own mapping)."""

    def __init__(
        self,
        config: ServerConfig,
        metrics: Metrics,
        limiter: RateLimiter,
        worker: int = 0,
        last_good: LastGood | None = None,
    ) -> None:
        self.config = config
        # the dataset and keys: from what the supervisor kept, then reloads
        self.files = WorkerFiles(config, worker, last_good, self._warn_once)
        self.metrics = metrics
        self.limiter = limiter
        self.worker = worker
        self.ds: Dataset | None = None
        self.keys: KeyStore | None = None
        self.audit: AuditLog | None = None
        self.bloom = BloomCache(config.bloom_dir, config.bloom_fpr)
        self._openapi_doc = orjson.dumps(openapi(config.max_batch, config.max_body))
        self._gen = b"0"
        self._task: asyncio.Task[None] | None = None
        self._single: checks.SingleHits  # made with the dataset, by start()
        self._warned: set[str] = set()
        total = max(config.upload_memory, config.max_body)
        self.uploads = UploadBudget(total, max(config.max_body, total // 4))
        self._near = near.PdqEndpoints(self)  # POST /v1/pdq, HMA's /m/ lookups
        self._build_routes()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self.ds = self.files.open()
        self._single = _circl.CirclSingleHits(self.ds)
        if not cfg.no_auth:
            assert cfg.api_keys is not None
            self.keys = self.files.load_keys()
        if cfg.audit_log is not None:
            self.audit = AuditLog(cfg.audit_log)
        self.metrics.bind(self.worker)
        self._dataset_changed()
        for _ in self._prefault_steps():
            pass

    def _dataset_changed(self) -> None:
        ds = self.ds
        assert ds is not None
        self._gen = str(ds.generation).encode()
        self._single.prepare()
        if self._single.problem is not None:
            log.error(
                "worker %d: dataset generation %d: %s; its hits are answered "
                "with an error until it is replaced",
                self.worker,
                ds.generation,
                self._single.problem,
            )
        self.metrics.dataset(
            ds.generation, datetime.fromisoformat(ds.built).timestamp()
        )

    def _prefault_steps(self) -> Any:
        """Map every page of the dataset into this worker's page table
        (madvise MADV_POPULATE_READ, 64 MiB at a time, a step each).

        The pages are in the page cache already (shared by the workers), but
        each worker's first touch of a page is a page fault: without this,
        the first lookups after start or reload pay several faults each.
        Costs page-table entries only, no extra memory."""
        ds = self.ds
        try:
            mm = ds.current().mapping if ds is not None else None
        except ValueError:  # closed
            return
        if mm is None:
            return
        size = len(mm)
        for start in range(0, size, _PREFAULT_CHUNK):
            try:
                mm.madvise(
                    _MADV_POPULATE_READ, start, min(_PREFAULT_CHUNK, size - start)
                )
            except (OSError, ValueError):
                return  # an older kernel: pages fault in on first use
            yield

    async def _prefault(self) -> None:
        for _ in self._prefault_steps():
            await asyncio.sleep(0)  # keep answering between chunks

    async def _maintain(self) -> None:
        """Every reload_interval: pick up a replaced dataset (checked in a
        thread while requests are answered, swapped in between two) or keys
        file, flush the audit log."""
        while True:
            await asyncio.sleep(self.config.reload_interval)
            try:
                await self._reload()
                self.tick()
            except Exception:  # a bug must not end the upkeep for good
                log.exception("worker %d: maintenance step failed", self.worker)

    async def _reload(self) -> None:
        files = self.files
        if not files.replaced():
            return
        t0 = time.perf_counter()
        found = await asyncio.to_thread(files.replacement)
        if found is None:
            return
        files.swap(*found)
        self._dataset_changed()
        log.warning(
            "worker %d: dataset reloaded, generation %d (body checked %s; "
            "served %.2f s after it was seen)",
            self.worker,
            files.generation(),
            files.checked_by,
            time.perf_counter() - t0,
        )
        await self._prefault()

    def tick(self) -> None:
        """One maintenance step besides the dataset: reload the keys file if
        it changed (a bad one is reported), flush the audit log."""
        if not self.config.no_auth:
            self.keys = self.files.load_keys()
        if self.audit is not None:
            self.audit.flush()
            if self.audit.problem is not None:
                self._warn_once(
                    f"audit log: {self.audit.problem}; hits are kept "
                    "in memory and written when it works again"
                )

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("worker %d: %s", self.worker, message)

    def stop(self) -> None:
        audit = self.audit
        if audit is not None:
            audit.close()
            if audit.buffer or audit.dropped:
                log.error(
                    "worker %d: audit log: %s; %d bytes of lines not written, "
                    "%d lines dropped",
                    self.worker,
                    audit.problem,
                    len(audit.buffer),
                    audit.dropped,
                )

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as exc:  # reported to uvicorn
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self._task = asyncio.get_running_loop().create_task(self._maintain())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._task is not None:
                    self._task.cancel()
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP ----------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Any, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        endpoint = "other"
        try:
            endpoint, handler = self._route(scope)
            resp = await handler(scope, receive)
        except ClientGone:
            return
        except Exception:  # never a crash, never the path in logs
            log.exception(
                "worker %d: internal error in endpoint %s", self.worker, endpoint
            )
            resp = error(500, "internal server error")
        status, body, ctype, extra = resp
        if status == 200 and ctype == b"bloom":  # a file to stream
            await self._send_file(send, body.decode(), extra)
        else:
            # the same header lines as quick() writes
            headers = [
                (b"content-type", ctype),
                (b"content-length", str(len(body)).encode()),
                (b"x-dataset-version", self._gen),
                *_FIXED_HEADERS,
                *extra,
            ]
            await send(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
        self.metrics.request(endpoint, status, time.perf_counter() - t0)

    def quick(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
    ) -> tuple[int, bytes, bytes] | None:
        """Answer a GET (or HEAD) of a single lookup, /v1/ping or /healthz
        without the ASGI round trip, for the protocol (_protocol) to write in
        one piece: (status, header lines, body), with the same checks (key,
        rate limit), audit line, metrics and bytes as the ASGI path; None
        (nothing done) for every other request, which then takes the ASGI
        path.  `path` is the decoded path (no query string), `headers` the
        request's (lowercase names), `client` the peer address."""
        if path.startswith("/lookup/"):
            endpoint, answer, auth = "lookup", self._lookup_now, True
        else:
            route = self._quick_routes.get(path)
            if route is None:
                return None
            endpoint, answer, auth = route
        if method != "GET" and method != "HEAD":
            return None  # the ASGI path's 405
        t0 = time.perf_counter()
        scope = {"path": path, "headers": headers, "client": client}
        try:
            resp = (self._authorize(scope) if auth else None) or answer(scope)
        except Exception:  # never a crash, never the path in logs
            log.exception(
                "worker %d: internal error in endpoint %s", self.worker, endpoint
            )
            resp = error(500, "internal server error")
        status, body, ctype, extra = resp
        head = _QUICK_HEAD % (ctype, len(body), self._gen) + _FIXED_LINES
        for k, v in extra:
            head += k + b": " + v + b"\r\n"
        self.metrics.request(endpoint, status, time.perf_counter() - t0)
        return status, head, body

    def _build_routes(self) -> None:
        """Guarded handlers, made once (not per request)."""
        g = self._guard
        self._lookup_route = ("lookup", g("GET", True, self._lookup))
        self._routes = {
            path: (name, g(allowed, auth, getattr(self, "_" + name)))
            for path, (name, allowed, auth) in _ROUTES.items()
        }
        self._bloom_route = ("bloom", g("GET", True, self._bloom))
        self._unsupported_route = ("unsupported", g(None, True, self._unsupported))
        self._other_route = ("other", self._not_found)
        # quick(): path -> (endpoint, handler, needs a key); /lookup/ by prefix
        self._quick_routes = {
            path: (name, getattr(self, f"_{name}_now"), auth)
            for path, (name, allowed, auth) in _ROUTES.items()
            if allowed == "GET" and hasattr(self, f"_{name}_now")
        }

    def _route(
        self, scope: Any
    ) -> tuple[str, Callable[[Any, Any], Awaitable[Response]]]:
        path: str = scope["path"]
        if path.startswith("/lookup/"):
            return self._lookup_route
        route = self._routes.get(path)
        if route is not None:
            return route
        if path.startswith("/v1/bloom/"):
            return self._bloom_route
        if path.startswith(_UNSUPPORTED):
            return self._unsupported_route
        return self._other_route

    def _guard(
        self,
        allowed: str | None,
        auth: bool,
        handler: Callable[[Any, Any], Awaitable[Response]],
    ) -> Callable[[Any, Any], Awaitable[Response]]:
        """`handler` behind the method check (allowed None: any method) and,
        with `auth`, the API key and rate limit checks."""

        async def run(scope: Any, receive: Any) -> Response:
            method = scope["method"]
            if (
                allowed is not None
                and method != allowed
                and not (allowed == "GET" and method == "HEAD")
            ):
                status, body, ctype, _ = error(
                    405, f"method {method} not allowed here; use {allowed}"
                )
                return status, body, ctype, [(b"allow", allowed.encode())]
            if auth:
                denied = self._authorize(scope)
                if denied is not None:
                    return denied
            return await handler(scope, receive)

        return run

    # -- auth and limits -----------------------------------------------------

    def _authorize(self, scope: Any) -> Response | None:
        key: ApiKey | None = None
        if self.config.no_auth:
            client = scope.get("client")
            who = f"ip:{client[0]}" if client else "ip:?"
        else:
            token = api_token(scope)
            if token is None:
                return self._unauthorized(
                    "an API key is required: Authorization: Bearer TOKEN"
                )
            assert self.keys is not None
            state, key = self.keys.check(token)
            if state == "unknown":
                return self._unauthorized("unknown API key")
            if state == "revoked":
                return error(403, "this API key was revoked")
            assert key is not None
            who = key.id
            scope["hashlookup.key"] = key
        if key is not None and key.rate is not None:
            wait = self.limiter.take(who, key.rate, key.burst)
        elif self.limiter.enabled:
            wait = self.limiter.take(who)
        else:
            return None
        if wait:
            # the body and the header say the same: whole seconds, rounded up
            seconds = retry_after(wait)
            status, body, ctype, _ = error(
                429, "rate limit exceeded", retry_after=int(seconds)
            )
            return status, body, ctype, [(b"retry-after", seconds.encode())]
        return None

    @staticmethod
    def _unauthorized(message: str) -> Response:
        status, body, ctype, _ = error(401, message)
        return (
            status,
            body,
            ctype,
            [(b"www-authenticate", b'Bearer realm="hashlookup"')],
        )

    async def _read_body(
        self, scope: Any, receive: Any, items: ItemBound | None = None
    ) -> bytes | Response:
        cfg = self.config
        return await read_body(
            scope,
            receive,
            cfg.max_body,
            self.uploads,
            self.metrics.limit,
            items,
            cfg.max_batch,
        )

    @staticmethod
    def _too_large(message: str) -> Response:
        return too_large(message)

    def _batch_too_large(self, n: int) -> Response | None:
        if n > self.config.max_batch:
            return self._too_large(
                f"{n} items, more than the limit of {self.config.max_batch} per request"
            )
        return None

    # -- endpoints -----------------------------------------------------------

    async def _lookup(self, scope: Any, receive: Any) -> Response:
        return self._lookup_now(scope)

    def _lookup_now(self, scope: Any) -> Response:
        # The hottest path: one C call decodes, looks up, renders and (with
        # the audit log on) writes the audit line; hits are counted as the
        # endpoint's 200 answers (see Metrics), not here.
        alg, _, digest = scope["path"][8:].partition("/")
        audit = self.audit
        if audit is None:
            hit = self._single.answer(alg, digest)
        else:
            key = scope.get("hashlookup.key")
            who = audit.whos.get(key)  # audit.who(key)'s cache, without the call
            hit = self._single.answer(
                alg, digest, audit.buffer, who if who is not None else audit.who(key)
            )
        if type(hit) is bytes:
            if audit is not None and len(audit.buffer) >= FLUSH_BYTES:
                audit.flush()
            return 200, hit, JSON, []
        if hit == checks.MISS:
            self.metrics.miss()
            return error(404, f"Non existing {algorithms.DISPLAY[alg]}", query=digest)
        if hit == checks.INVALID:
            name = _BAD_NAME[alg]
            return error(
                400, f"{name} value incorrect, expecting a {name} value in hex format"
            )
        return error(
            404, "no such lookup: use /lookup/md5/, /lookup/sha1/ or /lookup/sha256/"
        )

    async def _bulk(self, scope: Any, receive: Any) -> Response:
        ctype = header(scope, b"content-type")
        json_body = ctype is None or is_json(ctype)
        body = await self._read_body(
            scope, receive, ItemBound("json") if json_body else None
        )
        if isinstance(body, tuple):
            return body
        if not json_body:
            return error(415, "expected Content-Type application/json")
        hashes = hashes_of(
            body,
            "JSON format incorrect. An array of hashes in the "
            "key 'hashes' is expected.",
        )
        if isinstance(hashes, tuple):
            return hashes
        too_large = self._batch_too_large(len(hashes))
        if too_large:
            return too_large
        alg = scope["path"].rsplit("/", 1)[1]
        ds = self.ds
        assert ds is not None
        res = checks.check_strings(ds, hashes, algorithm=alg)
        self._count(res)
        self._audit(scope, [(hashes[i], m, res.items[i]) for i, m in res.hits])
        name = ds.name
        return (
            200,
            b"[" + b",".join([_circl.bulk_json(m, name) for _, m in res.hits]) + b"]",
            JSON,
            [],
        )

    async def _check(self, scope: Any, receive: Any) -> Response:
        ds = self.ds
        assert ds is not None
        ctype = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        alg = query_param(scope, b"algorithm")
        if alg is not None and alg not in algorithms.BY_NAME:
            return error(400, f"unknown algorithm {alg!r}: use md5, sha1 or sha256")
        if ctype not in (
            b"application/json",
            b"text/plain",
            b"application/octet-stream",
        ):
            return error(
                415,
                "expected Content-Type application/json, "
                "text/plain or application/octet-stream",
            )
        if ctype == b"application/octet-stream":
            bound = ItemBound("raw", algorithms.WIDTH[alg]) if alg else None
        else:
            bound = ItemBound("text" if ctype == b"text/plain" else "json")
        body = await self._read_body(scope, receive, bound)
        if isinstance(body, tuple):
            return body
        if ctype == b"application/octet-stream":
            if alg is None:
                return error(400, "raw digests need ?algorithm=md5, sha1 or sha256")
            width = algorithms.WIDTH[alg]
            if len(body) % width:
                return error(
                    400,
                    f"body of {len(body)} bytes is not a whole "
                    f"number of {width}-byte {alg} digests",
                )
            too_large = self._batch_too_large(len(body) // width)
            if too_large:
                return too_large
            res = checks.check_raw(ds, body, alg)
            queried: Any = None
        else:
            if ctype == b"text/plain":
                items: Any = checks.split_text(body)
            else:
                items = hashes_of(body, "expected a JSON object with an array 'hashes'")
                if isinstance(items, tuple):
                    return items
            too_large = self._batch_too_large(len(items))
            if too_large:
                return too_large
            res = checks.check_strings(ds, items, algorithm=alg)
            queried = items
        self._count(res)
        if res.hits and self.audit is not None:
            self._audit(
                scope,
                [
                    (
                        queried[i]
                        if queried is not None
                        else raw_hex(body, i, algorithms.WIDTH[alg or "md5"]),
                        m,
                        res.items[i],
                    )
                    for i, m in res.hits
                ],
            )
        return 200, checks.render_check(res, ds), JSON, []

    async def _pdq(self, scope: Any, receive: Any) -> Response:
        return await self._near.batch(scope, receive)

    async def _hma(self, scope: Any, receive: Any) -> Response:
        return await self._near.hma(scope, receive)

    async def _info(self, scope: Any, receive: Any) -> Response:
        ds = self.ds
        assert ds is not None
        info = {
            "hashlookup-version": __version__,
            "dataset": ds.name,
            "generation": ds.generation,
            "built": ds.built,
            "records": len(ds),
            "items": {a: len(ds.table(a)) for a in ds.algorithms},
            "labels": ds.labels(),
            "nsrl-version": ds.nsrl_version,
        }
        return 200, orjson.dumps(info), JSON, []

    async def _top(self, scope: Any, receive: Any) -> Response:
        return 200, _circl.TOP, JSON, []

    async def _ping(self, scope: Any, receive: Any) -> Response:
        return self._ping_now(scope)

    def _ping_now(self, scope: Any) -> Response:
        return 200, _PING, JSON, []

    async def _healthz(self, scope: Any, receive: Any) -> Response:
        return self._healthz_now(scope)

    def _healthz_now(self, scope: Any) -> Response:
        return 200, _HEALTHY, JSON, []

    async def _readyz(self, scope: Any, receive: Any) -> Response:
        ds = self.ds
        assert ds is not None
        problems = []
        try:
            with open(ds.path, "rb") as f:
                if not f.read(8):
                    problems.append("dataset file is empty")
        except FileNotFoundError:
            problems.append("dataset file is missing")
        except OSError as exc:
            problems.append(f"dataset file is unreadable: {exc.strerror}")
        age = time.time() - datetime.fromisoformat(ds.built).timestamp()
        max_age = self.config.max_age
        if max_age is not None and age > max_age:
            problems.append(
                f"dataset is {age:.0f} s old, more than the --max-age of {max_age:g} s"
            )
        warnings = self.files.warnings()  # a refused dataset or keys file
        audit = self.audit
        if audit is not None and (audit.problem or audit.dropped):
            warnings.append(
                f"audit log: {audit.problem or 'written again'}; "
                f"{len(audit.buffer)} bytes of lines waiting, "
                f"{audit.dropped} lines dropped"
            )
        warnings += self.metrics.supervisor_warnings()  # workers in back-off
        doc = {
            "status": "ready" if not problems else "not ready",
            "generation": ds.generation,
            "age_seconds": round(age, 3),
            "problems": problems,
            "warnings": warnings,
        }
        return (503 if problems else 200), orjson.dumps(doc), JSON, []

    async def _metrics(self, scope: Any, receive: Any) -> Response:
        ds = self.ds
        assert ds is not None
        return (
            200,
            self.metrics.render(len(ds)),
            b"text/plain; version=0.0.4; charset=utf-8",
            [],
        )

    async def _openapi(self, scope: Any, receive: Any) -> Response:
        return 200, self._openapi_doc, JSON, []

    async def _unsupported(self, scope: Any, receive: Any) -> Response:
        return error(
            501,
            "not supported by this server (hashlookup keeps no "
            "parents, children, sessions or query statistics)",
        )

    async def _not_found(self, scope: Any, receive: Any) -> Response:
        return error(404, "no such endpoint; see /openapi.json")

    async def _bloom(self, scope: Any, receive: Any) -> Response:
        ds = self.ds
        assert ds is not None
        alg = scope["path"][len("/v1/bloom/") :]
        if alg not in algorithms.BY_NAME:
            return error(404, "no such filter: use /v1/bloom/md5, sha1 or sha256")
        if alg not in ds.algorithms:
            return error(404, f"the dataset has no {alg} table")
        table = ds.table(alg)
        generation = ds.generation
        etag = self.bloom.etag(table, generation, alg)
        quoted = f'"{etag}"'.encode()
        headers = [(b"etag", quoted), (b"cache-control", b"no-cache")]
        inm = header(scope, b"if-none-match")
        if inm is not None and (
            inm.strip() == b"*"
            or quoted in [t.strip().removeprefix(b"W/") for t in inm.split(b",")]
        ):
            return 304, b"", JSON, headers
        path = await self.bloom.get(
            table,
            alg,
            etag,
            {
                "dataset": ds.name,
                "generation": generation,
                "algorithm": alg,
                "built": ds.built,
            },
        )
        return 200, path.encode(), b"bloom", headers

    async def _send_file(
        self, send: Any, path: str, extra: list[tuple[bytes, bytes]]
    ) -> None:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(size).encode()),
                        (b"x-dataset-version", self._gen),
                        *extra,
                    ],
                }
            )
            while True:
                chunk = f.read(_BLOOM_CHUNK)
                if not chunk:
                    break
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})

    # -- bookkeeping ---------------------------------------------------------

    def _count(self, res: checks.CheckResult) -> None:
        self.metrics.digests(len(res.hits), res.misses, res.invalid)

    def _audit(self, scope: Any, hits: list[tuple[str, Any, bytes | None]]) -> None:
        """Log hits: (digest as asked, Match, native record JSON or None)."""
        if self.audit is None or not hits:
            return
        self.audit.hits(
            scope.get("hashlookup.key"),
            [
                (d, m.generation, rec if rec is not None else checks.native_json(m))
                for d, m, rec in hits
            ],
        )
