"""hashlookup.server: the lookup service (``pip install hashlookup[server]``).

A CIRCL hashlookup compatible HTTP API plus a native batch API over one
dataset file, with API keys, rate limits, metrics, an audit log of hits and
hot reload.  Run it with ``hashlookup serve DATASET``; see docs/SERVER.md.

Modules: app (the ASGI application), _run (pre-fork supervisor running
uvicorn workers), _check (vectorised batch checks), _render (Cython: a
GET hit's answer and audit line in one call), _keys (API keys file),
_ratelimit and _metrics (memory shared by the workers), _audit (hit log),
_bloom (DCSO filter cache), _protocol (bounded request heads), _openapi.
The serve and apikey commands are hashlookup.cli.serve and .apikey.
"""

from hashlookup.server._config import ServerConfig
from hashlookup.server._keys import add_key, read_keys, revoke_key

__all__ = ["ServerConfig", "add_key", "read_keys", "revoke_key"]
