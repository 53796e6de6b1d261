"""The `hashlookup serve` and `hashlookup apikey` commands (called from
hashlookup/cli.py, which only declares their options)."""

from __future__ import annotations

import argparse
import os
import sys

from hashlookup.server._config import ServerConfig


def _missing_extra(exc: ImportError) -> int:
    print(f"hashlookup: error: the lookup service needs the server extra "
          f"(pip install 'hashlookup[server]'): {exc}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import httptools  # noqa: F401
        import orjson  # noqa: F401
        import uvicorn  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError as exc:
        return _missing_extra(exc)
    from hashlookup.server._run import serve

    if args.no_auth and args.api_keys:
        raise ValueError("--no-auth and --api-keys exclude each other")
    cfg = ServerConfig(
        dataset=args.path, host=args.host, port=args.port,
        workers=args.workers or os.cpu_count() or 1,
        api_keys=args.api_keys, no_auth=args.no_auth,
        rate=args.rate_limit, burst=args.burst or max(1.0, 2 * args.rate_limit),
        max_batch=args.max_batch, max_body=args.max_body,
        audit_log=None if args.no_audit_log else args.audit_log,
        reload_interval=args.reload_interval, max_age=args.max_age,
        bloom_dir=args.bloom_dir or "", bloom_fpr=args.bloom_fpr,
        log_level=args.log_level, verify_key=args.verify_key)
    return serve(cfg)


def cmd_apikey(args: argparse.Namespace) -> int:
    from hashlookup.server._keys import add_key, read_keys, revoke_key

    if args.apikey_command == "add":
        token, key = add_key(args.keys, args.name, rate=args.rate, burst=args.burst)
        print(token)
        print(f"hashlookup: key {key.id} ({key.name}) added to {args.keys}; the "
              "token above is shown only now", file=sys.stderr)
        return 0
    if args.apikey_command == "revoke":
        try:
            gone = revoke_key(args.keys, args.name)
        except KeyError as exc:
            print(f"hashlookup: error: {exc.args[0]}", file=sys.stderr)
            return 2
        for k in gone:
            print(f"revoked {k.id} ({k.name})")
        return 0
    for k in read_keys(args.keys):   # list
        state = "active" if k.active else f"revoked {k.revoked}"
        print(f"{k.id}  {k.name}  created {k.created}  {state}")
    return 0
