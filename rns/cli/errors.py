"""Turning user-fixable errors into one line and exit code 2."""

from __future__ import annotations

import click

from rns.errors import RnsError
from support_memory.errors import FingerprintMismatchError, MemoryStoreError


def _hint(error: Exception) -> str:
    """The rns option that fixes a memory error (support_memory's own messages name no rns option)."""
    if isinstance(error, FingerprintMismatchError):
        return " (--memory picks the memory; --model, --pretrained and --variant the settings)"
    return ""


def run_with_user_errors(group: click.Group, argv: list[str] | None) -> int:
    """Run the click group; a user error prints `rns: error: <one line>` and returns 2."""
    try:
        result = group.main(args=argv, prog_name="rns", standalone_mode=False)
    except (RnsError, MemoryStoreError) as error:
        click.echo(f"rns: error: {error}{_hint(error)}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("rns: aborted", err=True)
        return 130
    except click.ClickException as error:
        error.show()
        return 2
    except KeyboardInterrupt:
        click.echo("rns: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0
