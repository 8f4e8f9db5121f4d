"""Getting a Ray connection for `rns segment --ray`: the optional import, a local instance or a cluster.

Ray is an optional extra (`pip install 'rns[ray]'`), so every use goes through `import_ray`, which turns a
missing install into one line naming the extra (exit 2) before anything is built or written.

Where to run (`address`):
- None or "local": a fresh Ray instance on this machine, started for the run and stopped after it. It is
  held to loopback (127.0.0.1): it serves only this process, so nothing of it should listen on the
  network, and Ray's usage statistics are off unless the user turned them on.
- "auto": the Ray cluster already running here (`ray start --head`), found the way Ray finds it.
- anything else: passed to `ray.init(address=...)` as is ("host:6379", "ray://host:10001").
When this process is already connected (a notebook, a test fixture), that connection is used and left
open, whatever `address` says.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from rns.errors import InputError, RnsError

RAY_EXTRA_HINT = "pip install 'rns[ray]'"
LOCAL = "local"
# Read by Ray when it is imported: with it off, Ray takes the loopback address as this node's address.
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


class RayUnavailableError(RnsError):
    """`--ray` was asked for but Ray (the `ray` extra) is not installed, or the cluster cannot be reached."""


def is_local(address: str | None) -> bool:
    """True when `address` asks for a fresh Ray instance on this machine."""
    return address is None or address == LOCAL


def import_ray(address: str | None = None) -> ModuleType:
    """The `ray` module with Ray Data, or `RayUnavailableError` naming the extra to install.

    Checks `address` first (`check_address`). For a local instance, Ray is told to use the loopback address.
    """
    check_address(address)
    if is_local(address):
        os.environ.setdefault(_LOOPBACK_SWITCH, "0")  # also read by the workers Ray starts
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401  (the `ray[data]` part: pyarrow, pandas)
    except ImportError as error:
        raise RayUnavailableError(
            f"--ray needs Ray Data, which is not installed ({error.name or error}): {RAY_EXTRA_HINT}"
        ) from None
    if is_local(address) and os.environ.get(_LOOPBACK_SWITCH) == "0":
        # Ray read the switch when it was first imported, maybe before this call: tell it again.
        from ray._private import ray_constants

        if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
            ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def check_address(address: str | None) -> None:
    """Refuse an address that is really a path: `--ray photos/` takes the folder as the address."""
    if address is None or is_local(address) or address == "auto" or "://" in address:
        return
    if Path(address).exists():
        raise InputError(
            f"--ray took {address!r} as the Ray address, but it is a file or folder: put --ray after the "
            "inputs, or write --ray=ADDRESS"
        )


@contextmanager
def ray_connection(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Connect to Ray for one run (see the module docstring); disconnects afterwards if it connected.

    `num_cpus` limits a local instance (None: every CPU of this machine); a cluster has its own.
    """
    ray = import_ray(address)
    if ray.is_initialized():
        _quiet_ray_data(ray)
        yield ray
        return
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if is_local(address):
            # Ray warns on every start that token authentication is on (it stays on); rns says nothing.
            logging.getLogger(_AUTH_LOGGER).setLevel(logging.ERROR)
            ray.init(address=LOCAL, num_cpus=num_cpus, _node_ip_address="127.0.0.1", **quiet)
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "a local Ray instance" if is_local(address) else f"the Ray cluster at {address!r}"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RayUnavailableError(
            f"cannot start or reach {where} ({first}): start one with `ray start --head`, or check --ray"
        ) from None
    try:
        _quiet_ray_data(ray)
        yield ray
    finally:
        ray.shutdown()


def node_addresses(ray: ModuleType) -> list[str]:
    """The addresses of the live nodes of the connected cluster (tests check a local one is loopback)."""
    return [str(node["NodeManagerAddress"]) for node in ray.nodes() if node.get("Alive")]


def _quiet_ray_data(ray: ModuleType) -> None:
    """rns shows its own progress: no Ray Data progress bars or per-dataset log lines on the terminal."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    # Ray Data's advice on its own operators (memory per worker, ...) is for pipeline authors, not users.
    logging.getLogger("ray.data._internal.issue_detection").setLevel(logging.ERROR)
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)
