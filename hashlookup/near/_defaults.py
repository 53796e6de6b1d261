"""The near search's default parameters, in a module of their own so that
the store can name them in signatures without importing the search."""

#: PDQ's usual match threshold (bits), as Meta's HMA uses it
DEFAULT_MAX_DISTANCE = 31
#: hashes of lower quality (0..100) are not matched by default, as in HMA
DEFAULT_MIN_QUALITY = 50
