"""The names a user can choose from on the command line, in a module that imports nothing heavy.

`rns --help` must not pay for torch, open_clip or zarr (seconds and hundreds of MB), yet its option lists
must be the very values the heavy modules accept. So the lists live here, and the heavy modules
(`rns.backbone.dense`, `rns.devices`, `rns.teach.support`) import them from here rather than the other way
round.
"""

from __future__ import annotations

VARIANTS = ("maskclip", "clearclip", "naclip")
DEFAULT_VARIANT = "maskclip"

DEVICE_CHOICES = ("auto", "cpu", "cuda")

SOLVERS = ("fast", "adamw")
"""Head-fit solvers; `rns.adapt.types.Solver` lists the same (a test checks they agree)."""
DEFAULT_SOLVER = "adamw"

WEIGHTINGS = ("global", "per_term")
"""Sample weightings of the head fit; `rns.adapt.types.Weighting` lists the same."""
DEFAULT_WEIGHTING = "global"

REGION_CHOICES = ("none", "superpixels", "sam")

DEFAULT_BATCH_SIZE = 8
"""Images per memory commit in a bulk add: small enough that a killed run loses little work, large
enough that the per-commit cost (a manifest rewrite) stays negligible next to feature extraction."""

TEST_MODEL = "rns-tiny-test"
"""The tiny built-in model used by rns's own tests (random weights: its masks mean nothing)."""
