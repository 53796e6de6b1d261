"""hashlookup.dask on a real LocalCluster with worker processes.

One cluster (2 processes, 1 thread each) serves the whole module.  Hits are
compared with a Python set oracle and with the single-machine matcher.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hashlookup
from hashlookup import dask as hl_dask
from hashlookup.cli import main
from hashlookup.match import dask as match_dask

SEED = 0x444B  # "DK"

# Benign notices of distributed on a loaded machine (warnings are errors in
# this project's pytest configuration).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Creating scratch directories:UserWarning"),
    pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning"),
]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


class Data:
    def __init__(self, root: Path) -> None:
        rng = np.random.default_rng(SEED)
        keys = rng.integers(0, 256, size=(6000, 16), dtype=np.uint8)
        hexes = [bytes(k).hex() for k in keys]
        self.known, self.others = hexes[:2000], hexes[2000:]
        self.known_set = set(self.known)
        half = root / "a.txt"
        half.write_text("".join(h + "\n" for h in self.known[:1000]))
        rest = root / "b.txt"
        rest.write_text("".join(h + "\n" for h in self.known[1000:]))
        self.dataset = str(root / "known.hlx")
        hashlookup.build_dataset({"a": str(half), "b": str(rest)}, self.dataset)
        self.root = root
        self.files = []
        self.cells: dict[str, list[str | None]] = {}
        for k in range(3):
            cells: list[str | None] = []
            for i in range(3000):
                pool = self.known if rng.random() < 0.1 else self.others
                h = pool[int(rng.integers(len(pool)))]
                if i % 13 == 0:
                    cells.append(None)
                elif i % 5 == 0:
                    cells.append(h.upper())
                else:
                    cells.append(h)
            path = root / f"part{k}.parquet"
            pq.write_table(
                pa.table({"id": np.arange(3000) + 10000 * k, "md5": cells}),
                path,
                row_group_size=1000,
            )
            self.files.append(str(path))
            self.cells[str(path)] = cells

    def oracle(self) -> list[tuple[str, int, str, str]]:
        """(file, row, digest, label) of every hit, in input order."""
        out = []
        for path in self.files:
            for i, c in enumerate(self.cells[path], 1):
                if c is not None and c.lower() in self.known_set:
                    d = c.lower()
                    label = "source:a" if self.known.index(d) < 1000 else "source:b"
                    out.append((path, i, d, label))
        return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return Data(tmp_path_factory.mktemp("dask"))


def _rows(frame: pd.DataFrame) -> list[tuple[str, int, str, str]]:
    frame = frame.sort_values(["file", "row"])
    return list(
        zip(
            frame["file"],
            frame["row"].astype(int),
            frame["digest"],
            frame["labels"],
            strict=True,
        )
    )


def test_paths_match_oracle(client, data: Data) -> None:
    hits = hl_dask.match(data.files, data.dataset, column="md5")
    assert hits.npartitions == 9  # one per row group
    frame = hits.compute()
    assert list(frame.columns) == [
        "file",
        "row",
        "id",
        "md5",
        "digest",
        "record",
        "labels",
    ]
    assert _rows(frame) == sorted(data.oracle())
    # the input columns of each hit are its own row
    for path, row, ident in zip(frame["file"], frame["row"], frame["id"], strict=True):
        assert ident == data.files.index(path) * 10000 + row - 1
    # labels filter on the workers as in Dataset.lookup
    only_b = hl_dask.match(
        data.root / "part*.parquet", data.dataset, column="md5", only="source:b"
    ).compute()
    assert _rows(only_b) == sorted(h for h in data.oracle() if h[3] == "source:b")


def test_dataframe_input_matches_single_machine(
    client, data: Data, tmp_path: Path
) -> None:
    ddf = dd.read_parquet(data.files)
    frame = hl_dask.match(ddf, data.dataset, column="md5").compute()
    assert list(frame.columns) == ["id", "md5", "digest", "record", "labels"]
    want = sorted(data.files.index(f) * 10000 + r - 1 for f, r, _, _ in data.oracle())
    assert sorted(frame["id"].tolist()) == want
    # the single-machine matcher over the same files agrees
    from hashlookup.match.inventory import Inventory, match_inventory
    from hashlookup.match.keys import KeyMatcher

    ds = hashlookup.open_dataset(data.dataset)
    try:
        single = []
        for piece in match_inventory(
            lambda _i: KeyMatcher(ds),
            [Inventory(f, column="md5") for f in data.files],
            jobs=2,
        ):
            sel = piece.select()
            single += [
                (piece.inventory.path, n, d)
                for n, d in zip(
                    piece.number_list(sel), piece.hex_digests(sel), strict=True
                )
            ]
    finally:
        ds.close()
    assert single == [(f, r, d) for f, r, d, _ in data.oracle()]


def test_cached_open_per_process(client, data: Data) -> None:
    """Every task of a worker process uses one mapping of the dataset."""
    hl_dask.match(data.files, data.dataset, column="md5").compute()

    def opened() -> tuple[int, int]:
        return os.getpid(), len(match_dask._cache)

    counts = client.run(opened)
    assert len(counts) == 2
    assert all(n == 1 for _, n in counts.values())


def test_errors(client, data: Data, tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"md5": [data.known[0], "nothex" * 5 + "zz", None]}), bad)
    with pytest.raises(
        hashlookup.InputError, match=r"bad\.parquet: row 2: column 'md5'"
    ):
        hl_dask.match(str(bad), data.dataset, column="md5").compute()
    frame = hl_dask.match(
        str(bad), data.dataset, column="md5", skip_invalid=True
    ).compute()
    assert frame["row"].tolist() == [1]
    with pytest.raises(hashlookup.InputError, match="no column 'sha1'"):
        hl_dask.match(data.files, data.dataset, column="sha1")
    with pytest.raises(FileNotFoundError):
        hl_dask.match(data.files, str(tmp_path / "missing.hlx"), column="md5")


def test_cli_workers(data: Data, capsys: pytest.CaptureFixture[str], client) -> None:
    """`--scheduler` on the module's cluster gives the single-machine output."""
    address = client.scheduler.address
    args = ["match", data.dataset, *data.files, "--column", "md5", "--format", "jsonl"]
    code = main(args)
    single = capsys.readouterr().out
    assert code == 1
    code = main([*args, "--scheduler", address])
    distributed_out = capsys.readouterr().out
    assert code == 1
    assert distributed_out == single
    got = [json.loads(line) for line in single.splitlines()]
    assert [(g["file"], g["row"], g["digest"]) for g in got] == [
        (f, r, d) for f, r, d, _ in data.oracle()
    ]
    assert main([*args[:-2], "--count", "--scheduler", address]) == 1
    assert capsys.readouterr().out.strip() == str(len(data.oracle()))


