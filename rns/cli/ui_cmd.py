"""`rns ui`: a local web page to look at segmentations, correct them and teach (a shell over `rns.ui`)."""

from __future__ import annotations

from pathlib import Path

import click

from rns.cli.group import backbone_options, cli, memory_option
from rns.errors import RnsError


class MissingExtraError(RnsError):
    """The optional web packages are not installed."""


@cli.command("ui")
@click.option("--images", "images_dir", type=click.Path(file_okay=False, path_type=Path),
              help="A folder of photos to step through in the page (only its top-level photos are served).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but 127.0.0.1/localhost is reachable from other machines.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--sam-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="SAM checkpoint: click-to-assign regions become SAM masks instead of superpixels.")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=25, show_default=True,
              help="Largest accepted upload, per file.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Largest accepted photo, in pixels.")
@memory_option
@backbone_options
def ui_command(
    images_dir: Path | None,
    host: str,
    port: int,
    sam_checkpoint: str | None,
    max_upload_mb: int,
    max_pixels: int,
    memory_path: str | None,
    model: str | None,
    pretrained: str | None,
    checkpoint: str | None,
    variant: str | None,
    device: str,
) -> None:
    """Start a local web page: see a photo's segmentation, correct it, teach, see it improve at once.

    Every "Teach" adds the corrected photo to the support memory, as `rns add-support` would. The same
    server answers a JSON API (POST /api/segment, POST /api/teach; see the README).

    \b
    Examples:
      rns ui
      rns ui --images photos/ --memory my-memory
    """
    from rns.ui import UI_EXTRA_HINT
    from rns.ui.server import missing_web_packages

    if missing_web_packages():
        raise MissingExtraError(UI_EXTRA_HINT)
    from rns.teach.memory_access import refuse_file_as_memory
    from rns.ui.config import UiConfig
    from rns.ui.server import bind_socket, build_session, correction_proposer, exposure_warning, serve

    config = UiConfig(memory_path=memory_path, images_dir=images_dir, max_upload_bytes=max_upload_mb << 20,
                      max_pixels=max_pixels, sam_checkpoint=sam_checkpoint)  # fmt: skip
    refuse_file_as_memory(memory_path)  # before the model loads: seconds saved, one line
    warning = exposure_warning(host)
    if warning:
        click.echo(warning, err=True)
    proposer = correction_proposer(config, device)
    sock = bind_socket(host, port)  # before the model loads: a busy port is reported at once
    click.echo(f"rns ui: loading the model ({model or 'default'})...", err=True)
    session = build_session(config, model=model, pretrained=pretrained, checkpoint=checkpoint,
                            variant=variant, device=device, proposer=proposer)  # fmt: skip

    def announce(url: str) -> None:
        click.echo(f"rns ui: open {url} in a browser (Ctrl+C stops)")
        if host in ("0.0.0.0", "::"):
            import socket

            port_number = sock.getsockname()[1]
            click.echo(f"rns ui: from other machines: http://{socket.gethostname()}:{port_number}/")

    try:
        serve(session, host, port, announce, sock=sock)
    finally:
        sock.close()
