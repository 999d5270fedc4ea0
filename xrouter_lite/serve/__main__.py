"""`python -m xrouter_lite.serve ...`: the same as `python -m xrouter_lite serve ...` (see `cli.main`)."""

import sys

from xrouter_lite.serve.cli import main

if __name__ == "__main__":
    sys.exit(main())
