"""``hashlookup scan``: the command over hashlookup.scan() (output formats,
--report, progress line, signals)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import _thread
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping

from hashlookup._atomic import atomic_output
from hashlookup.cli._common import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FOUND,
    PROG,
    CLIError,
    Context,
    refuse_same_file,
    refuse_writing_directory,
    warn,
)
from hashlookup.cli._fast import boolean_optional
from hashlookup.cli._near import add_scan_near_options, near_summary, scan_near_columns
from hashlookup.cli._open import label_filters
from hashlookup.cli._options import (
    add_filter_options,
    add_format,
    add_path,
    add_verify_key,
    int_arg,
    label_options,
    signature_check,
)
from hashlookup.cli._output import csv_rows
from hashlookup.scan import ScanHit, ScanInterrupted, ScanReport, scan

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, TextIO

DESCRIPTION = (
    "Walk PATHs and the paths listed by --files-from (directories "
    "recursively; a PATH that is a symbolic link is followed, links inside "
    "directories only with --follow-symlinks), read each regular file once "
    "computing every digest the dataset has, and print the files found in "
    "it. Unreadable, vanished or changing files are reported on stderr and "
    "counted: the scan goes on, and the exit status says errors occurred. "
    "Files whose size matches no record are skipped unread when every record "
    "has a size. When the dataset has PDQ hashes, image files (told by content) "
    "are PDQ-hashed too and their near matches printed with distance and quality."
)

#: PATHs are optional (--files-from): options may come between them.
INTERMIXED = True

#: Exit status of scan, shown in its --help (docs/CLI.md has the reasons).
EXIT_STATUS = (
    "Exit status: 1 when any file was found (even if errors occurred: a hit "
    "is actionable), else 2 when any file or directory could not be read "
    "(or another error occurred), else 0; 130 when interrupted."
)

_CSV_HEADER = ["path", "algorithm", "digest", "record", "labels", "mismatch"]


def format_miss(path: str, fmt: str) -> bytes:
    """One output line (with its newline) for a file not in the dataset
    (--invert): the path alone."""
    if fmt == "text":
        return path.encode("utf-8", "surrogateescape") + b"\n"
    if fmt == "jsonl":
        import json  # here: a scan without jsonl output never needs it

        return json.dumps({"path": path}).encode() + b"\n"
    return csv_rows([[path]])


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def format_hit(
    hit: ScanHit,
    fmt: str,
    near: bool = False,
    attributes: Mapping[str, str] | None = None,
) -> bytes:
    """One output line (with its newline) for a hit; `near`: the scan
    hashes images (CSV rows get the distance and quality columns); with
    `attributes` (--attributes), the record's attributes too."""
    import json  # here: a scan without hits never needs it

    if fmt == "text":
        line = f"{hit.path}\t{hit.algorithm}\t{hit.digest}\t{';'.join(hit.labels)}"
        if hit.mismatch:
            line += f"\tmismatch:{','.join(hit.mismatch)}"
        if hit.distance is not None:
            line += f"\tdistance={hit.distance}\tquality={hit.quality}"
        if attributes:  # a file name may hold a tab or a newline
            line += "".join(
                "\t" + f"{k}={v}".translate(_TEXT_ESCAPES)
                for k, v in attributes.items()
            )
        return line.encode("utf-8", "surrogateescape") + b"\n"
    if fmt == "jsonl":
        rec: dict[str, Any] = {
            "path": hit.path,
            "algorithm": hit.algorithm,
            "digest": hit.digest,
            "record": hit.record_id,
            "labels": list(hit.labels),
            "mismatch": list(hit.mismatch),
        }
        if hit.distance is not None:
            rec.update(distance=hit.distance, quality=hit.quality)
        if attributes is not None:
            rec["attributes"] = dict(attributes)
        return json.dumps(rec).encode() + b"\n"
    row: list[object] = [
        hit.path,
        hit.algorithm,
        hit.digest,
        hit.record_id,
        ";".join(hit.labels),
        ";".join(hit.mismatch),
    ]
    if near:
        row += ["", ""] if hit.distance is None else [hit.distance, hit.quality]
    if attributes is not None:
        row.append(json.dumps(dict(attributes), ensure_ascii=False))
    return csv_rows([row])


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _columns(stream: TextIO) -> int:
    """Width of the terminal ``stream`` is drawn on (the progress line goes
    to stderr, whatever stdout is), else $COLUMNS, else 80."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return max(int(os.environ.get("COLUMNS", "")), 20)
    except ValueError:
        return 80


def read_file_list(path: str) -> list[str]:
    """The paths listed in ``path`` (``-``: standard input) for
    ``--files-from``: NUL-separated if the list holds a NUL byte (``find
    -print0``), else one per line (a trailing carriage return is dropped);
    empty entries are skipped."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if b"\0" in data:
        raw = data.split(b"\0")
    else:
        raw = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    return [os.fsdecode(item) for item in raw if item]


