"""``python -m vecdb`` is the ``vecdb`` command."""

from vecdb.cli import main

raise SystemExit(main())
