# Stub for the private Cython extension hashlookup._lookup (see _lookup.pyx).
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pyroaring import FrozenBitMap
from typing_extensions import Buffer

from hashlookup._core import KeyTable, RecordTable
from hashlookup._types import Digest, Labels
from hashlookup.store.attributes import AttributeStore
from hashlookup.store.generation import Match

class Attributes(Mapping[str, str]):
    def __init__(
        self, values: Mapping[str, str] | Iterable[tuple[str, str]] = ()
    ) -> None: ...
    def __getitem__(self, name: str) -> str: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def __hash__(self) -> int: ...

EMPTY_ATTRIBUTES: Attributes

class LabelFilter:
    def __call__(self, record_id: int) -> bool: ...

class LabelSet:
    def _set_entries(
        self,
        buf: Buffer,
        base: int,
        records: int,
        what: str,
        entries: dict[str, tuple[int, int, int]],
    ) -> None: ...
    @property
    def entries(self) -> dict[str, tuple[int, int, int]]: ...
    def bitmap(self, label: str) -> FrozenBitMap: ...
    def pairs(self) -> tuple[tuple[str, FrozenBitMap], ...]: ...
    def of(self, record_id: int) -> tuple[str, ...]: ...
    def union(self, labels: Iterable[str]) -> FrozenBitMap: ...

class TableSet:
    def __init__(
        self,
        tables: tuple[KeyTable | None, KeyTable | None, KeyTable | None],
        records: RecordTable | None,
        labels: LabelSet | None,
        suppress: tuple[str, ...],
        generation: int,
        built: str,
        match: type[Match],
        attributes: AttributeStore | None = None,
    ) -> None: ...
    def find(self, digest: Digest) -> tuple[KeyTable, int] | None: ...
    def lookup(
        self, digest: Digest, only: Labels = None, exclude: Labels = None
    ) -> Match | None: ...
    def hit(
        self, algorithm: int, row: int, only: Labels = None, exclude: Labels = None
    ) -> Match | None: ...
    def match(self, algorithm: int, record_id: int) -> Match: ...
    def record_filter(
        self, only: Labels = None, exclude: Labels = None
    ) -> Callable[[int], bool] | None: ...

class TableSetRef:
    def _set_current(self, tables: TableSet | None) -> None: ...
    def _set_auto_reload(
        self,
        enabled: bool,
        interval: float,
        on_interval: Callable[[Any], object],  # called with self (a Dataset)
    ) -> None: ...
    def _reload_due(self) -> bool: ...
    def lookup(
        self, digest: Digest, only: Labels = None, exclude: Labels = None
    ) -> Match | None: ...
    def find_row(self, digest: Digest) -> tuple[KeyTable, int] | None: ...