class Progress:
    """One status line on a terminal (files, bytes, hits, rate), redrawn by
    the scan's progress thread about 5 times a second and erased at the end
    or before any other line is written to the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = _thread.allocate_lock()  # threading.Lock, without threading
        self.shown = False

    def update(self, r: ScanReport) -> None:
        rate = r.bytes_read / r.seconds / 1e6 if r.seconds > 0 else 0.0
        text = (
            f"scanning: {r.files_read:,} files read of {r.files_seen:,} seen, "
            f"{_human(r.bytes_read)}, {len(r.hits):,} hits, {r.errors:,} errors, "
            f"{rate:,.0f} MB/s, {r.seconds:,.1f} s"
        )
        width = _columns(self.stream) - 1
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

    # _signal is what signal wraps (its enums cost 3 M instructions of
    # start-up); the previous handler is given back as it was got.
    try:
        old = _signal.signal(_signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        _signal.signal(_signal.SIGTERM, old)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the options of ``scan``."""
    add_path(p)
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="file or directory to scan (followed if it is a symbolic link); "
        "optional with --files-from",
    )
    p.add_argument(
        "--files-from",
        metavar="FILE",
        default=None,
        help="also scan the paths listed in FILE ('-': standard input), one "
        "per line or NUL-separated (find -print0); like md5deep -f and "
        "clamscan --file-list. A listed path that is missing is an error of "
        "the scan (counted, exit 2), not a usage error",
    )
    add_format(p, "hit output: text (path, algorithm, digest, labels), jsonl, csv")
    p.add_argument(
        "--jobs",
        type=int_arg(1),
        default=None,
        metavar="N",
        help="reader/hasher threads (default: number of cores)",
    )
    p.add_argument(
        "--exclude-path",
        dest="exclude_path",
        action="append",
        metavar="GLOB",
        help="skip files and directories whose path or base name matches GLOB "
        "(repeatable; a directory skipped is not entered)",
    )
    p.add_argument(
        "--exclude",
        dest="exclude_path_old",
        action="append",
        metavar="GLOB",
        help="deprecated spelling of --exclude-path",
    )
    add_filter_options(p, old_exclude=False)
    p.add_argument(
        "--min-size",
        type=int_arg(0),
        default=None,
        metavar="BYTES",
        help="do not read files smaller than BYTES (counted as skipped by size)",
    )
    p.add_argument(
        "--max-size",
        type=int_arg(0),
        default=None,
        metavar="BYTES",
        help="do not read files larger than BYTES (counted as skipped by size)",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symbolic links found inside directories too (a PATH given "
        "is always followed); a directory reached twice is scanned once",
    )
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
        "--invert",
        action="store_true",
        help="print the files NOT in the dataset instead of the hits (like "
        "hashdeep -x): files read whose digests match no record (after the "
        "label filters) and files no record has the size of; not with --resume",
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
        action=boolean_optional(p),
        default=None,
        help="status line on stderr (default: when stderr is a terminal)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no warnings, progress or summary on stderr",
    )
    add_scan_near_options(p)
    p.add_argument(
        "--attributes",
        action="store_true",
        help="show each hit's record attributes (text: NAME=VALUE fields, tab, "
        "newline and backslash escaped; jsonl: an 'attributes' object; csv: "
        "an 'attributes' column holding a JSON object)",
    )
    add_verify_key(p)


def _roots(args: argparse.Namespace) -> list[str]:
    """The PATHs, then the --files-from list; a mistyped PATH is a usage
    error (a listed path that is missing is an error of the scan)."""
    for path in args.paths:
        if not os.path.lexists(path):
            raise CLIError(f"{path}: no such file or directory")
    roots = list(args.paths)
    if args.files_from is not None:
        listed = read_file_list(args.files_from)
        if not listed and not args.quiet:
            warn(f"--files-from {args.files_from}: lists no path")
        roots += listed
    elif not roots:
        raise CLIError("nothing to scan: give PATHs or --files-from FILE")
    return roots


def _check_outputs(args: argparse.Namespace) -> None:
    """--report: a file in an existing directory that is none of the inputs."""
    if args.report is None:
        return
    directory = os.path.dirname(os.path.abspath(args.report))
    if not os.path.isdir(directory):
        raise CLIError(f"{args.report}: directory does not exist")
    refuse_writing_directory(args.report, "--report")
    inputs = [args.path, args.files_from or "", args.resume or ""]
    refuse_same_file(args.report, "--report", [x for x in inputs if x])


