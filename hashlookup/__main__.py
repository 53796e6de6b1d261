"""``python -m hashlookup``: the command-line interface (see hashlookup.cli)."""

import sys

from hashlookup.cli import main

if __name__ == "__main__":
    sys.exit(main())
