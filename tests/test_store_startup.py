"""What opening a dataset does without json, dataclasses and pyroaring:
the JSON sections read by the C scanner (always json.loads's answer and
errors), a hit's labels answered from the label directory where it can
(always the bitmaps' answer), and the plain classes that replaced
dataclasses (Invalid, the section table's entries)."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hashlookup
from hashlookup.errors import IndexFormatError
from hashlookup.store import format as _format
from hashlookup.store import labels as _labels
from hashlookup.store.dataset import Invalid

# -- JSON ---------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner),
    max_leaves=25,
)


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN, bools not ints, floats not ints."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _outcome(text: str) -> tuple[str, object]:
    """("value", v) or ("error", type and message) of json.loads."""
    try:
        return "value", json.loads(text)
    except (ValueError, RecursionError) as e:
        return "error", (type(e), str(e))


def _outcome_fast(text: str) -> tuple[str, object]:
    try:
        return "value", _format.loads_json(text)
    except (ValueError, RecursionError) as e:
        return "error", (type(e), str(e))


@settings(max_examples=400, deadline=None)
@given(
    _VALUES,
    st.sampled_from([None, 0, 2, "\t"]),
    st.booleans(),
    st.sampled_from(["", " ", "\n", " \t\r\n "]),
)
def test_json_is_json_loads_on_valid_text(
    value: object, indent: int | str | None, ascii_only: bool, space: str
) -> None:
    text = space + json.dumps(value, indent=indent, ensure_ascii=ascii_only) + space
    assert _format._SCAN is not None  # CPython ships the C scanner
    assert _same(_format.loads_json(text), json.loads(text))


#: Text of JSON's characters (and a BOM, a control character): mostly
#: almost-JSON, which the fast path must refuse as json.loads does.
_JSONISH = st.text(
    alphabet=st.sampled_from(list('{}[]",:0123456789.eE+-tfnaulrsINy \\\t\n\ufeff\x01'))
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_JSONISH, st.text(), _VALUES.map(json.dumps).map(lambda t: t[:-1])))
def test_json_answers_and_errors_are_json_loads_s(text: str) -> None:
    # Any text (mostly invalid JSON): the same value, or the same error.
    fast, slow = _outcome_fast(text), _outcome(text)
    assert fast[0] == slow[0]
    if fast[0] == "error":
        assert fast == slow
    else:
        assert _same(fast[1], slow[1])


def test_deep_nesting_is_an_index_format_error(tmp_path: Path) -> None:
    # Nested past the recursion limit: json.loads raises RecursionError; a
    # section so nested is a damaged file, said so.
    buf = b"[" * 200_000 + b"]" * 200_000
    s = _format.Section(_format.KIND_METADATA, 0, len(buf))
    with pytest.raises(IndexFormatError, match=r"f\.hlds: metadata section is not"):
        _format.read_json_section(buf, s, "f.hlds", "metadata")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of two sources (one label each, some records in both) with
    metadata and attributes: every JSON section a build writes."""
    d = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(7)
    a = [f"{int(x):032x}" for x in rng.integers(1, 2**62, 300)]
    b = a[:40] + [f"{int(x):032x}" for x in rng.integers(2**62, 2**63, 100)]
    (d / "a.md5").write_text("".join(f"{h}  a/{i}\n" for i, h in enumerate(a)))
    (d / "b.md5").write_text("".join(f"{h}  b/{i}\n" for i, h in enumerate(b)))
    out = d / "two.hlds"
    hashlookup.build_dataset(
        {"a": str(d / "a.md5"), "b": str(d / "b.md5")},
        out,
        metadata={"note": "synthetic \u00e9\u6f22 \U0001f600", "n": [1, 2.5, None]},
    )
    return out


