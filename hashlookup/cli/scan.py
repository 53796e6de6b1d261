"""``hashlookup scan``: the command over hashlookup.scan() (output formats,
--report, progress line, signals)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from hashlookup._atomic import atomic_output
from hashlookup.cli._common import EXIT_CLEAN, EXIT_FOUND, PROG, CLIError, Context
from hashlookup.cli._options import (
    add_format,
    add_path,
    add_verify_key,
    signature_check,
)
from hashlookup.cli._output import csv_rows
from hashlookup.scan import ScanHit, ScanReport, scan

DESCRIPTION = (
    "Walk PATHs (directories recursively, symbolic links not followed unless "
    "asked), read each regular file once computing every digest the dataset "
    "has, and print the files found in it. Unreadable, vanished or changing "
    "files are reported on stderr and counted, never fatal. Files whose size "
    "matches no record are skipped unread when every record has a size."
)

_CSV_HEADER = ["path", "algorithm", "digest", "record", "labels", "mismatch"]


def format_hit(hit: ScanHit, fmt: str) -> bytes:
    """One output line (with its newline) for a hit."""
    if fmt == "text":
        line = f"{hit.path}\t{hit.algorithm}\t{hit.digest}\t{';'.join(hit.labels)}"
        if hit.mismatch:
            line += f"\tmismatch:{','.join(hit.mismatch)}"
        return line.encode("utf-8", "surrogateescape") + b"\n"
    if fmt == "jsonl":
        return (
            json.dumps(
                {
                    "path": hit.path,
                    "algorithm": hit.algorithm,
                    "digest": hit.digest,
                    "record": hit.record_id,
                    "labels": list(hit.labels),
                    "mismatch": list(hit.mismatch),
                }
            ).encode()
            + b"\n"
        )
    return csv_rows(
        [
            [
                hit.path,
                hit.algorithm,
                hit.digest,
                hit.record_id,
                ";".join(hit.labels),
                ";".join(hit.mismatch),
            ]
        ]
    )


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class Progress:
    """One status line on a terminal (files, bytes, hits, rate), redrawn by
    the scan's progress thread about 5 times a second and erased at the end
    or before any other line is written to the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.shown = False

    def update(self, r: ScanReport) -> None:
        rate = r.bytes_read / r.seconds / 1e6 if r.seconds > 0 else 0.0
        text = (
            f"scanning: {r.files_read:,} files read of {r.files_seen:,} seen, "
            f"{_human(r.bytes_read)}, {len(r.hits):,} hits, {r.errors:,} errors, "
            f"{rate:,.0f} MB/s, {r.seconds:,.1f} s"
        )
        width = shutil.get_terminal_size((80, 24)).columns - 1
        with self.lock:
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        with self.lock:
            if self.shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.shown = False


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the scan like Ctrl-C (state saved, partial report)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``scan``."""
    add_path(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory")
    add_format(p, "hit output: text (path, algorithm, digest, labels), jsonl, csv")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="reader/hasher threads (default: number of cores)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="skip paths or names matching GLOB (repeatable)",
    )
    p.add_argument("--min-size", type=int, default=None, metavar="BYTES")
    p.add_argument("--max-size", type=int, default=None, metavar="BYTES")
    p.add_argument("--follow-symlinks", action="store_true")
    p.add_argument(
        "--one-file-system",
        action="store_true",
        help="do not cross into other file systems",
    )
    p.add_argument(
        "--read-all",
        action="store_true",
        help="read every file, also those whose size matches no record",
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write the hits to FILE (atomically, at the end) instead of "
        "stdout; an interrupted scan leaves FILE.partial",
    )
    p.add_argument(
        "--resume",
        metavar="STATE",
        help="state file: record finished directories; if it exists, "
        "continue the interrupted scan it describes",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="status line on stderr (default: when stderr is a terminal)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no warnings, progress or summary on stderr",
    )
    add_verify_key(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Scan the trees; hits on stdout (or --report), a summary on stderr."""
    # scan() needs a Dataset (records, every digest of a hit), so the file
    # is opened as open_dataset opens it: an index of raw keys is refused.
    from hashlookup import open_dataset

    fmt = args.format
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(sys.stderr) if show and not args.quiet else None
    report_lines: list[bytes] = []
    header = csv_rows([_CSV_HEADER]) if fmt == "csv" else b""
    to_tty = args.report is None and sys.stdout.isatty()
    if args.report is not None:
        directory = os.path.dirname(os.path.abspath(args.report))
        if not os.path.isdir(directory):
            raise CLIError(f"{args.report}: directory does not exist")
    elif header:
        ctx.out.write(header)

    def on_hit(hit: ScanHit) -> None:
        ctx.found = True
        line = format_hit(hit, fmt)
        if args.report is not None:
            report_lines.append(line)
            return
        if to_tty and progress is not None:
            progress.clear()
        ctx.out.write(line)
        if to_tty:
            ctx.out.flush()

    def on_error(path: str, reason: str) -> None:
        if not args.quiet:
            if progress is not None:
                progress.clear()
            print(f"{PROG}: warning: {path}: {reason}", file=sys.stderr)

    def write_report(path: str) -> None:
        with atomic_output(path) as f:
            f.write(header)
            f.writelines(report_lines)

    for path in args.paths:  # a mistyped root is a usage error, not a scan error
        if not os.path.lexists(path):
            raise CLIError(f"{path}: no such file or directory")
    t0 = time.perf_counter()
    try:
        with (
            _sigterm_interrupts(),
            open_dataset(args.path, **signature_check(args)) as ds,
        ):
            report = scan(
                ds,
                args.paths,
                follow_symlinks=args.follow_symlinks,
                one_file_system=args.one_file_system,
                exclude=args.exclude or (),
                min_size=args.min_size,
                max_size=args.max_size,
                jobs=args.jobs,
                skip_unknown_sizes=not args.read_all,
                resume=args.resume,
                on_hit=on_hit,
                on_error=on_error,
                progress=progress.update if progress is not None else None,
            )
    except KeyboardInterrupt:
        if progress is not None:
            progress.clear()
        if args.report is not None:
            # Keep what was found (the state file, if any, has the hits of
            # every finished directory; this has all of them so far).
            with contextlib.suppress(OSError):
                write_report(args.report + ".partial")
        if args.resume is not None and not args.quiet:
            print(
                f"{PROG}: run the same command again to resume from {args.resume}",
                file=sys.stderr,
            )
        raise
    finally:
        if progress is not None:
            progress.clear()
    if args.report is not None:
        write_report(args.report)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.report + ".partial")
    ctx.out.flush()
    if not args.quiet:
        r = report
        mb = r.bytes_read / 1e6
        secs = time.perf_counter() - t0
        resumed = (
            f" (resumed: {r.resumed_units:,} directories from {args.resume})"
            if r.resumed_units
            else ""
        )
        print(
            f"{PROG}: scanned {r.files_seen:,} files: {r.files_read:,} read "
            f"({mb:,.1f} MB, {r.throughput:,.0f} MB/s, {'+'.join(r.hashed)}), "
            f"{r.skipped_size:,} skipped by size, {r.skipped_excluded:,} excluded, "
            f"{r.special:,} special, {r.errors:,} errors, {len(r.hits):,} hits "
            f"in {secs:.2f} s{resumed}",
            file=sys.stderr,
        )
    return EXIT_FOUND if report.hits else EXIT_CLEAN
