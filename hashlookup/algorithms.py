"""The digest algorithms hashlookup knows, in one place: name, width in
bytes, hex length, display name (as CIRCL's JSON spells it) and the id the
file format stores.  Every other module takes them from here."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, NamedTuple
else:
    # typing costs start-up; the same class without it
    from hashlookup._lazy import NamedTuple


class Algorithm(NamedTuple):
    name: str  # "sha1": the name in the API, the CLI and the file format
    width: int  # raw digest bytes
    display: str  # "SHA-1": CIRCL's JSON keys, human-facing text
    format_id: int  # stored in a key table's section (docs/FORMAT.md)

    @property
    def hex_length(self) -> int:
        return 2 * self.width


MD5: Final = Algorithm("md5", 16, "MD5", 1)
SHA1: Final = Algorithm("sha1", 20, "SHA-1", 2)
SHA256: Final = Algorithm("sha256", 32, "SHA-256", 3)

#: The digest algorithms, in the order datasets, records and output use.
DIGESTS: Final = (MD5, SHA1, SHA256)
NAMES: Final = tuple(a.name for a in DIGESTS)
BY_NAME: Final = {a.name: a for a in DIGESTS}
#: name -> width in bytes
WIDTH: Final = {a.name: a.width for a in DIGESTS}
#: width in bytes -> name
BY_WIDTH: Final = {a.width: a.name for a in DIGESTS}
#: hex length -> name
BY_HEX_LENGTH: Final = {a.hex_length: a.name for a in DIGESTS}
#: hex length -> width in bytes
HEX_WIDTH: Final = {a.hex_length: a.width for a in DIGESTS}
#: name -> display name ("SHA-1")
DISPLAY: Final = {a.name: a.display for a in DIGESTS}
#: The format id of a table of fixed-width keys that are not digests.
RAW_FORMAT_ID: Final = 0


def describe(name: str, width: int) -> str:
    """How error messages name one key: "an md5 digest", "a 24-byte raw key"."""
    if name in BY_NAME:
        return f"{'an' if name == 'md5' else 'a'} {name} digest"
    return f"a {width}-byte raw key"
