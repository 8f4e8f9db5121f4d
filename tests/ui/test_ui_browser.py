"""The `rns ui` page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright).

The loop a person runs: open a CamVid photo, segment, correct a region, teach, and check that the page
segmented again, the memory grew and the corrected region now has the taught class. The tiny random
model proves the loop (features cached, example stored and used at once), not accuracy. Set
RNS_UI_SCREENSHOTS=DIR to keep screenshots of the page before and after the correction.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ui_helpers import camvid_photos, running_server

CHROMIUM = os.environ.get("RNS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
STEP_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip)")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set RNS_CHROMIUM)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _wait_idle(page) -> None:
    page.wait_for_function("document.body.dataset.state === 'idle' && window.rnsUi.labels !== null",
                           timeout=STEP_TIMEOUT_MS)  # fmt: skip


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("RNS_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


# The biggest region that is not yet mostly one of `targets`, and one of its pixels (the page's own data).
_PICK_REGION = """(targets) => {
  const s = window.rnsUi, {starts, pixels} = s.regionPixels;
  let best = -1, bestSize = 0;
  for (let r = 0; r + 1 < starts.length; r++) {
    const size = starts[r + 1] - starts[r];
    let hits = 0;
    for (let k = starts[r]; k < starts[r + 1]; k++) hits += targets.includes(s.labels[pixels[k]]);
    if (hits < size / 2 && size > bestSize) { best = r; bestSize = size; }
  }
  const pixel = pixels[starts[best] + Math.floor(bestSize / 2)];
  return {region: best, size: bestSize, x: pixel % s.width, y: Math.floor(pixel / s.width)};
}"""

_REGION_SHARE = """([region, target]) => {
  const s = window.rnsUi, {starts, pixels} = s.regionPixels;
  let hits = 0;
  for (let k = starts[region]; k < starts[region + 1]; k++) hits += s.labels[pixels[k]] === target;
  return hits / (starts[region + 1] - starts[region]);
}"""

# The same share in the model's own answer (the page draws the photo's corrections over it).
_PREDICTED_SHARE = _REGION_SHARE.replace("s.labels[", "s.predicted[")


def test_open_segment_correct_teach_and_resegment_in_chromium(browser, tiny_backbone, tmp_path) -> None:
    (photo,) = camvid_photos(1)
    errors: list[str] = []
    with running_server(tiny_backbone, tmp_path) as (url, session):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        outside: list[str] = []
        page.on("request", lambda request: request.url.startswith(url) or outside.append(request.url))
        page.goto(url)
        page.wait_for_selector("#model-info:not(:empty)", timeout=STEP_TIMEOUT_MS)
        page.fill("#classes", "road, car")
        page.set_input_files("#file-input", str(photo))
        _wait_idle(page)
        assert page.evaluate("window.rnsUi.classes") == ["background", "road", "car"]
        assert "Segmented" in page.inner_text("#status-text")
        _screenshot(page, "ui-before.png")

        car = 2
        page.click("#legend li[data-class-name='car']")
        assert page.evaluate("window.rnsUi.picked") == car
        pick = page.evaluate(_PICK_REGION, [car])
        assert pick["size"] > 0
        box = page.locator("#overlay-canvas").bounding_box()
        size = page.evaluate("[window.rnsUi.width, window.rnsUi.height]")
        page.mouse.click(box["x"] + (pick["x"] + 0.5) * box["width"] / size[0],
                         box["y"] + (pick["y"] + 0.5) * box["height"] / size[1])  # fmt: skip
        assert page.evaluate(_REGION_SHARE, [pick["region"], car]) == 1.0
        assert page.evaluate("window.rnsUi.touched.reduce((a, b) => a + b, 0)") == pick["size"]
        hover = page.inner_text("#hover")
        assert hover.endswith(": car"), hover
        _screenshot(page, "ui-corrected.png")

        assert page.locator("#memory-list li").count() == 0
        page.click("#teach-btn")
        page.wait_for_function("window.rnsUi.lastSegment && window.rnsUi.lastSegment.memory_prototypes > 0",
                               timeout=STEP_TIMEOUT_MS)  # fmt: skip
        _wait_idle(page)
        assert page.locator("#error").is_hidden(), page.inner_text("#error")
        memory = page.locator("#memory-list li[data-class-name='car']")
        assert int(memory.get_attribute("data-prototypes")) >= 1
        assert session.memory_summary()["photos"] == 1
        # Segmented again from the cached features, with the new example used at once.
        assert page.evaluate("window.rnsUi.lastSegment.computed_features") is False
        share = page.evaluate(_PREDICTED_SHARE, [pick["region"], car])
        assert share > 0.5, f"only {share:.0%} of the corrected region is car after teaching"
        assert page.evaluate(_REGION_SHARE, [pick["region"], car]) == 1.0  # the correction stays in view
        _screenshot(page, "ui-after.png")

        # A second correction on the same photo, with a class typed in: teaching replaces the photo's
        # example, which must still carry the first correction (the page accumulates them).
        page.fill("#new-class", "tree")
        page.click("#add-class-btn")
        tree = 3
        assert page.evaluate("window.rnsUi.picked") == tree
        assert page.input_value("#classes") == "road, car, tree"
        second = page.evaluate(_PICK_REGION, [tree, car])
        assert second["region"] != pick["region"]
        page.mouse.click(box["x"] + (second["x"] + 0.5) * box["width"] / size[0],
                         box["y"] + (second["y"] + 0.5) * box["height"] / size[1])  # fmt: skip
        page.click("#teach-btn")
        page.wait_for_function("/replaced/.test(document.getElementById('status-text').textContent)",
                               timeout=STEP_TIMEOUT_MS)  # fmt: skip
        _wait_idle(page)
        assert session.memory_summary()["photos"] == 1
        assert page.evaluate(_PREDICTED_SHARE, [pick["region"], car]) > 0.5
        assert page.evaluate("window.rnsUi.classes") == ["background", "road", "car", "tree"]
        assert page.evaluate(_PREDICTED_SHARE, [second["region"], tree]) > 0.5
        assert page.locator("#memory-list li[data-class-name='tree']").count() == 1

        # Undo restores the first example: tree leaves the memory, car stays.
        page.click("#undo-btn")
        page.wait_for_function("window.rnsUi.memory.classes.length === 1", timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        assert page.locator("#memory-list li[data-class-name='tree']").count() == 0
        assert page.locator("#memory-list li[data-class-name='car']").count() == 1

        # The memory panel removes a class (after the browser's confirmation).
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#memory-list li[data-class-name='car'] button")
        page.wait_for_function("window.rnsUi.memory.classes.length === 0", timeout=STEP_TIMEOUT_MS)
        assert session.memory_summary()["prototypes"] == 0

        page.close()
    assert errors == []
    assert outside == [], f"the page requested something outside the server: {outside}"


def test_a_bad_upload_shows_an_error_on_the_page(browser, tiny_backbone, tmp_path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a photo")
    with running_server(tiny_backbone, tmp_path) as (url, _session):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#model-info:not(:empty)", timeout=STEP_TIMEOUT_MS)
        page.set_input_files("#file-input", str(bad))
        page.wait_for_selector("#error:not([hidden])", timeout=STEP_TIMEOUT_MS)
        message = page.inner_text("#error")
        assert "broken.jpg" in message and "not an image" in message and "Traceback" not in message
        page.close()


def test_stepping_through_the_images_folder(browser, tiny_backbone, tmp_path) -> None:
    photos = camvid_photos(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    with running_server(tiny_backbone, tmp_path, images_dir=folder) as (url, _session):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#folder:not([hidden])", timeout=STEP_TIMEOUT_MS)
        page.fill("#classes", "road")
        page.click("#next-btn")
        _wait_idle(page)
        assert page.evaluate("window.rnsUi.file.name") == photos[0].name
        page.click("#next-btn")
        page.wait_for_function(f"window.rnsUi.file.name === {photos[1].name!r}", timeout=STEP_TIMEOUT_MS)
        _wait_idle(page)
        assert page.input_value("#folder-select") == photos[1].name
        assert page.evaluate("window.rnsUi.classes") == ["background", "road"]
        page.close()


def test_a_dropped_photo_opens_and_segments(browser, tiny_backbone, tmp_path) -> None:
    import base64

    (photo,) = camvid_photos(1)
    with running_server(tiny_backbone, tmp_path) as (url, _session):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#model-info:not(:empty)", timeout=STEP_TIMEOUT_MS)
        page.fill("#classes", "sky")
        page.evaluate(
            """([name, data]) => {
                const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
                document.getElementById("drop-zone").dispatchEvent(
                    new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }""",
            [photo.name, base64.b64encode(photo.read_bytes()).decode()],
        )
        _wait_idle(page)
        assert page.evaluate("window.rnsUi.file.name") == photo.name
        assert page.evaluate("window.rnsUi.classes") == ["background", "sky"]
        page.close()
