"""Record attributes in a dataset build (docs/DATASETS.md).

The dataset builder hands every batch's attribute columns to an
AttributeColumns and, once records are numbered, asks it for the two
attribute sections (none when no input carried any attribute, so a dataset
without attributes is byte for byte what it was before).  A record merged
from several input rows keeps, per attribute name, the value of its first
row in input order that has one (the records of the dataset being updated
come first, so they keep theirs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hashlookup.store import attributes as _attributes
from hashlookup.store import format as _format


class AttributeColumns:
    """The attribute values of every input row read so far.

    Attributes
    ----------
    blocks : dict[str, list[tuple[int, list]]]
        Attribute name -> (first row, values) of each batch that has it.
    """

    def __init__(self) -> None:
        self.blocks: dict[str, list[tuple[int, list[str | None]]]] = {}

    def add(self, batch: Any, first_row: int) -> None:
        """Keep a batch's attribute columns.

        Parameters
        ----------
        batch : RecordBatch
            A batch whose rows are numbered from `first_row` on.
        first_row : int
            The build's row number of the batch's first row.

        Raises
        ------
        ValueError
            A column whose length is not the batch's.
        """
        for name, values in batch.attributes.items():
            if len(values) != len(batch):
                raise ValueError(
                    f"attribute {name!r}: {len(values)} values for {len(batch)} records"
                )
            self.blocks.setdefault(name, []).append((first_row, list(values)))

    def sections(
        self, rows: int, record_of: np.ndarray, records: int
    ) -> list[_format.SectionData]:
        """The attribute sections of the dataset (empty without attributes).

        Parameters
        ----------
        rows : int
            Number of input rows.
        record_of : numpy.ndarray
            Per row, its record id (-1: dropped).
        records : int
            Number of records.

        Returns
        -------
        list of SectionData
            The strings and refs sections, or nothing.
        """
        if not self.blocks:
            return []
        names = list(self.blocks)
        _attributes.check_names(names)
        columns = []
        for name in names:
            full = np.full(rows, None, dtype=object)
            for first, values in self.blocks[name]:
                col = np.empty(len(values), dtype=object)
                col[:] = values
                full[first : first + len(values)] = col
            has = np.frompyfunc(bool, 1, 1)(full).astype(bool) & (record_of >= 0)
            taken = np.flatnonzero(has)
            # np.unique's index is the first occurrence: the first row wins
            ids, first_at = np.unique(record_of[taken], return_index=True)
            out = np.full(records, None, dtype=object)
            out[ids] = full[taken[first_at]]
            columns.append(out.tolist())
        strings, refs, count, width = _attributes.encode(names, columns)
        return [
            _format.SectionData(
                _format.KIND_ATTR_STRINGS, strings, flags=0, params=(count, 0, 0)
            ),
            _format.SectionData(
                _format.KIND_ATTR_REFS,
                refs,
                flags=0,
                params=(records, len(names), width),
            ),
        ]


def stored_columns(
    generation: Any, start: int, stop: int
) -> dict[str, list[str | None]]:
    """The attributes of records start..stop-1 of an open generation, as
    RecordBatch.attributes columns ({} when it has none): what an update
    carries over.

    Parameters
    ----------
    generation : hashlookup.store.generation.Generation
        An open dataset generation.
    start, stop : int
        The record id range.

    Returns
    -------
    dict[str, list of str or None]
        Attribute name -> one value per record (None: absent).
    """
    store: _attributes.AttributeStore | None = generation.attributes
    if store is None:
        return {}
    return store.columns(start, stop)


class CodeTables:
    """The code tables of a build (NSRL's products, operating systems and
    manufacturers) and the NSRL versions of its sources.

    Per table and code, the first row in input order wins (the dataset
    being updated comes first), as for record attributes; a table's
    columns are the union of its sources' columns, in order of appearance.

    Attributes
    ----------
    columns : dict[str, list[str]]
        Table name -> its columns (the key first).
    rows : dict[str, dict[str, dict[str, str]]]
        Table name -> code -> row.
    versions : list of str
        The distinct NSRL versions of the sources, in input order.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[str]] = {}
        self.rows: dict[str, dict[str, dict[str, str]]] = {}
        self.versions: list[str] = []

    def add(
        self,
        tables: Mapping[str, tuple[Sequence[str], Mapping[str, Mapping[str, str]]]],
        version: str | None = None,
    ) -> None:
        """Keep a source's tables and NSRL version.

        Parameters
        ----------
        tables : mapping
            Table name -> (columns, code -> row), as ImportReport.tables.
        version : str, optional
            The source's NSRL version ("" or None: none).
        """
        for name, (columns, rows) in tables.items():
            have = self.columns.setdefault(name, [name])
            have += [c for c in columns if c not in have]
            into = self.rows.setdefault(name, {})
            for code, row in rows.items():
                if code and code not in into:
                    into[code] = dict(row)
        if version and version not in self.versions:
            self.versions.append(version)

    def carry(self, tables: Mapping[str, Any], version: str | None) -> None:
        """Keep the code tables of an open generation (an update's old one).

        Parameters
        ----------
        tables : mapping of str to CodeTable
            Generation.code_tables.
        version : str or None
            Generation.nsrl_version (several joined by ", ").
        """
        self.add(
            {
                n: (list(t.columns), {c: dict(t[c]) for c in t})
                for n, t in tables.items()
            }
        )
        for v in (version or "").split(", "):
            if v and v not in self.versions:
                self.versions.append(v)

    def sections(self) -> list[_format.SectionData]:
        """One code table section per table (none without tables).

        Returns
        -------
        list of SectionData
            The sections, by table name.
        """
        from hashlookup.store.code_tables import encode

        return [
            encode(self.columns[name], self.rows[name])
            for name in sorted(self.rows)
            if self.rows[name]
        ]

    @property
    def nsrl_version(self) -> str | None:
        """The sources' NSRL versions joined by ", ", None without any."""
        return ", ".join(self.versions) or None
