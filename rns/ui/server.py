"""Running the app with uvicorn: in the foreground for `rns ui`, or in a thread for tests and tools.

The socket is bound here, before uvicorn starts, so `--port 0` (any free port) works and the printed URL
is always the real one. Binding anything but a loopback address exposes the memory and the model to the
network with no authentication, so it is allowed but warned about.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rns.errors import InputError
from rns.ui.session import UiSession


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for everything else (0.0.0.0 included)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning to print for a non-loopback --host, or None."""
    if is_loopback(host):
        return None
    return (
        f"warning: --host {host} makes rns ui reachable from other machines, with no password: anyone who "
        "can reach it can read and change the support memory. Use it only on a network you trust."
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or `InputError` saying why not."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as error:
        raise InputError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): pick another --port (or --port 0 "
            "for any free one)"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The URL a browser on this machine opens: for 0.0.0.0 or :: (every address), the loopback one."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # no browser opens http://0.0.0.0/
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _uvicorn_server(session: UiSession, sock: socket.socket) -> object:
    import uvicorn

    from rns.ui.app import create_app
    from rns.ui.host_guard import HostGuard

    address, port = sock.getsockname()[:2]
    app = create_app(session, HostGuard(address, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)  # fmt: skip
    return uvicorn.Server(config)


def serve(session: UiSession, host: str, port: int, announce: Callable[[str], None],
          sock: socket.socket | None = None) -> None:
    """Serve until interrupted; `announce` gets the URL once the socket is bound.

    `sock`: one `bind_socket` made earlier (the CLI binds before loading the model, so a busy port is
    reported at once).
    """
    sock = sock if sock is not None else bind_socket(host, port)
    server = _uvicorn_server(session, sock)
    announce(url_of(sock))
    server.run(sockets=[sock])


@dataclass
class RunningServer:
    """A server started by `start_in_thread`; `stop()` shuts it down and waits for the thread."""

    url: str
    server: object
    thread: threading.Thread

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def start_in_thread(session: UiSession, host: str = "127.0.0.1", port: int = 0,
                    timeout_s: float = 30.0) -> RunningServer:  # fmt: skip
    """Start the app on a free port in a daemon thread and wait until it accepts requests."""
    sock = bind_socket(host, port)
    server = _uvicorn_server(session, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="rns-ui")
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the rns ui server did not start")
        time.sleep(0.02)
    return RunningServer(url_of(sock), server, thread)


def missing_web_packages() -> list[str]:
    """The packages of the `ui` extra that are not installed (checked without importing them)."""
    from importlib.util import find_spec

    wanted = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python-multipart": "python_multipart"}
    return [package for package, module in wanted.items() if find_spec(module) is None]


def correction_proposer(config: object, device: str) -> object | None:
    """SAM regions for `--sam-checkpoint` (None: superpixels, built when first needed).

    Built before the backbone, so a missing checkpoint is reported before seconds go into the model.
    """
    if not config.sam_checkpoint:
        return None
    from rns.regions import build_region_proposer

    return build_region_proposer("sam", sam_checkpoint=config.sam_checkpoint, device=device)


def build_session(config: object, *, model: str | None, pretrained: str | None, checkpoint: str | None,
                  variant: str | None, device: str, proposer: object | None = None) -> UiSession:  # fmt: skip
    """The backbone and the memory for `rns ui`, with `proposer` for the correction regions."""
    from rns.backbone import build_backbone
    from rns.paths import cache_dir

    backbone = build_backbone(model, pretrained, checkpoint, variant, device,
                              text_cache_dir=cache_dir() / "text")  # fmt: skip
    return UiSession(backbone, config, correction_regions=proposer)
