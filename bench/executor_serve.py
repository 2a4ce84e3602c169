"""``serve`` with SQLite work in the thread pool instead of inline, to measure which is better.

``python -m bench.executor_serve serve --port ...`` takes the same flags as
``python -m tornado_petitions serve``; only ``db_inline`` differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys

from tornado_petitions import cli
from tornado_petitions.server import serve


def main() -> None:
    args = cli.build_parser().parse_args(sys.argv[1:])
    settings = dataclasses.replace(cli.settings_from_args(args), db_inline=False)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
