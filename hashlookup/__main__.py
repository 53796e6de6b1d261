"""``python -m hashlookup``: the command-line interface (see hashlookup.cli).

A package that cannot be imported (an unbuilt source tree says so when
``hashlookup`` itself is imported) ends with status 2, the command line's
"error", never with a traceback and 1 ("found")."""

import sys

try:
    from hashlookup.cli import main
except ImportError as exc:
    sys.stderr.write(f"hashlookup: error: cannot start: {exc}\n")
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
