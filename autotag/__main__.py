"""`python -m autotag`: the command line (see `autotag.cli.main`)."""

import sys

try:
    from autotag.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command line loads: nothing was done yet
    print("autotag: interrupted", file=sys.stderr)
    sys.exit(130)  # 128 + SIGINT, as autotag.cli.main.INTERRUPTED_EXIT

if __name__ == "__main__":
    sys.exit(main())
