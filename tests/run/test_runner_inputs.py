"""Input expansion: folders, globs, list files, explicit files; stable order and collision-free stems."""

from __future__ import annotations

from pathlib import Path

import pytest

from rns.errors import InputError
from rns.run.inputs import expand_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # content does not matter: expansion never decodes
    return path


def _stems(images) -> list[str]:
    return [image.stem for image in images]


def test_folder_is_recursive_sorted_and_mirrors_subfolders(tmp_path):
    for name in [
        "b.jpg",
        "a.PNG",
        "sub/a.png",
        "sub/deeper/c.webp",
        "notes.txt",
        ".hidden.jpg",
        ".git/x.png",
    ]:
        _touch(tmp_path / "in" / name)
    images = expand_inputs([tmp_path / "in"])
    assert _stems(images) == ["a", "b", "sub/a", "sub/deeper/c"]
    assert images[0].path == tmp_path / "in" / "a.PNG"


def test_glob_restricts_the_scan(tmp_path):
    for name in ["a.jpg", "b.png", "sub/c.jpg"]:
        _touch(tmp_path / "in" / name)
    assert _stems(expand_inputs([tmp_path / "in"], glob="*.jpg")) == ["a"]
    assert _stems(expand_inputs([tmp_path / "in"], glob="**/*.jpg")) == ["a", "sub/c"]


def test_same_name_with_two_extensions_gets_distinct_stems(tmp_path):
    _touch(tmp_path / "in" / "x.jpg")
    _touch(tmp_path / "in" / "x.png")
    _touch(tmp_path / "in" / "y.png")
    assert _stems(expand_inputs([tmp_path / "in"])) == ["x_jpg", "x_png", "y"]


def test_two_folders_with_equal_names_are_kept_apart_by_folder(tmp_path):
    _touch(tmp_path / "one" / "photo.jpg")
    _touch(tmp_path / "two" / "photo.jpg")
    _touch(tmp_path / "loose.png")
    assert _stems(expand_inputs([tmp_path / "two", tmp_path / "one"])) == ["one/photo", "two/photo"]
    assert _stems(expand_inputs([tmp_path / "one", tmp_path / "loose.png"])) == ["loose", "one/photo"]


def test_names_differing_only_in_case_do_not_collide(tmp_path):
    # Distinct on Linux, one file on macOS/Windows: the stems must differ case-insensitively.
    _touch(tmp_path / "in" / "Photo.jpg")
    _touch(tmp_path / "in" / "photo.png")
    assert _stems(expand_inputs([tmp_path / "in"])) == ["Photo_jpg", "photo_png"]
    _touch(tmp_path / "in" / "photo.jpg")
    stems = _stems(expand_inputs([tmp_path / "in"]))
    assert len({stem.casefold() for stem in stems}) == 3


def test_loose_files_are_relative_to_their_common_parent(tmp_path):
    first = _touch(tmp_path / "data" / "a" / "x.jpg")
    second = _touch(tmp_path / "data" / "b" / "x.jpg")
    assert _stems(expand_inputs([second, first])) == ["a/x", "b/x"]
    assert _stems(expand_inputs([first])) == ["x"]


def test_list_file_with_comments_and_relative_paths(tmp_path):
    _touch(tmp_path / "imgs" / "one.jpg")
    _touch(tmp_path / "imgs" / "two.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("# my images\nimgs/two.jpg\n\n  imgs/one.jpg  \n")
    assert _stems(expand_inputs([f"@{listing}"])) == ["one", "two"]
    assert _stems(expand_inputs([], list_files=[listing])) == ["one", "two"]


def test_list_file_naming_a_missing_image_keeps_it_for_the_run_to_report(tmp_path):
    """Issue 12: one stale line of a list must not refuse the whole run; the runner reports it as failed."""
    listing = tmp_path / "list.txt"
    listing.write_text("gone.jpg\n")
    assert [image.path for image in expand_inputs([f"@{listing}"])] == [tmp_path / "gone.jpg"]


def test_missing_list_file(tmp_path):
    with pytest.raises(InputError, match=r"list file .*nolist\.txt does not exist"):
        expand_inputs([f"@{tmp_path / 'nolist.txt'}"])


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match=r"input .*nothere does not exist"):
        expand_inputs([tmp_path / "nothere"])
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match=r"folder .*empty holds no images matching '\*\*/\*'"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="no input images given"):
        expand_inputs([])


def test_explicit_file_with_any_extension_and_duplicates(tmp_path):
    odd = _touch(tmp_path / "scan.jfif")
    assert _stems(expand_inputs([odd, odd])) == ["scan"]
    _touch(tmp_path / "in" / "a.jpg")
    images = expand_inputs([tmp_path / "in", tmp_path / "in" / "a.jpg"])
    assert _stems(images) == ["a"]


def test_excluded_output_folder_is_not_scanned(tmp_path):
    _touch(tmp_path / "in" / "a.jpg")
    _touch(tmp_path / "in" / "out" / "a.overlay.png")
    assert _stems(expand_inputs([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])) == ["a"]
    assert len(expand_inputs([tmp_path / "in"])) == 2
