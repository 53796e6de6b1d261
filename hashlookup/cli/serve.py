"""``hashlookup serve``: the lookup service over one dataset (needs the
server extra; see docs/SERVER.md)."""

from __future__ import annotations

import argparse
import os
import stat
import sys

from hashlookup.cli._common import EXIT_ERROR, PROG, CLIError, Context, warn
from hashlookup.cli._options import add_path, add_verify_key, float_arg, int_arg

DESCRIPTION = (
    "Serve DATASET over HTTP: CIRCL hashlookup compatible endpoints, the "
    "native batch API (/v1/check), Bloom filter export, health, readiness "
    "and Prometheus metrics; API keys, rate limits, body and batch limits, "
    "an audit log of hits and hot reload of a replaced dataset. See "
    "docs/SERVER.md."
)

#: Exit status of serve, shown in its --help.
EXIT_STATUS = (
    "Exit status: 0 after a stop (SIGTERM or Ctrl-C), 2 error: the dataset, "
    "its signature or the keys file refused, the address in use, or no "
    "worker ever started."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``serve``."""
    # the service's defaults, in one place (ServerConfig's module)
    from hashlookup.server import _config as cfg

    add_path(p)
    p.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int_arg(0),
        default=8080,
        help="port, 0 for any free one (default: 8080)",
    )
    p.add_argument(
        "--workers",
        type=int_arg(1),
        default=None,
        metavar="N",
        help="worker processes (default: one per core)",
    )
    p.add_argument(
        "--api-keys",
        metavar="FILE",
        help="keys file of 'hashlookup apikey' (required unless --no-auth)",
    )
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="no API keys (public datasets); rate limits apply per address",
    )
    p.add_argument(
        "--rate-limit",
        type=float_arg(0),
        default=100.0,
        metavar="R",
        help="requests per second per key (0: unlimited; default: 100)",
    )
    p.add_argument(
        "--burst",
        type=float_arg(1),
        default=None,
        metavar="B",
        help="token bucket size (default: 2 x rate)",
    )
    p.add_argument(
        "--max-batch",
        type=int_arg(1),
        default=cfg.MAX_BATCH,
        metavar="N",
        help="most digests per /v1/check or /bulk request (default: 100000)",
    )
    p.add_argument(
        "--max-body",
        type=int_arg(1),
        default=cfg.MAX_BODY,
        metavar="BYTES",
        help="largest request body (default: 16 MiB)",
    )
    p.add_argument(
        "--head-timeout",
        type=float_arg(0.1),
        default=cfg.HEAD_TIMEOUT,
        metavar="S",
        help="seconds for a request head to arrive, then 408 (default: 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=float_arg(0.1),
        default=cfg.BODY_TIMEOUT,
        metavar="S",
        help="seconds for a request body to arrive after its head, then 408; "
        "also for a client to read a response (default: 30)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float_arg(0.1),
        default=cfg.IDLE_TIMEOUT,
        metavar="S",
        help="seconds a keep-alive connection may stay idle (default: 15)",
    )
    p.add_argument(
        "--connection-max-age",
        type=float_arg(0),
        default=cfg.CONNECTION_MAX_AGE,
        metavar="S",
        help="close a connection after its first response past S seconds, so "
        "clients spread over the workers again (0: never; default: 60)",
    )
    p.add_argument(
        "--max-connections",
        type=int_arg(1),
        default=cfg.MAX_CONNECTIONS,
        metavar="N",
        help="open connections per worker, then 503 (default: 1000, at most "
        "the descriptor limit less 64)",
    )
    p.add_argument(
        "--max-client-connections",
        type=int_arg(1),
        default=cfg.MAX_CLIENT_CONNECTIONS,
        metavar="N",
        help="open connections per client address per worker, then 429 (default: 64)",
    )
    p.add_argument(
        "--upload-memory",
        type=int_arg(1),
        default=cfg.UPLOAD_MEMORY,
        metavar="BYTES",
        help="bytes of request bodies a worker holds while they arrive, then "
        "503; a client address gets a quarter, at least --max-body, then 429 "
        "(default: 128 MiB)",
    )
    p.add_argument(
        "--audit-log",
        default="-",
        metavar="FILE",
        help="JSON lines of every hit ('-': stderr, the default)",
    )
    p.add_argument("--no-audit-log", action="store_true", help="do not log hits")
    p.add_argument(
        "--reload-interval",
        type=float_arg(0.05),
        default=1.0,
        metavar="S",
        help="seconds between checks for a replaced dataset or keys file (default: 1)",
    )
    p.add_argument(
        "--allow-older-generation",
        action="store_true",
        help="serve a replacement dataset of a lower generation number "
        "(a rollback; refused by default)",
    )
    p.add_argument(
        "--max-age",
        type=float_arg(0),
        default=None,
        metavar="S",
        help="/readyz fails when the dataset was built more than S seconds ago",
    )
    p.add_argument(
        "--bloom-dir",
        metavar="DIR",
        help="cache of Bloom filter exports (default: a temporary dir)",
    )
    p.add_argument(
        "--bloom-fpr",
        type=float_arg(1e-12, 0.5),
        default=1e-4,
        metavar="P",
        help="false-positive rate of exported filters",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="uvicorn's and the supervisor's log level on stderr (default: "
        "warning); queried digests are never logged",
    )
    add_verify_key(p)


def check_keys_file(path: str) -> None:
    """Refuse a keys file that does not exist (every request would get 401)
    or is not a file; warn when group or others may read or write it (it
    holds the keys' salted hashes; a writer can add keys)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CLIError(
            f"--api-keys {path}: no such file (every request would be refused); "
            f"create it with '{PROG} apikey add --keys {path} NAME'"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise CLIError(f"--api-keys {path}: not a regular file")
    if st.st_mode & 0o077:
        warn(
            f"--api-keys {path} is open to group/others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): anyone who can read it sees the "
            f"keys' hashes, anyone who can write it can add keys; run "
            f"chmod 600 {path}"
        )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the service until it is stopped."""
    ctx.out.flush()
    try:
        import httptools  # noqa: F401
        import orjson  # noqa: F401
        import uvicorn  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError as exc:
        print(
            f"{PROG}: error: the lookup service needs the server extra "
            f"(pip install 'hashlookup[server]'): {exc}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from hashlookup.server import ServerConfig, serve

    if args.no_auth and args.api_keys:
        raise ValueError("--no-auth and --api-keys exclude each other")
    if args.api_keys is not None:
        check_keys_file(args.api_keys)
    cfg = ServerConfig(
        dataset=args.path,
        host=args.host,
        port=args.port,
        workers=args.workers or os.cpu_count() or 1,
        api_keys=args.api_keys,
        no_auth=args.no_auth,
        rate=args.rate_limit,
        burst=args.burst or max(1.0, 2 * args.rate_limit),
        max_batch=args.max_batch,
        max_body=args.max_body,
        audit_log=None if args.no_audit_log else args.audit_log,
        reload_interval=args.reload_interval,
        max_age=args.max_age,
        bloom_dir=args.bloom_dir or "",
        bloom_fpr=args.bloom_fpr,
        log_level=args.log_level,
        verify_key=args.verify_key,
        allow_older_generation=args.allow_older_generation,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        connection_max_age=args.connection_max_age,
        max_connections=args.max_connections,
        max_client_connections=args.max_client_connections,
        upload_memory=args.upload_memory,
    )
    return int(serve(cfg))
