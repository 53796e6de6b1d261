"""The near search's default parameters and their range check, in a module
of their own so that the store and the scan can name and check them without
importing the search."""

#: PDQ's usual match threshold (bits), as Meta's HMA uses it
DEFAULT_MAX_DISTANCE = 31
#: hashes of lower quality (0..100) are not matched by default, as in HMA
DEFAULT_MIN_QUALITY = 50


def check_radius(max_distance: int, min_quality: int) -> None:
    """ValueError/TypeError for a radius or quality threshold out of range."""
    for name, v in (("max_distance", max_distance), ("min_quality", min_quality)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    if not 0 <= min_quality <= 100:
        raise ValueError(f"min_quality must be 0..100, got {min_quality}")
