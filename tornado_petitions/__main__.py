"""``python -m tornado_petitions``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main(prog="python -m tornado_petitions"))
