"""The data commands of the ``vecdb`` CLI: ``ingest``, ``sources``, ``search``, ``collections``, ``snapshot``,
``restore``, ``export``, ``import``.

Each runs against a server (``--url``, ``--api-key``; through ``vecdb_client``) or embedded on a data
directory (``--data-dir``; through ``vecdb.Database``): ``connect`` hides which.
"""

from vecdb.commands.main import add_commands, run_command

__all__ = ["add_commands", "run_command"]
