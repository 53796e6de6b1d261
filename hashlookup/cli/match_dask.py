"""``hashlookup match --workers N | --scheduler ADDRESS``: the inventory is
matched on Dask (``hashlookup.dask.match``) and the hits are written in the
formats of the single-machine `match` for tables (see docs/DASK.md)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
from typing import Any

from hashlookup.cli._common import CLIError, Context
from hashlookup.cli._output import csv_field, match_records


def run_dask_match(
    args: argparse.Namespace,
    ctx: Context,
    only: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> bool:
    """Run the match on a cluster and write the hits; returns whether
    anything was found."""
    try:
        from distributed import Client, LocalCluster

        from hashlookup.match import dask as hl_dask
    except ImportError as exc:
        raise CLIError(
            f"--workers/--scheduler need the dask extra (pip install "
            f"'hashlookup[dask]'): {exc}"
        ) from None
    if args.workers is not None and args.scheduler is not None:
        raise CLIError("give --workers N or --scheduler ADDRESS, not both")
    if args.annotate or args.invert:
        raise CLIError("--annotate and --invert are not available with Dask")
    if not args.files or "-" in args.files:
        raise CLIError("with Dask the inputs must be files (Parquet, CSV or TSV)")
    if args.column is None:
        raise CLIError("with Dask give the digest column: --column NAME")
    if args.input_format not in ("auto", "csv", "tsv", "parquet"):
        raise CLIError("with Dask the inputs must be Parquet, CSV or TSV files")
    dataset = os.path.abspath(args.path)
    paths = [os.path.abspath(p) for p in hl_dask.expand_paths(args.files)]
    # Built before the cluster starts: a missing file or column fails fast.
    hits = hl_dask.match(
        paths,
        dataset,
        column=args.column,
        only=only,
        exclude=exclude,
        skip_invalid=args.skip_invalid,
        delimiter=args.delimiter,
        require_signature=getattr(args, "verify_key", None),
    )
    with contextlib.ExitStack() as stack:
        if args.scheduler is not None:
            client = stack.enter_context(Client(args.scheduler))
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
            )
            client = stack.enter_context(Client(cluster))
        frame = client.compute(hits).result()
    order = {p: i for i, p in enumerate(paths)}
    frame = (
        frame.assign(_order=frame["file"].map(order))
        .sort_values(["_order", "row"], kind="stable")
        .drop(columns="_order")
    )
    write_hits(frame, args, ctx, paths)
    return len(frame) > 0


def write_hits(
    frame: Any, args: argparse.Namespace, ctx: Context, paths: list[str]
) -> None:
    """Hits of hashlookup.dask.match as the single-machine `match` writes
    table hits: text = the input rows as CSV, jsonl/csv = row, digest,
    record, labels (and file with several inputs)."""
    out = ctx.out
    if args.count:
        out.line(str(len(frame)))
        return
    multi = len(paths) > 1
    given = (
        dict(zip(paths, args.files, strict=False))
        if len(paths) == len(args.files)
        else {}
    )
    names = [given.get(p, p) for p in frame["file"].tolist()]
    if args.format == "text":
        cols = [
            c
            for c in frame.columns
            if c not in ("file", "row", "digest", "record", "labels")
        ]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for name, row in zip(names, frame[cols].itertuples(index=False), strict=True):
            cells = ["" if v is None or v != v else str(v) for v in row]
            if multi:
                line = io.StringIO()
                csv.writer(line, lineterminator="").writerow(cells)
                buf.write(f"{name}:{line.getvalue()}\n")
            else:
                writer.writerow(cells)
        out.write(buf.getvalue().encode("utf-8", "surrogateescape"))
        return
    rids = frame["record"].tolist()
    labels = [ls.split(";") if ls else [] for ls in frame["labels"].tolist()]
    if args.format == "jsonl":
        extras = [
            f', "record": {r}, "labels": {json.dumps(ls, ensure_ascii=False)}'
            for r, ls in zip(rids, labels, strict=True)
        ]
    else:
        extras = [
            f",{r},{csv_field(';'.join(ls))}"
            for r, ls in zip(rids, labels, strict=True)
        ]
        cols = (["file"] if multi else []) + ["row", "digest", "record", "labels"]
        out.write((",".join(cols) + "\n").encode())
    if not multi:
        data = match_records(
            args.format,
            None,
            "row",
            frame["row"].tolist(),
            frame["digest"].tolist(),
            None,
            extras,
        )
        out.write(data)
        return
    for name in dict.fromkeys(names):
        mask = [n == name for n in names]
        part = frame[mask]
        sub = [x for x, m in zip(extras, mask, strict=True) if m]
        out.write(
            match_records(
                args.format,
                name,
                "row",
                part["row"].tolist(),
                part["digest"].tolist(),
                None,
                sub,
            )
        )
