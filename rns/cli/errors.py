"""Turning user-fixable errors into one line and exit code 2."""

from __future__ import annotations

import contextlib
import difflib
import os
import signal
import sys

import click

from rns.errors import RnsError
from support_memory.errors import DamagedMemoryError, FingerprintMismatchError, MemoryStoreError


def _hint(error: Exception) -> str:
    """The rns option that fixes a memory error (support_memory's own messages name no rns option)."""
    if isinstance(error, FingerprintMismatchError):
        return " (--memory picks the memory; --model, --pretrained and --variant the settings)"
    return ""


def usage_line(error: click.UsageError) -> str:
    """A click usage error as one line: what was wrong, a suggestion only when it is close, where help is.

    click prints four lines (usage, a help hint, a blank, the error) and suggests every option within its
    loose similarity cutoff, so `--clases` got "did you mean --classes, --steps"; here only a near match
    (difflib ratio >= 0.8) is offered.
    """
    command = error.ctx.command_path if error.ctx is not None else "rns"
    if isinstance(error, click.NoSuchOption):
        close = difflib.get_close_matches(error.option_name, sorted(error.possibilities or ()), n=1,
                                          cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        message = f"no such option {error.option_name}{hint}"
    else:
        message = error.format_message()
        message = (message[:1].lower() + message[1:]).rstrip(".")
    return f"{command}: error: {' '.join(message.split())}; see '{command} --help'"


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
    except click.exceptions.Abort:  # click's form of Ctrl-C; the run has already said what is left
        click.echo("rns: interrupted", err=True)
        return 130
    except click.UsageError as error:
        click.echo(usage_line(error), err=True)
        return 2
    except click.ClickException as error:
        error.show()
        return 2
    except KeyboardInterrupt:
        click.echo("rns: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def interrupt_ends_shutdown() -> None:
    """Once the command has returned, Ctrl-C ends the process at once with 130 and one line.

    Python joins worker threads (thread pools, the memory's I/O) after `main` returns; a Ctrl-C there
    used to print "Exception ignored in threading._shutdown" with a traceback and exit 0. The command's
    work is complete by then (every commit and output was written before it returned), so stopping is
    safe; the exit code still says that the process was interrupted.
    """

    def stop(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.write(2, b"rns: interrupted while shutting down (the command had finished its work)\n")
        os._exit(130)

    with contextlib.suppress(ValueError):  # not the main thread: leave Python's own handling
        signal.signal(signal.SIGINT, stop)
