"""Turning user-fixable errors into one line and exit code 2."""

from __future__ import annotations

import click

from rns.errors import RnsError
from support_memory.errors import DamagedMemoryError, FingerprintMismatchError, MemoryStoreError


def _hint(error: Exception) -> str:
    """The rns option that fixes a memory error (support_memory's own messages name no rns option)."""
    if isinstance(error, FingerprintMismatchError):
        return " (--memory picks the memory; --model, --pretrained and --variant the settings)"
    return ""


def run_with_user_errors(group: click.Group, argv: list[str] | None) -> int:
    """Run the click group; a user error prints `rns: error: <one line>` and returns 2."""
    try:
        result = group.main(args=argv, prog_name="rns", standalone_mode=False)
    except DamagedMemoryError as error:  # the way out in rns's own commands, not the library's
        where = f" --memory {error.location}"
        click.echo(f"rns: error: {error.problem}; run `rns memory check{where}` to list the damage and "
                   f"`rns memory repair{where}` to keep every intact image (it deletes nothing)", err=True)
        return 2
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
