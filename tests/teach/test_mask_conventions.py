"""Mask conventions: binary masks with one class, index masks with a mapping, and every way they go wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rns.errors import InputError
from rns.teach.mask_conventions import IGNORE_LABEL, LabelMapping, mask_content_key

MASK = Path("masks/a.png")


@pytest.mark.parametrize("foreground", [1, 255])
def test_binary_mask_nonzero_is_the_class_and_zero_is_unlabelled(foreground: int) -> None:
    mask = np.array([[0, foreground], [foreground, 0]], dtype=np.uint8)
    labels = LabelMapping.single_class("  my   backpack ").label_map(mask, MASK)
    np.testing.assert_array_equal(labels, [[IGNORE_LABEL, 0], [0, IGNORE_LABEL]])
    assert LabelMapping.single_class("my backpack").class_names == ["my backpack"]


def test_binary_mask_with_ones_treats_255_as_ignore() -> None:
    mask = np.array([[0, 1, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(LabelMapping.single_class("bus").label_map(mask, MASK), [[-1, 0, -1]])


def test_binary_mapping_refuses_an_index_mask() -> None:
    with pytest.raises(InputError, match=r"masks/a.png: --class needs a binary mask .* values 0, 1, 3"):
        LabelMapping.single_class("bus").label_map(np.array([[0, 1, 3]]), MASK)


def test_labels_spec_maps_values_and_merges_shared_names() -> None:
    mapping = LabelMapping.parse("0=background, 1=bus,2= car ,3=bus")
    assert mapping.class_names == ["background", "bus", "car"]
    labels = mapping.label_map(np.array([[0, 1, 2, 3, 255]], dtype=np.uint8), MASK)
    np.testing.assert_array_equal(labels, [[0, 1, 2, 1, IGNORE_LABEL]])


def test_mapping_may_name_255_as_a_class() -> None:
    labels = LabelMapping.parse("0=background,255=bus").label_map(np.array([[0, 255]]), MASK)
    np.testing.assert_array_equal(labels, [[0, 1]])


def test_classes_file_line_i_is_value_i(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("sky\nsign  symbol\nroad\n\n\n", encoding="utf-8")
    mapping = LabelMapping.from_classes_file(path)
    assert mapping.values == {0: "sky", 1: "sign symbol", 2: "road"}


def test_unmapped_values_name_the_file_values_and_fix() -> None:
    with pytest.raises(InputError) as caught:
        LabelMapping.parse("0=sky,1=road").label_map(np.array([[0, 1, 4, 7, 255]]), MASK)
    message = str(caught.value)
    assert "masks/a.png" in message and "values 4, 7" in message and '"4=NAME"' in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("0=sky,1=", "value 1 maps to an empty class name"),
        ("0=sky,1", "is not VALUE=NAME"),
        ("x=sky", "'x' is not a mask value"),
        ("-1=sky", "never negative"),
        ("0=sky,0=road", "value 0 is mapped twice"),
        (" , ", "maps no value"),
    ],
)
def test_bad_labels_specs_are_refused(spec: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        LabelMapping.parse(spec)


def test_empty_class_name_is_refused() -> None:
    with pytest.raises(InputError, match="--class needs a non-empty class name"):
        LabelMapping.single_class("   ")


def test_classes_file_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="classes file not found"):
        LabelMapping.from_classes_file(tmp_path / "missing.txt")
    gap = tmp_path / "gap.txt"
    gap.write_text("sky\n\nroad\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"gap.txt line 2: value 1 maps to an empty class name"):
        LabelMapping.from_classes_file(gap)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="the classes file is empty"):
        LabelMapping.from_classes_file(empty)


@pytest.mark.parametrize(
    ("mapping", "mask"),
    [
        (LabelMapping.single_class("bus"), np.zeros((3, 3), dtype=np.uint8)),
        (LabelMapping.parse("0=sky"), np.full((3, 3), 255, dtype=np.uint8)),
    ],
    ids=["binary-all-zero", "index-all-ignore"],
)
def test_mask_labelling_nothing_is_refused(mapping: LabelMapping, mask: np.ndarray) -> None:
    with pytest.raises(InputError, match="masks/a.png: the mask labels no pixel"):
        mapping.label_map(mask, MASK)


def test_content_key_depends_on_what_is_labelled_not_how_it_is_encoded() -> None:
    mask = np.array([[0, 1], [1, 255]], dtype=np.uint8)
    labels = LabelMapping.parse("0=road,1=bus").label_map(mask, MASK)
    swapped = LabelMapping.parse("0=bus,1=road").label_map(1 - mask.clip(0, 1) + (mask == 255) * 255, MASK)
    key = mask_content_key(labels, ["road", "bus"])
    assert key == mask_content_key(swapped, ["bus", "road"])
    relabelled = labels.copy()
    relabelled[0, 0] = 1
    assert key != mask_content_key(relabelled, ["road", "bus"])
    assert key != mask_content_key(labels, ["road", "car"])
