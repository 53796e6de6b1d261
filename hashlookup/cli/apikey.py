"""``hashlookup apikey``: add, revoke or list the API keys of the lookup
service (a keys file; the tokens themselves are never stored)."""

from __future__ import annotations

import argparse
import sys

from hashlookup.cli._common import EXIT_CLEAN, EXIT_ERROR, PROG, Context
from hashlookup.cli._options import float_arg

DESCRIPTION = (
    "Manage the keys file of 'hashlookup serve --api-keys FILE'. 'add' prints "
    "the new token once (only a salted hash is stored); 'revoke' revokes "
    "every active key of NAME (or the key with that id). A running server "
    "picks up changes within --reload-interval."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the actions of ``apikey`` and their options."""
    ak = p.add_subparsers(dest="apikey_command", metavar="ACTION", required=True)
    for action, text in (
        ("add", "create a key and print its token"),
        ("revoke", "revoke the keys of NAME (or a key id)"),
        ("list", "list keys (never tokens)"),
    ):
        q = ak.add_parser(action, help=text, description=text, allow_abbrev=False)
        q.add_argument(
            "--keys",
            required=True,
            metavar="FILE",
            help="keys file (created with mode 0600 if missing; rewritten "
            "atomically, mode 0600)",
        )
        if action != "list":
            q.add_argument(
                "name",
                metavar="NAME",
                help="who the key is for"
                if action == "add"
                else "the name whose active keys are revoked, or a key id",
            )
        if action == "add":
            q.add_argument(
                "--rate",
                type=float_arg(0.001),
                default=None,
                help="requests/s for this key (default: the server's)",
            )
            q.add_argument(
                "--burst",
                type=float_arg(1),
                default=None,
                help="bucket size for this key (default: the server's)",
            )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the action; tokens on stdout, notes on stderr."""
    ctx.out.flush()
    from hashlookup.server import add_key, read_keys, revoke_key

    if args.apikey_command == "add":
        token, key = add_key(args.keys, args.name, rate=args.rate, burst=args.burst)
        print(token)
        print(
            f"{PROG}: key {key.id} ({key.name}) added to {args.keys}; the "
            "token above is shown only now",
            file=sys.stderr,
        )
        return EXIT_CLEAN
    if args.apikey_command == "revoke":
        try:
            gone = revoke_key(args.keys, args.name)
        except KeyError as exc:
            print(f"{PROG}: error: {exc.args[0]}", file=sys.stderr)
            return EXIT_ERROR
        for k in gone:
            print(f"revoked {k.id} ({k.name})")
        return EXIT_CLEAN
    for k in read_keys(args.keys):  # list
        state = "active" if k.active else f"revoked {k.revoked}"
        print(f"{k.id}  {k.name}  created {k.created}  {state}")
    return EXIT_CLEAN
