"""Settings of one `hashlookup serve` run (shared by the supervisor and
its workers)."""

from __future__ import annotations

from dataclasses import dataclass

#: Largest batch of /v1/check and /bulk/* (items); larger ones get 413.
MAX_BATCH = 100_000
#: Largest request body in bytes: 100,000 sha256 digests as JSON fit.
MAX_BODY = 16 << 20
#: Largest request head (request line and headers) in bytes; more gets 431.
MAX_HEAD = 16 << 10


@dataclass
class ServerConfig:
    dataset: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    api_keys: str | None = None      # keys file; None with no_auth
    no_auth: bool = False
    rate: float = 100.0              # requests/s per key (0: unlimited)
    burst: float = 200.0
    max_batch: int = MAX_BATCH
    max_body: int = MAX_BODY
    max_head: int = MAX_HEAD
    audit_log: str | None = "-"      # file, "-" for stderr, None: off
    reload_interval: float = 1.0     # seconds between checks of dataset and keys
    max_age: float | None = None     # /readyz fails when the dataset is older
    bloom_dir: str = ""              # cache of bloom exports
    bloom_fpr: float = 1e-4
    log_level: str = "warning"
    verify_key: str | None = None    # public key: the dataset must be signed by it
    # seconds without a heartbeat before the supervisor kills a worker (0:
    # never); the environment variable HASHLOOKUP_WATCHDOG overrides it
    watchdog: float = 30.0

    def open_options(self) -> dict[str, str]:
        """open_dataset keywords: with verify_key every generation, the first
        and each reloaded one, must carry a valid signature by that key."""
        return {} if self.verify_key is None else {"require_signature": self.verify_key}
