"""A COCO file as the ground truth of `rns eval` (instead of a folder of masks).

The COCO file is converted exactly as for teaching (`rns.formats.coco`): pixels no annotation covers
are unlabelled and so not scored. The categories (or the `--categories` subset) are
the classes the segmenter is asked for, in the file's order; a first category named "background" is
the segmenter's background class, as with a classes file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rns.errors import InputError
from rns.evaluate.folder_eval import LabelledSet
from rns.formats.coco import read_coco
from rns.formats.items import ItemProblem
from rns.formats.staging import staged_items
from rns.segmentation import BACKGROUND


@contextmanager
def coco_labelled_set(
    coco: str | os.PathLike, images_dir: str | os.PathLike, categories: Sequence[str] | None = None,
    *, limit: int | None = None,
) -> Iterator[tuple[LabelledSet, list[ItemProblem]]]:
    """The labelled set of a COCO file (masks staged in a temporary folder) and its unusable images.

    Images that label nothing of the chosen classes are left out (they would score nothing).
    """
    imported = read_coco(coco, images_dir, categories)
    names = imported.class_names
    if any(name.lower() == BACKGROUND for name in names[1:]):
        raise InputError(f"{coco}: 'background' may only be the first category; reorder the categories")
    with staged_items(imported) as staged:
        pairs = staged.pairs[:limit] if limit is not None else staged.pairs
        if not pairs:
            reason = f" ({staged.problems[0]})" if staged.problems else ""
            raise InputError(f"{coco}: no image with labels of {', '.join(names)} to evaluate on{reason}")
        yield LabelledSet(pairs=pairs, class_names=list(names)), staged.problems
