"""Exception hierarchy of hashlookup.

Format and input errors also derive from ValueError, so callers that already
catch ValueError keep working.  Errors from the operating system (missing
file, permission denied) are raised unchanged as OSError subclasses.
"""


class HashLookupError(Exception):
    """Base class of every error raised by hashlookup itself."""


class IndexFormatError(HashLookupError, ValueError):
    """An index file is corrupt, truncated, foreign or inconsistent."""


class IndexVersionError(IndexFormatError):
    """An index file uses a format version this build cannot read."""


class InputError(HashLookupError, ValueError):
    """A digest list (file, stream or sequence) holds an invalid entry.

    The message names the source, the 1-based line number and the text.
    """


class SignatureError(IndexFormatError):
    """A file opened with require_signature= is not signed, or its signature
    does not verify with the required key (docs/SIGNING.md)."""
