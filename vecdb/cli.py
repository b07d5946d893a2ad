"""The ``vecdb`` command: ``serve`` (``vecdb serve --help`` lists every setting, generated from
vecdb.config) and the data commands ``ingest``, ``sources``, ``search``, ``collections``, ``snapshot``,
``restore``, ``export``, ``import``
(``vecdb.commands``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import CliSettingsSource

from vecdb import __version__
from vecdb.config import Settings, load_settings

__all__ = ["main"]


def _serve_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> tuple[argparse.ArgumentParser, CliSettingsSource[Settings]]:
    parser = sub.add_parser(
        "serve",
        help="run the server (REST and gRPC)",
        description="Run vecdb: REST and gRPC over one data directory. Every setting below can also be "
        "given as a VECDB_* environment variable (nested with __, e.g. VECDB_LIMITS__MAX_K) or in a TOML "
        "config file; flags win over the environment, which wins over the file.",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML config file (keys as in the flags).")
    source: CliSettingsSource[Settings] = CliSettingsSource(Settings, root_parser=parser)
    for action in parser._actions:  # `--api-key K` reads better for one key: accept both spellings
        if "--api-keys" in action.option_strings:
            action.option_strings = ["--api-key", *action.option_strings]
            parser._option_string_actions["--api-key"] = action
        if any(o.startswith("--tls-") for o in action.option_strings):
            action.metavar = "FILE"  # not "{Path,null}"
    return parser, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vecdb", description="vecdb: a vector database.")
    parser.add_argument("--version", action="version", version=f"vecdb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _, cli_source = _serve_parser(sub)
    from vecdb.commands import add_commands, run_command

    add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            settings = load_settings(args.config, _cli_settings_source=cli_source(parsed_args=args))
        except (ValidationError, FileNotFoundError, ValueError) as exc:
            sys.stderr.write(f"vecdb serve: invalid settings: {exc}\n")
            return 2
        from vecdb.errors import VecDBError
        from vecdb.server.serve import serve

        try:
            return serve(settings)
        except (VecDBError, OSError) as exc:
            sys.stderr.write(f"vecdb serve: {exc}\n")
            return 1
    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