def _summary(r: ScanReport, seconds: float, invert: bool = False) -> str:
    misses = f", {r.misses:,} not in the dataset" if invert else ""
    return (
        f"{r.files_seen:,} files: {r.files_read:,} read "
        f"({r.bytes_read / 1e6:,.1f} MB, {r.throughput:,.0f} MB/s, "
        f"{'+'.join(r.hashed)}), {r.skipped_size:,} skipped by size, "
        f"{r.skipped_excluded:,} excluded, {r.special:,} special, "
        f"{r.errors:,} errors, {len(r.hits):,} hits{near_summary(r)}{misses} in "
        f"{seconds:.2f} s"
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Scan the trees; hits on stdout (or --report), a summary on stderr."""
    # scan() needs a Dataset (records, every digest of a hit), so the file
    # is opened as open_dataset opens it: an index of raw keys is refused.
    from hashlookup import open_dataset

    fmt = args.format
    exclude = list(args.exclude_path or ())
    if args.exclude_path_old:
        warn(
            "--exclude GLOB is deprecated in scan: write --exclude-path GLOB "
            "(--exclude-label LABEL filters hits by label)"
        )
        exclude += args.exclude_path_old
    only, exclude_labels = label_options(args)
    invert = args.invert
    if invert and args.resume is not None:
        raise CLIError(
            "--invert cannot be combined with --resume (the state file "
            "records hits only)"
        )
    _check_outputs(args)
    roots = _roots(args)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(sys.stderr) if show and not args.quiet else None
    report_lines: list[bytes] = []
    header = b""
    show_attributes = bool(args.attributes) and not invert
    to_tty = args.report is None and sys.stdout.isatty()
    near = False

    opened: list[Any] = []  # the dataset, once open (for --attributes)

    def on_hit(hit: ScanHit) -> None:
        ctx.found = True
        attributes = None
        if show_attributes:
            from hashlookup.store.attributes import attributes_of

            attributes = attributes_of(opened[0], [hit.record_id])[0]
        emit(format_hit(hit, fmt, near, attributes))

    def on_miss(path: str) -> None:
        ctx.found = True
        emit(format_miss(path, fmt))

    def emit(line: bytes) -> None:
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

    t0 = time.perf_counter()
    try:
        with (
            _sigterm_interrupts(),
            open_dataset(args.path, **signature_check(args)) as ds,
        ):
            opened.append(ds)
            filters = label_filters(ds, args.path, only, exclude_labels)
            near = scan_near_columns(args, ds)
            if fmt == "csv":
                cols = [*_CSV_HEADER, "distance", "quality"] if near else _CSV_HEADER
                if show_attributes:
                    cols = [*cols, "attributes"]
                header = csv_rows([["path"]] if invert else [cols])
                if args.report is None:
                    ctx.out.write(header)
            report = scan(
                ds,
                roots,
                follow_symlinks=args.follow_symlinks,
                one_file_system=args.one_file_system,
                exclude=exclude,
                min_size=args.min_size,
                max_size=args.max_size,
                jobs=args.jobs,
                skip_unknown_sizes=not args.read_all,
                resume=args.resume,
                only_labels=filters[0],
                exclude_labels=filters[1],
                on_hit=None if invert else on_hit,
                on_miss=on_miss if invert else None,
                on_error=on_error,
                progress=progress.update if progress is not None else None,
                pdq=args.pdq,
                max_distance=args.max_distance,
                min_quality=args.min_quality,
                dihedral=args.dihedral,
            )
    except KeyboardInterrupt as exc:
        if progress is not None:
            progress.clear()
        if args.report is not None:
            # Keep what was found (the state file, if any, has the hits of
            # every finished directory; this has all of them so far).
            with contextlib.suppress(OSError):
                write_report(args.report + ".partial")
        if not args.quiet:
            if isinstance(exc, ScanInterrupted):
                done = _summary(exc.report, time.perf_counter() - t0, invert)
                print(f"{PROG}: interrupted after {done}", file=sys.stderr)
            if args.report is not None and report_lines:
                print(
                    f"{PROG}: the {'files listed' if invert else 'hits'} so far "
                    f"are in {args.report}.partial",
                    file=sys.stderr,
                )
            if args.resume is not None:
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
        notes = ""
        if r.restarted:
            notes = (
                f" ({args.resume} recorded a finished scan: this is a new scan, "
                "started over)"
            )
        elif r.resumed_units:
            notes = f" (resumed: {r.resumed_units:,} directories from {args.resume})"
        print(
            f"{PROG}: scanned {_summary(r, time.perf_counter() - t0, invert)}{notes}",
            file=sys.stderr,
        )
    # As clamscan: a hit takes priority (it is actionable); else any error
    # (a file or directory not read) makes the result incomplete.  With
    # --invert a file listed (not in the dataset) is what is actionable.
    if report.misses if invert else report.hits:
        return EXIT_FOUND
    return EXIT_ERROR if report.errors else EXIT_CLEAN
