"""``hashlookup sign``: an Ed25519 signature of a dataset or index file."""

from __future__ import annotations

import argparse

from hashlookup.cli._common import (
    EXIT_CLEAN,
    Context,
    refuse_same_file,
    refuse_writing_directory,
)
from hashlookup.cli._options import add_path

DESCRIPTION = (
    "Verify DATASET completely (every checksum, every structure), then write "
    "an Ed25519 signature of all its bytes to DATASET.sig (atomically). "
    "Readers check it with --verify-key / require_signature=."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``sign``."""
    add_path(p)
    p.add_argument(
        "--key",
        required=True,
        metavar="NAME",
        help="private key file (from hashlookup keygen)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="SIG",
        help="signature file to write (default: DATASET.sig)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Verify and sign the file; print the signature's facts."""
    from hashlookup.builders.signing import sign_dataset

    output = args.output if args.output is not None else args.path + ".sig"
    refuse_writing_directory(output, "-o")
    refuse_same_file(output, "-o", [args.path, args.key])
    report = sign_dataset(args.path, args.key, output=args.output)
    ctx.out.line(
        f"signed: {report.path} ({report.file_size} bytes) -> "
        f"{report.signature_path}, key id {report.key_id}, "
        f"{report.seconds:.2f} s"
    )
    return EXIT_CLEAN
