"""The `rns` command line: a thin click shell over the Python API.

Each sub-command lives in its own module and only parses, calls the API and prints. Errors a user can fix
(`RnsError`, `MemoryStoreError`) become one line on stderr and exit code 2; nothing else is caught, so a
bug keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from rns.cli.group import cli


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from rns.cli.errors import interrupt_ends_shutdown, run_with_user_errors

    code = run_with_user_errors(cli, argv)
    interrupt_ends_shutdown()
    sys.exit(code)


__all__ = ["cli", "main", "click"]

# Importing the command modules registers their commands on the group.
from rns.cli import (  # noqa: E402,F401
    audit_cmd,  # noqa: E402,F401
    eval_cmd,
    info_cmd,
    memory_cmd,
    segment_cmd,
    support_cmd,
    ui_cmd,
)
