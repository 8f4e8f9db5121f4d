"""The `rns` command as the tests run it, in this process, and the model options they pass it.

`rns(argv, capsys)` runs the command line through `run_with_user_errors`, exactly what the installed `rns`
entry point does (a user error is one line and an exit code, never a traceback), and returns the exit code
with what it printed. `TINY` selects the randomly initialised test model on CPU (it proves wiring and
shapes, never accuracy); `LITE` the real EfficientNet-Lite0 weights of the installed package.
"""

from __future__ import annotations

from collections.abc import Sequence

TINY = ["--model", "rns-tiny-test", "--pretrained", "random", "--device", "cpu"]
LITE = ["--model", "efficientnet-lite0", "--device", "cpu"]


def rns(argv: Sequence[object], capsys) -> tuple[int, str, str]:
    """Run `rns *argv` (paths may be `Path`s) and return (exit code, stdout, stderr).

    The command is imported on the first call, so a test module that only needs `TINY` loads no more than
    it did before.
    """
    from rns.cli import cli
    from rns.cli.errors import run_with_user_errors

    code = run_with_user_errors(cli, [str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
