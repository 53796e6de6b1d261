"""``hashlookup keygen``: an Ed25519 key pair for signing datasets."""

from __future__ import annotations

import argparse

from hashlookup.cli._common import EXIT_CLEAN, Context

DESCRIPTION = (
    "Write a new Ed25519 private key to NAME (PEM, mode 0600) and its public "
    "key to NAME.pub. Existing files are never overwritten."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``keygen``."""
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="NAME",
        help="private key file to create (public key: NAME.pub)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Create the key pair; print its files and key id."""
    from hashlookup.builders.signing import generate_signing_key

    pair = generate_signing_key(args.output)
    ctx.out.line(f"private key: {pair.private_key} (mode 0600, keep it secret)")
    ctx.out.line(f"public key: {pair.public_key}")
    ctx.out.line(f"key id: {pair.key_id}")
    return EXIT_CLEAN
