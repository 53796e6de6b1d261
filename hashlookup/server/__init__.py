"""hashlookup.server: the lookup service (``pip install hashlookup[server]``).

A CIRCL hashlookup compatible HTTP API plus a native batch API over one
dataset file, with API keys, rate limits, metrics, an audit log of hits and
hot reload.  Run it with ``hashlookup serve DATASET``; see docs/SERVER.md.

Modules:

- app: the ASGI application (routes, reloads, the answers of each endpoint);
- _run: ``serve``, the pre-fork supervisor's start (checks, socket, shared
  memory) and its workers' forks;
- _supervisor: the supervisor's loop (restarts with back-off, watchdog,
  stop deadline);
- _worker: one worker process (a uvicorn Server, heartbeat, dying with the
  supervisor);
- _config: ServerConfig, the settings of one run;
- _check: vectorised batch checks (POST /v1/check, /bulk/*) and the GET
  lookups' renderer set-up;
- _pdq: PDQ near matches (POST /v1/pdq) and HMA's matching endpoints
  (GET /m/raw_lookup, /m/lookup); _pdq_openapi their OpenAPI description;
- _render: Cython extension, a GET hit's answer and audit line in one call;
- _circl: CIRCL's shapes that need record attributes (single lookups with
  NSRL codes expanded and trust, flat bulk records), /stats/top;
- _http: responses, errors, headers and credentials of ASGI scopes; body
  reading with the upload memory budget and batch item bounds;
- _protocol: uvicorn's httptools protocol with a bounded request head,
  deadlines for heads, bodies and idle connections, connection caps;
- _keys: the API keys file and token checks;
- _ratelimit and _metrics: token buckets and counters in memory shared by
  the workers;
- _audit: the log of hits;
- _bloom: the cache of DCSO Bloom filter exports;
- _openapi: the OpenAPI description served at /openapi.json.

The serve and apikey commands are hashlookup.cli.serve and .apikey.
``serve`` is imported on first use: the apikey command imports this
package without uvicorn or the supervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hashlookup.server._config import ServerConfig
from hashlookup.server._keys import add_key, read_keys, revoke_key

if TYPE_CHECKING:
    from hashlookup.server._run import serve

__all__ = ["ServerConfig", "add_key", "read_keys", "revoke_key", "serve"]


def __getattr__(name: str) -> Any:
    # serve lives with the supervisor and its imports (uvicorn among them):
    # import it only when asked for
    if name == "serve":
        from hashlookup.server._run import serve

        globals()["serve"] = serve
        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
