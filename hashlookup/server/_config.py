"""Settings of one `hashlookup serve` run (shared by the supervisor and
its workers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Largest batch of /v1/check and /bulk/* (items); larger ones get 413.
MAX_BATCH = 100_000
#: Largest request body in bytes: 100,000 sha256 digests as JSON fit.
MAX_BODY = 16 << 20
#: Largest request head (request line and headers) in bytes; more gets 431.
MAX_HEAD = 16 << 10
#: Seconds for a request head to arrive, from its first byte (the first
#: request of a connection: from the connection's opening); then 408.
HEAD_TIMEOUT = 10.0
#: Seconds for a request body to arrive, from the end of its head (then
#: 408); also how long a response may wait for a client that stops reading.
BODY_TIMEOUT = 30.0
#: Seconds a keep-alive connection may stay idle between requests.
IDLE_TIMEOUT = 15.0
#: Seconds after which a connection's next response closes it (clients then
#: reconnect, and the kernel spreads them over the workers again); 0: never.
CONNECTION_MAX_AGE = 60.0
#: Open connections per worker (more: 503), and per client address per
#: worker (more: 429).
MAX_CONNECTIONS = 1000
MAX_CLIENT_CONNECTIONS = 64
#: Bytes of request bodies a worker holds while they arrive (more: 503); one
#: client address may hold a quarter of it, but at least max_body (more: 429).
UPLOAD_MEMORY = 128 << 20


@dataclass
class ServerConfig:
    """The settings of one run of the lookup service (``hashlookup serve``).

    Shared by the supervisor and its workers; ``hashlookup serve`` builds it
    from its options (docs/SERVER.md).

    Parameters
    ----------
    dataset : str
        The dataset (or index) file served.
    host : str, default "127.0.0.1"
        The address to listen on.
    port : int, default 8080
        The port to listen on (0: any free port).
    workers : int, default 1
        Worker processes.
    api_keys : str, optional
        The keys file; required unless ``no_auth``.
    no_auth : bool, default False
        Serve without API keys (rate limits then apply per client address).
    rate : float, default 100.0
        Requests per second per key (0: unlimited), unless the key sets its
        own.
    burst : float, default 200.0
        Token bucket size per key, unless the key sets its own.
    max_batch : int, default MAX_BATCH
        Largest batch of /v1/check and /bulk/* in items (more: 413).
    max_body : int, default MAX_BODY
        Largest request body in bytes (more: 413).
    max_head : int, default MAX_HEAD
        Largest request head in bytes (more: 431).
    audit_log : str or None, default "-"
        The log of hits: a file, "-" for stderr, None for none.
    reload_interval : float, default 1.0
        Seconds between checks of the dataset and keys files for changes.
    max_age : float, optional
        /readyz fails when the served generation is older (seconds).
    bloom_dir : str, default ""
        The cache directory of Bloom filter exports ("": a temporary one).
    bloom_fpr : float, default 1e-4
        The false-positive rate of the Bloom filter exports.
    log_level : str, default "warning"
        The workers' log level (the service's and uvicorn's).
    verify_key : str, optional
        A public key: every generation served must be signed by it.
    head_timeout : float, default HEAD_TIMEOUT
        Seconds for a request head to arrive (from its first byte; for the
        first request of a connection from its opening); then 408.
    body_timeout : float, default BODY_TIMEOUT
        Seconds for a request body to arrive after its head (then 408), and
        for a client that stops reading a response (then it is dropped).
    idle_timeout : float, default IDLE_TIMEOUT
        Seconds a keep-alive connection may stay idle between requests.
    connection_max_age : float, default CONNECTION_MAX_AGE
        Seconds after which a connection's next response closes it, so that
        clients spread over the workers again (0: never).
    max_connections : int, default MAX_CONNECTIONS
        Open connections per worker (more: 503); at most the descriptor
        limit less 64.
    max_client_connections : int, default MAX_CLIENT_CONNECTIONS
        Open connections per client address per worker (more: 429).
    upload_memory : int, default UPLOAD_MEMORY
        Bytes of request bodies one worker holds while they arrive (more:
        503); one client address may hold a quarter of it, and at least
        ``max_body`` (more: 429).
    watchdog : float, default 30.0
        Seconds without a heartbeat before a worker is killed and replaced
        (0: never); the environment variable HASHLOOKUP_WATCHDOG overrides it.
    allow_older_generation : bool, default False
        Serve a replacement dataset whose generation number is lower than
        the one served (otherwise refused, reported in /readyz).

    Examples
    --------
    >>> from hashlookup.server import ServerConfig
    >>> cfg = ServerConfig("nsrl.hlds", api_keys="keys.json", workers=4)
    >>> cfg.port
    8080
    """

    dataset: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    api_keys: str | None = None  # keys file; None with no_auth
    no_auth: bool = False
    rate: float = 100.0  # requests/s per key (0: unlimited)
    burst: float = 200.0
    max_batch: int = MAX_BATCH
    max_body: int = MAX_BODY
    max_head: int = MAX_HEAD
    audit_log: str | None = "-"  # file, "-" for stderr, None: off
    reload_interval: float = 1.0  # seconds between checks of dataset and keys
    max_age: float | None = None  # /readyz fails when the dataset is older
    bloom_dir: str = ""  # cache of bloom exports
    bloom_fpr: float = 1e-4
    log_level: str = "warning"
    verify_key: str | None = None  # public key: the dataset must be signed by it
    # seconds without a heartbeat before the supervisor kills a worker (0:
    # never); the environment variable HASHLOOKUP_WATCHDOG overrides it
    watchdog: float = 30.0
    allow_older_generation: bool = False  # a reload may go back in generations
    head_timeout: float = HEAD_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    connection_max_age: float = CONNECTION_MAX_AGE
    max_connections: int = MAX_CONNECTIONS
    max_client_connections: int = MAX_CLIENT_CONNECTIONS
    upload_memory: int = UPLOAD_MEMORY

    def open_options(self) -> dict[str, Any]:
        """open_dataset keywords: with verify_key every generation, the first
        and each reloaded one, must carry a valid signature by that key."""
        return {} if self.verify_key is None else {"require_signature": self.verify_key}
