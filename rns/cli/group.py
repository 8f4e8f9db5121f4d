"""The click group every sub-command registers on, and the options they share."""

from __future__ import annotations

import click

from rns.choices import DEVICE_CHOICES, TEST_MODEL, VARIANTS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rns")
def cli() -> None:
    """rns: name classes, get pixel masks; show a few labelled examples and it gets better at once.

    \b
    Example:
      rns segment photo.jpg --classes "bus,car"
      rns add-support img.png mask.png --class bus
    """


memory_option = click.option(
    "--memory",
    "memory_path",
    type=click.Path(dir_okay=True, file_okay=False),
    default=None,
    help="Support memory (zarr directory). Default: $RNS_MEMORY, else a per-user data directory.",
)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES, case_sensitive=False),
    default="auto",
    show_default=True,
    help="Where the model runs; auto picks a CUDA GPU when there is one.",
)
model_option = click.option(
    "--model",
    default=None,
    help="Backbone (default ViT-B-16, or $RNS_MODEL): an open_clip model name (image + text), or "
    "efficientnet-lite0/1/2 (image only, ImageNet weights installed with rns: works offline, but every class "
    "needs examples and there is no zero-shot). For rns's own tests only: "
    f"`--model {TEST_MODEL} --pretrained random`, a tiny random-weight model whose masks mean nothing.",
)
pretrained_option = click.option(
    "--pretrained",
    default=None,
    help="Weights tag (default laion2b_s34b_b88k for CLIP, imagenet for efficientnet-lite, or "
    "$RNS_PRETRAINED); `random` gives "
    "untrained weights, for tests only.",
)
variant_option = click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default=None,
    help="CLIP models: dense-feature variant of the last block (default maskclip, the paper's; or "
    "$RNS_VARIANT). A "
    "memory only accepts features made with the variant it was built with. Refused for efficientnet-lite "
    "(one kind of features), which also leaves $RNS_VARIANT and a CLIP $RNS_PRETRAINED aside.",
)
checkpoint_option = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Local checkpoint file for the model (or $RNS_CHECKPOINT); for machines with no internet.",
)


def backbone_options(func):
    """The options that pick the backbone, shared by every command that builds one."""
    options = (model_option, pretrained_option, checkpoint_option, variant_option, device_option)
    for option in reversed(options):
        func = option(func)
    return func