def _json_sections(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    header = _format.read_header(data, len(data), str(path))
    return [
        (s.name, data[s.offset : s.offset + s.length])
        for s in header.sections
        if s.kind in (_format.KIND_METADATA, _format.KIND_LABEL_INDEX)
    ]


def test_every_json_section_a_build_writes_reads_as_json_loads(
    labelled: Path,
) -> None:
    sections = _json_sections(labelled)
    assert {name for name, _ in sections} == {"metadata", "label index"}
    for _, raw in sections:
        text = raw.decode("utf-8")
        assert _same(_format.loads_json(text), json.loads(text))


@pytest.mark.parametrize("kind", ["metadata", "label index"])
def test_malformed_json_in_a_file_is_named(
    labelled: Path, tmp_path: Path, kind: str
) -> None:
    # The section's bytes replaced by invalid JSON of the same length (open
    # checks no section checksum): json.loads's message, naming the section.
    data = bytearray(labelled.read_bytes())
    header = _format.read_header(data, len(data), "x")
    (s,) = [s for s in header.sections if s.name == kind]
    bad = b'{"x": [1, 2,' + b" " * (s.length - 12)
    data[s.offset : s.offset + s.length] = bad
    path = tmp_path / "bad.hlds"
    path.write_bytes(bytes(data))
    with pytest.raises(json.JSONDecodeError) as e:
        json.loads(bad.decode())
    with pytest.raises(IndexFormatError) as raised:
        hashlookup.open_dataset(path)
    assert str(raised.value) == f"{path}: {kind} section is not valid JSON ({e.value})"


# -- labels ------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.dictionaries(
                st.text(alphabet="abcxyz:", min_size=1, max_size=6),
                st.one_of(
                    st.just("all"),
                    st.just("none"),
                    st.sets(st.integers(0, n - 1)),
                ),
                max_size=5,
            ),
        )
    )
)
def test_labels_of_a_record_are_the_bitmaps_answer(
    case: tuple[int, dict[str, object]],
) -> None:
    # Labels carried by every record or none are answered from the
    # directory, the others from their bitmaps: always the answer of
    # membership in each bitmap (pyroaring), the oracle a Python set.
    n, spec = case
    members = {
        name: set(range(n)) if s == "all" else set() if s == "none" else s
        for name, s in spec.items()
    }
    assert all(isinstance(m, set) for m in members.values())
    blob, index = _labels.encode(
        {k: np.array(sorted(v), dtype=np.uint32) for k, v in members.items()}  # type: ignore[call-overload]
    )
    store = _labels.LabelStore(blob, 0, len(blob), json.loads(index), n, "t")
    pairs = store.pairs()
    for rid in range(n):
        expected = tuple(k for k in sorted(members) if rid in members[k])  # type: ignore[operator]
        assert store.of(rid) == expected
        assert store.of(rid) == tuple(name for name, bm in pairs if rid in bm)


def test_labels_of_partial_sources_come_from_their_bitmaps(labelled: Path) -> None:
    # Two sources sharing 40 digests: neither label is on every record, so
    # both are read from their bitmaps; each record's are its sources.
    a = {ln.split()[0] for ln in (labelled.parent / "a.md5").read_text().splitlines()}
    b = {ln.split()[0] for ln in (labelled.parent / "b.md5").read_text().splitlines()}
    with hashlookup.open_dataset(labelled) as ds:
        for digest in a | b:
            m = ds.lookup(digest)
            assert m is not None
            expected = (("source:a",) if digest in a else ()) + (
                ("source:b",) if digest in b else ()
            )
            assert m.labels == expected


# -- the plain classes --------------------------------------------------------


def test_invalid_is_a_small_immutable_value() -> None:
    a, b = Invalid("bad digest"), Invalid("bad digest")
    assert a == b and hash(a) == hash(b) and a != Invalid("other")
    assert a != "bad digest" and repr(a) == "Invalid(reason='bad digest')"
    assert {a, b} == {a} and pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(AttributeError, match="cannot assign to field 'reason'"):
        a.reason = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.reason  # type: ignore[misc]
    match a:
        case Invalid(reason):
            assert reason == "bad digest"
    assert hashlookup.Invalid is Invalid
    # as the frozen dataclass it was, for code that asks dataclasses
    import dataclasses

    assert dataclasses.is_dataclass(a)
    assert dataclasses.asdict(a) == {"reason": "bad digest"}
    assert dataclasses.replace(a, reason="x") == Invalid("x")


