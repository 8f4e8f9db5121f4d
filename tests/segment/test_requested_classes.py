"""`rns.segment.requested_classes`: a class list as text or as a list comes out the same (no string round
trip)."""

from __future__ import annotations

import pytest

from rns.errors import InputError
from rns.segment.requested_classes import clean_class_list, parse_class_list


def test_list_and_text_give_the_same_classes():
    names = ["car", " Car ", "background", "big   bus", "tree,sky", ""]
    assert clean_class_list(names) == ["car", "big bus", "tree", "sky"]
    assert clean_class_list(names) == parse_class_list(",".join(names))


def test_a_list_without_a_class_is_refused():
    with pytest.raises(InputError, match="names no class"):
        clean_class_list(["background", " "])
