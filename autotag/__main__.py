"""`python -m autotag`: the command line (see `autotag.cli.main`)."""

import sys

from autotag.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
