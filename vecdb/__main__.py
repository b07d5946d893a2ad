"""``python -m vecdb``: until the server exists, show how to use the embedded engine."""

from __future__ import annotations

import sys

USAGE = """\
vecdb {version}: the server (`vecdb serve`) is not built yet; use the embedded engine:

    from vecdb import Database
    with Database("./data") as db:
        col = db.create_collection("docs", dim=384, metric="cosine")
        col.upsert(ids=["a"], vectors=[[0.1] * 384], texts=["hello"], sources=["guide.md"])
        print(col.search([[0.1] * 384], k=5))

See README.md for the whole API.
"""


def main() -> int:
    from vecdb import __version__

    sys.stdout.write(USAGE.format(version=__version__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
