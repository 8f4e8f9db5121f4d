"""The `rns ui` JSON API against a real uvicorn server on 127.0.0.1 (tiny random model, so the tests
prove wiring, identity, limits and errors; nothing about accuracy)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from tests.ui_helpers import (
    camvid_classes,
    camvid_mask,
    camvid_photos,
    decode_png_base64,
    png_bytes,
    running_server,
)

httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install '.[test]'")
pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")

TIMEOUT = httpx.Timeout(120.0)


@pytest.fixture(scope="module")
def server(tiny_backbone, tmp_path_factory):
    """One server for the module; tests that need an empty memory use their own."""
    folder = tmp_path_factory.mktemp("ui-api")
    with running_server(tiny_backbone, folder, max_upload_bytes=400_000, max_pixels=480 * 360 * 2) as running:
        yield running


def _segment(url: str, photo, classes: str = "road,car") -> httpx.Response:
    with photo.open("rb") as handle:
        return httpx.post(f"{url}api/segment", files={"image": (photo.name, handle, "image/jpeg")},
                          data={"classes": classes}, timeout=TIMEOUT)  # fmt: skip


def test_segment_returns_classes_fractions_and_an_id_png_of_the_image_size(server) -> None:
    url, _session = server
    (photo,) = camvid_photos(1)
    response = _segment(url, photo)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["classes"] == ["background", "road", "car"]
    labels = decode_png_base64(body["labels"])
    assert labels.shape == (360, 480) and labels.dtype == np.uint8
    assert labels.max() < 3
    counts = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert [body["fractions"][name] for name in body["classes"]] == pytest.approx(counts.tolist())

    again = _segment(url, photo).json()
    assert again["computed_features"] is False  # the photo's features were kept
    assert again["photo"] == body["photo"]
    by_id = httpx.post(f"{url}api/segment", data={"photo": body["photo"], "classes": "road,car"},
                       timeout=TIMEOUT)  # fmt: skip
    assert by_id.status_code == 200 and by_id.json()["labels"] == again["labels"]


def test_teach_stores_the_photo_as_add_support_would_and_undo_takes_it_back(tiny_backbone, tmp_path) -> None:
    from rns.io.imageio import image_content_hash
    from rns.teach.support_ids import support_source_id
    from support_memory import SupportMemory

    (photo,) = camvid_photos(1)
    names = camvid_classes()
    mask = camvid_mask(photo)
    with running_server(tiny_backbone, tmp_path) as (url, _session):
        def teach(mask_bytes: bytes) -> httpx.Response:
            files = {"image": (photo.name, photo.read_bytes(), "image/jpeg"),
                     "mask": ("mask.png", mask_bytes, "image/png")}  # fmt: skip
            return httpx.post(f"{url}api/teach", files=files,
                              data={"classes": ",".join(names)}, timeout=TIMEOUT)  # fmt: skip

        response = teach(mask.read_bytes())
        assert response.status_code == 200, response.text
        body = response.json()
        values = np.unique(np.asarray(Image.open(mask)))
        present = [names[v] for v in values if v != 255]
        assert body["status"] == "added"
        assert sorted(body["classes"]) == sorted(present)
        assert body["prototypes"] == len(present)
        assert body["source_id"] == image_content_hash(photo)  # the identity `rns add-support` gives it
        assert {entry["name"] for entry in body["memory"]["classes"]} == set(present)

        assert teach(mask.read_bytes()).json()["status"] == "unchanged"
        on_disk = SupportMemory.open(tmp_path / "memory", create=False)
        entries = {source.source_id: source.class_names for source in on_disk.sources()}
        # One entry per (photo, class), ids as `rns add-support` makes them.
        assert entries == {support_source_id(image_content_hash(photo), name): (name,) for name in present}

        segmented = _segment(url, photo, ",".join(names)).json()
        assert segmented["memory_prototypes"] == len(present)

        undone = httpx.post(f"{url}api/undo", timeout=TIMEOUT).json()
        assert undone["undone"] == "removed" and undone["memory"]["prototypes"] == 0
        nothing = httpx.post(f"{url}api/undo", timeout=TIMEOUT)
        assert nothing.status_code == 400 and "nothing to undo" in nothing.json()["error"]


def test_undo_of_a_replacing_teach_restores_the_previous_example(tiny_backbone, tmp_path) -> None:
    (photo,) = camvid_photos(1)
    with running_server(tiny_backbone, tmp_path) as (url, _session):
        first = np.full((360, 480), 255, np.uint8)
        first[:100] = 0
        second = first.copy()
        second[300:] = 1

        def teach(mask: np.ndarray) -> dict:
            response = httpx.post(f"{url}api/teach", files={"image": (photo.name, photo.read_bytes()),
                                  "mask": ("m.png", png_bytes(mask))}, data={"classes": "sky,road"},
                                  timeout=TIMEOUT)  # fmt: skip
            assert response.status_code == 200, response.text
            return response.json()

        assert teach(first)["status"] == "added"
        assert teach(second)["status"] == "replaced"
        memory = httpx.get(f"{url}api/memory", timeout=TIMEOUT).json()
        assert {c["name"] for c in memory["classes"]} == {"sky", "road"}
        restored = httpx.post(f"{url}api/undo", timeout=TIMEOUT).json()
        assert restored["undone"] == "restored"
        assert {c["name"]: c["prototypes"] for c in restored["memory"]["classes"]} == {"sky": 1}
        removed = httpx.post(f"{url}api/memory/remove", data={"name": "sky"}, timeout=TIMEOUT).json()
        assert removed["classes"] == [] and removed["photos"] == 0


def test_concurrent_teaches_all_land_in_the_memory(tiny_backbone, tmp_path) -> None:
    photos = camvid_photos(4)
    results: list[httpx.Response] = []
    with running_server(tiny_backbone, tmp_path) as (url, _session):
        def teach(photo) -> None:
            mask = np.full((360, 480), 255, np.uint8)
            mask[:180] = 0
            mask[180:] = 1
            results.append(httpx.post(f"{url}api/teach", files={"image": (photo.name, photo.read_bytes()),
                           "mask": ("m.png", png_bytes(mask))}, data={"classes": "sky,road"},
                           timeout=TIMEOUT))  # fmt: skip

        threads = [threading.Thread(target=teach, args=(photo,)) for photo in photos]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert [r.status_code for r in results] == [200] * len(photos), [r.text for r in results]
        memory = httpx.get(f"{url}api/memory", timeout=TIMEOUT).json()
        assert memory["photos"] == len(photos)
        assert {c["name"]: c["prototypes"] for c in memory["classes"]} == {"sky": 4, "road": 4}


def _error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


def test_bad_uploads_get_a_one_line_json_error(server) -> None:
    url, _session = server
    (photo,) = camvid_photos(1)
    post = lambda path, **kw: httpx.post(f"{url}{path}", timeout=TIMEOUT, **kw)  # noqa: E731
    _error(post("api/segment", files={"image": ("notes.txt", b"just some text")}, data={"classes": "car"}),
           400, "not an image")  # fmt: skip
    half = photo.read_bytes()[:3000]
    _error(post("api/segment", files={"image": ("half.jpg", half)}, data={"classes": "car"}), 400, "damaged")
    _error(post("api/segment", data={"classes": "car"}), 400, "no photo")
    _error(post("api/segment", data={"photo": "0" * 32, "classes": "car"}), 404, "not open")
    _error(post("api/teach", files={"image": (photo.name, photo.read_bytes())}, data={"classes": "car"}),
           422, "mask")  # fmt: skip
    image = {"image": (photo.name, photo.read_bytes())}
    wrong_size = png_bytes(np.zeros((10, 10), np.uint8))
    _error(post("api/teach", files={**image, "mask": ("m.png", wrong_size)}, data={"classes": "car"}),
           400, "10x10", "480x360")  # fmt: skip
    unknown_ids = png_bytes(np.full((360, 480), 7, np.uint8))
    _error(post("api/teach", files={**image, "mask": ("m.png", unknown_ids)}, data={"classes": "car"}),
           400, "ids [7]")  # fmt: skip
    nothing = png_bytes(np.full((360, 480), 255, np.uint8))
    _error(post("api/teach", files={**image, "mask": ("m.png", nothing)}, data={"classes": "car"}),
           400, "labels no pixel")  # fmt: skip
    two_colours = np.zeros((360, 480, 3), np.uint8)
    two_colours[:, :240] = (200, 30, 30)
    colour = png_bytes(two_colours)
    _error(post("api/teach", files={**image, "mask": ("m.png", colour)}, data={"classes": "car"}),
           400, "colour image")  # fmt: skip
    _error(post("api/teach", files={**image, "mask": ("m.png", b"garbage")}, data={"classes": "car"}),
           400, "not a readable image")  # fmt: skip
    _error(post("api/memory/remove", data={"name": "unicorn"}), 400, "no class 'unicorn'")


def test_oversize_images_and_uploads_are_refused_with_413(server) -> None:
    url, _session = server
    # Few bytes, too many pixels (limit 480*360*2): refused from the header, before decoding.
    huge = png_bytes(np.zeros((1000, 1000), np.uint8))
    _error(httpx.post(f"{url}api/segment", files={"image": ("huge.png", huge)}, data={"classes": "car"},
                      timeout=TIMEOUT), 413, "1000x1000", "too large")  # fmt: skip
    # Within the pixel limit but over the 400 kB byte limit (incompressible noise).
    noise = png_bytes(np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    assert len(noise) > 400_000
    _error(httpx.post(f"{url}api/segment", files={"image": ("noise.png", noise)}, data={"classes": "car"},
                      timeout=TIMEOUT), 413, "upload limit")  # fmt: skip
    # A body declared far over the limit is refused before it is read.
    big = b"x" * 2_000_000
    _error(httpx.post(f"{url}api/segment", files={"image": ("big.png", big)}, timeout=TIMEOUT),
           413, "over the limit")  # fmt: skip


def test_images_folder_serves_its_photos_and_nothing_else(tiny_backbone, tmp_path) -> None:
    photos = camvid_photos(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
    (folder / "link.png").symlink_to(secret)
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.png").write_bytes(secret.read_bytes())
    with running_server(tiny_backbone, tmp_path, images_dir=folder) as (url, _session):
        listing = httpx.get(f"{url}api/images", timeout=TIMEOUT).json()
        assert listing["images"] == sorted(photo.name for photo in photos)
        served = httpx.get(f"{url}api/images/{photos[0].name}", timeout=TIMEOUT)
        assert served.status_code == 200 and served.content == photos[0].read_bytes()
        for attempt in ("..%2Fsecret.png", "link.png", "sub%2Finner.png", "%2Fetc%2Fpasswd",
                        "..%2F..%2F..%2Fetc%2Fpasswd", "secret.png"):  # fmt: skip
            response = httpx.get(f"{url}api/images/{attempt}", timeout=TIMEOUT)
            assert response.status_code == 404, (attempt, response.status_code)
            message = response.json()["error"]
            assert "photo of the --images folder" in message or "Not Found" in message
            assert response.content != secret.read_bytes()
        # A raw "../" path (not normalised by the client) never leaves the folder either.
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            raw = client.send(client.build_request("GET", "/api/images/../../secret.png"))
            assert raw.status_code == 404 and raw.content != secret.read_bytes()


def test_without_images_folder_the_listing_says_so(server) -> None:
    url, _session = server
    _error(httpx.get(f"{url}api/images", timeout=TIMEOUT), 404, "no --images folder")
    _error(httpx.get(f"{url}api/images/x.jpg", timeout=TIMEOUT), 404, "no --images folder")


def test_the_page_and_its_files_are_served_with_nothing_from_outside(server) -> None:
    url, _session = server
    page = httpx.get(url, timeout=TIMEOUT)
    assert page.status_code == 200 and "<title>rns ui" in page.text
    for name in ("app.js", "png.js", "style.css"):
        asset = httpx.get(f"{url}static/{name}", timeout=TIMEOUT)
        assert asset.status_code == 200
        assert "http://" not in asset.text and "https://" not in asset.text, name
    assert "http://" not in page.text and "https://" not in page.text


def test_requests_from_other_sites_may_not_change_the_memory(server) -> None:
    url, session = server
    before = session.memory_summary()
    forged = httpx.post(f"{url}api/undo", headers={"Origin": "http://evil.example"}, timeout=TIMEOUT)
    _error(forged, 403, "evil.example", "refused")
    marked = httpx.post(f"{url}api/memory/remove", data={"name": "sky"}, timeout=TIMEOUT,
                        headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
    _error(marked, 403, "cross-site")
    # DNS rebinding: a foreign name that resolves to 127.0.0.1 reaches the socket but is refused.
    rebound = httpx.get(f"{url}api/memory", headers={"Host": "evil.example:7860"}, timeout=TIMEOUT)
    _error(rebound, 403, "evil.example")
    assert session.memory_summary() == before
    port = url.rstrip("/").rsplit(":", 1)[1]
    own = {"Origin": f"http://127.0.0.1:{port}"}
    same_origin = httpx.get(f"{url}api/memory", headers=own, timeout=TIMEOUT)
    assert same_origin.status_code == 200


class _HalvesProposer:
    """A stand-in for SAM (`--sam-checkpoint`): two regions, the left and right halves."""

    name = "halves"
    calls = 0

    def settings_key(self) -> str:
        return "halves"

    def propose(self, image) -> np.ndarray:
        _HalvesProposer.calls += 1
        region_map = np.zeros((image.height, image.width), np.int32)
        region_map[:, image.width // 2 :] = 1
        return region_map


def test_correction_regions_come_from_the_configured_proposer_once_per_photo(tiny_backbone, tmp_path) -> None:
    (photo,) = camvid_photos(1)
    with running_server(tiny_backbone, tmp_path, correction_regions=_HalvesProposer()) as (url, _session):
        for _ in range(2):
            answer = httpx.post(f"{url}api/open", files={"image": (photo.name, photo.read_bytes())},
                                data={"regions": "true"}, timeout=TIMEOUT).json()  # fmt: skip
            rgb = decode_png_base64(answer["regions"]).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            assert ids.shape == (360, 480)
            assert (ids[:, :240] == 0).all() and (ids[:, 240:] == 1).all()
    assert _HalvesProposer.calls == 1  # kept with the open photo
