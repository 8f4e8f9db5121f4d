"""Issue 26 items 14-16, the `rns ui` page in headless Chromium as a person uses it: the folder picker names
only the open photo, the class to correct with is kept by name, corrections stay in view (also of a class
taken out of the list), "teach the whole photo" never stores background, and colours follow class names."""

from __future__ import annotations

import pytest
from test_ui_browser import _PICK_REGION, _REGION_SHARE, STEP_TIMEOUT_MS, _wait_idle, browser  # noqa: F401

from tests.ui_helpers import camvid_photos, running_server


@pytest.fixture(scope="module")
def server(tiny_backbone, tmp_path_factory):
    """One server for the module, with a folder of two photos for the picker."""
    tmp = tmp_path_factory.mktemp("ui-first-hour")
    folder = tmp / "photos"
    folder.mkdir()
    photos = camvid_photos(2)
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    with running_server(tiny_backbone, tmp, images_dir=folder) as (url, session):
        yield url, session, photos


# Counts the page's busy/idle switches: a quick segment can go busy and back to idle between two polls of
# `wait_for_function`, so waiting to *see* "busy" could wait forever; a count of switches cannot miss it.
_COUNT_STATE_CHANGES = """() => {
    window.rnsStateChanges = 0;
    if (!window.rnsStateObserver) {
        const count = (records) => { window.rnsStateChanges += records.length; };
        window.rnsStateObserver = new MutationObserver(count);
        window.rnsStateObserver.observe(document.body, {attributes: true, attributeFilter: ["data-state"]});
    }
}"""


def _segment(page, classes: str) -> None:
    page.fill("#classes", classes)
    page.evaluate(_COUNT_STATE_CHANGES)
    page.click("#segment-btn")
    page.wait_for_function("window.rnsStateChanges > 0", timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)


def _click_pixel(page, x: int, y: int) -> None:
    box = page.locator("#overlay-canvas").bounding_box()
    width, height = page.evaluate("[window.rnsUi.width, window.rnsUi.height]")
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width,
                     box["y"] + (y + 0.5) * box["height"] / height)


def test_the_picker_names_a_photo_only_while_it_is_open(browser, server) -> None:  # noqa: F811
    url, _session, photos = server
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#folder:not([hidden])", timeout=STEP_TIMEOUT_MS)
    assert page.input_value("#folder-select") == ""
    assert page.locator("#folder-select option:checked").inner_text() == "(choose a photo)"
    page.fill("#classes", "road")
    page.select_option("#folder-select", photos[1].name)
    _wait_idle(page)
    assert page.input_value("#folder-select") == photos[1].name
    page.set_input_files("#file-input", str(photos[0]))  # an upload is not the folder's photo
    opened = f"window.rnsUi.file.name === {photos[0].name!r} && window.rnsUi.folderIndex === -1"
    page.wait_for_function(opened, timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.input_value("#folder-select") == ""
    page.close()


def test_class_choice_corrections_background_and_colours_follow_names(browser, server) -> None:  # noqa: F811
    url, session, photos = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#model-info:not(:empty)", timeout=STEP_TIMEOUT_MS)
    assert "brush size" in page.locator("label:has(#brush-size)").inner_text()
    page.fill("#classes", "road, car, bicycle")
    page.set_input_files("#file-input", str(photos[0]))
    _wait_idle(page)
    status = page.inner_text("#status-text")
    assert "this photo's features" in status and "text only" in status and "adapted)" not in status, status
    colour_of = "(name) => window.rnsUi.colours[window.rnsUi.classes.indexOf(name)]"
    car_colour = page.evaluate(colour_of, "car")

    # Item 15: the picked class is kept by name when the list changes, never moved to another class.
    page.click("#legend li[data-class-name='bicycle']")
    _segment(page, "pole, bicycle, car")
    assert page.evaluate("[window.rnsUi.pickedName, window.rnsUi.picked]") == ["bicycle", 2]
    assert page.evaluate(colour_of, "car") == car_colour  # item 16: colours follow the name

    # Item 16: a corrected region stays in view, also after its class leaves the list, and is taught.
    page.click("#legend li[data-class-name='car']")
    pick = page.evaluate(_PICK_REGION, [3])
    _click_pixel(page, pick["x"], pick["y"])
    _segment(page, "pole")
    assert page.evaluate("window.rnsUi.classes") == ["background", "pole", "car"]
    assert "corrections of car are kept" in page.inner_text("#status-text")
    assert page.evaluate(_REGION_SHARE, [pick["region"], 2]) == 1.0
    assert page.evaluate("window.rnsUi.picked") == 2  # car is back in the legend, still picked
    page.click("#teach-btn")
    page.wait_for_function("window.rnsUi.lastSegment && window.rnsUi.lastSegment.memory_prototypes > 0",
                           timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.evaluate(_REGION_SHARE, [pick["region"], 2]) == 1.0  # still in view after Teach
    assert [c["name"] for c in session.memory_summary()["classes"]] == ["car"]

    # Item 15: a picked class no longer in the list is not silently replaced by another one.
    page.click("#legend li[data-class-name='pole']")
    _segment(page, "road")
    assert page.evaluate("window.rnsUi.picked") == -1
    assert "not in the list any more" in page.inner_text("#status-text")
    _click_pixel(page, 10, 10)
    assert "pick a class in the legend" in page.inner_text("#error")

    # Item 16: teaching the whole photo stores the named classes, never "background".
    page.click("#legend li[data-class-name='road']")
    page.check("#whole-photo")
    page.click("#teach-btn")
    taught = "/replaced|added|unchanged/.test(document.getElementById('status-text').textContent)"
    page.wait_for_function(taught, timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    stored = sorted(c["name"] for c in session.memory_summary()["classes"])
    assert "background" not in stored and "car" in stored, stored
    page.close()
    assert errors == []