def test_section_replace_is_dataclasses_replace_s() -> None:
    s = _format.Section(_format.KIND_KEYS, 4096, 32, 7, 1, 2, (1, 16, 2))
    t = s.replace(kind=99, params=(0, 0, 0))
    assert t == _format.Section(99, 4096, 32, 7, 1, 2, (0, 0, 0)) and t != s
    assert s == _format.Section(_format.KIND_KEYS, 4096, 32, 7, 1, 2, (1, 16, 2))
    assert repr(s) == (
        "Section(kind=1, offset=4096, length=32, checksum=7, flags=1, group=2, "
        "params=(1, 16, 2))"
    )
    with pytest.raises(TypeError, match="no field 'size'"):
        s.replace(size=1)
    with pytest.raises(TypeError):
        hash(s)


# -- roaring bitmaps read in place --------------------------------------------

#: Sets of record ids that give every kind of roaring container: sparse
#: points (arrays), dense blocks (bitmaps, more than 4,096 in a 65,536 span),
#: ranges (runs after run_optimize), over several containers (high 16 bits).
_IDS = st.lists(
    st.one_of(
        st.lists(st.integers(0, 2**20), max_size=40).map(set),
        st.tuples(st.integers(0, 2**20), st.integers(1, 70_000)).map(
            lambda t: set(range(t[0], t[0] + t[1]))
        ),
        st.tuples(st.integers(0, 15), st.integers(2, 9)).map(
            lambda t: set(range(t[0] << 16, (t[0] + 1) << 16, t[1]))
        ),
    ),
    max_size=6,
).map(lambda parts: set().union(*parts))


def _store(members: dict[str, set[int]], records: int) -> _labels.LabelStore:
    blob, index = _labels.encode(
        {k: np.array(sorted(v), dtype=np.uint32) for k, v in members.items()}
    )
    return _labels.LabelStore(blob, 0, len(blob), json.loads(index), records, "t")


@settings(max_examples=120, deadline=None)
@given(st.lists(_IDS, min_size=1, max_size=4), st.data())
def test_labels_read_in_place_are_the_bitmaps_answer(
    sets: list[set[int]], data: st.DataObject
) -> None:
    # Every container kind, with and without the offset table (run-cookie
    # bitmaps of fewer than four containers have none): the labels of
    # sampled record ids (members, their neighbours, others) are those of
    # the Python sets, and those of pyroaring's bitmaps.
    records = max((max(s) for s in sets if s), default=0) + 2
    members = {f"l{i}": s for i, s in enumerate(sets)}
    store = _store(members, records)
    pairs = store.pairs()
    probes = {0, records - 1}
    for s in sets:
        for x in list(s)[:50]:
            probes |= {x, x + 1, max(x - 1, 0)}
    probes |= set(data.draw(st.lists(st.integers(0, records - 1), max_size=50)))
    for rid in sorted(probes):
        expected = tuple(k for k in sorted(members) if rid in members[k])
        assert store.of(rid) == expected
        assert expected == tuple(name for name, bm in pairs if rid in bm)


@settings(max_examples=300, deadline=None)
@given(_IDS, st.data())
def test_a_damaged_bitmap_is_refused_or_read_never_a_crash(
    ids: set[int], data: st.DataObject
) -> None:
    # Bytes of a partial label's bitmap flipped or cut: reading its labels
    # raises IndexFormatError naming the label, or answers (a damage that
    # keeps the bitmap well-formed); never a crash.
    records = max(ids, default=0) + 10
    blob, index = _labels.encode({"a": np.array(sorted(ids), dtype=np.uint32)})
    raw = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(
                st.integers(1, 255)
            )
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    entries = json.loads(index)
    entries["labels"][0][2] = min(entries["labels"][0][2], len(raw))
    store = _labels.LabelStore(bytes(raw), 0, len(raw), entries, records, "t.hlds")
    try:
        got = [store.of(rid) for rid in range(0, records, max(1, records // 97))]
    except IndexFormatError as e:
        assert str(e).startswith("t.hlds: label 'a': ")
    else:
        assert all(g in ((), ("a",)) for g in got)