def test_cli_local_cluster_and_errors(
    data: Data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--workers 1` starts its own LocalCluster (processes) for the run."""
    path = data.files[0]
    args = ["match", data.dataset, path, "--column", "md5", "--format", "csv"]
    assert main(args) == 1
    single = capsys.readouterr().out
    assert main([*args, "--workers", "1"]) == 1
    assert capsys.readouterr().out == single
    # usage errors are found before any cluster starts
    text = tmp_path / "list.txt"
    text.write_text(data.known[0] + "\n")
    for bad, fragment in (
        [[text, "--column", "md5"], "Parquet"],
        [[path], "--column"],
        [[path, "--column", "md5", "--annotate"], "--annotate"],
        [[tmp_path / "none.parquet", "--column", "md5"], "none"],
    ):
        assert main(["match", data.dataset, *map(str, bad), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.startswith("hashlookup: error: "), err


def test_signed_dataset_checked_on_the_workers(
    client, data: Data, tmp_path: Path
) -> None:
    """require_signature: checked when the graph is built and again by every
    worker that opens the file; a file replaced in between (not signed by the
    key) is refused by the workers instead of being matched."""
    from hashlookup.builders.signing import generate_signing_key, sign_dataset

    signed = tmp_path / "signed.hlx"
    shutil.copyfile(data.dataset, signed)
    keys = generate_signing_key(tmp_path / "signer")
    other = generate_signing_key(tmp_path / "other")
    sign_dataset(signed, keys.private_key)
    hits = hl_dask.match(
        data.files, signed, column="md5", require_signature=keys.public_key
    ).compute()
    assert _rows(hits) == sorted(data.oracle())
    with pytest.raises(hashlookup.SignatureError):
        hl_dask.match(
            data.files, signed, column="md5", require_signature=other.public_key
        )
    lazy = hl_dask.match(
        data.files, signed, column="md5", require_signature=keys.public_key
    )
    fresh = tmp_path / "fresh.hlx"
    hashlookup.build_dataset({"a": str(data.root / "a.txt")}, str(fresh))
    os.replace(fresh, signed)  # a new file, the old .sig does not cover it
    with pytest.raises(hashlookup.SignatureError):
        lazy.compute()
