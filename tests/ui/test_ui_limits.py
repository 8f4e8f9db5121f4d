"""The ui on hostile input (a real server on 127.0.0.1): odd file names, streamed uploads, many at once."""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import numpy as np
import pytest

from tests.ui_helpers import camvid_photos, png_bytes, running_server

httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install '.[test]'")
pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")

TIMEOUT = httpx.Timeout(120.0)
LIMIT = 400_000  # bytes per uploaded file; the body cap is about 2 * LIMIT + 256 kB


def test_a_file_name_that_is_not_utf8_is_left_out_of_the_listing_with_a_line(tiny_backbone, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    good = png_bytes(np.zeros((8, 8), np.uint8))
    (folder / "good.png").write_bytes(good)
    bad_name = os.fsdecode(b"caf\xe9.png")
    try:
        (folder / bad_name).write_bytes(good)
    except (OSError, UnicodeEncodeError) as error:
        pytest.skip(f"this file system does not take non-UTF-8 names ({error})")
    with running_server(tiny_backbone, tmp_path, images_dir=folder) as (url, _session):
        response = httpx.get(f"{url}api/images", timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["images"] == ["good.png"]
        (line,) = body["skipped"]
        assert "caf\\xe9.png" in line and "UTF-8" in line
        assert httpx.get(f"{url}api/images/good.png", timeout=TIMEOUT).content == good


def _chunked_upload(url: str, total: int) -> tuple[int, bytes]:
    """POST a multipart image of `total` bytes in chunks, with no Content-Length, as a raw client.

    Stops sending as soon as the server answers; returns how many body bytes were sent by then and the
    answer's first bytes.
    """
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    boundary = b"rnsboundary"
    chunk = b"\0" * 65536
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                     + b"\r\nContent-Type: multipart/form-data; boundary=" + boundary
                     + b"\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        head = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="big.png"'
                b"\r\nContent-Type: image/png\r\n\r\n")  # fmt: skip
        sent = 0
        for piece in [head] + [chunk] * (total // len(chunk)):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        answer = b""
        deadline = time.monotonic() + 60
        while b"}" not in answer and time.monotonic() < deadline:  # the JSON error's end
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return sent, answer


def test_a_chunked_upload_is_cut_off_at_the_limit_while_it_streams(tiny_backbone, tmp_path) -> None:
    total = 96 * 1024 * 1024
    with running_server(tiny_backbone, tmp_path, max_upload_bytes=LIMIT) as (url, _session):
        sent, answer = _chunked_upload(url, total)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"over the limit" in answer
        # The answer came while the body was still streaming: the cap (about 1 MB) plus what the
        # kernel's socket buffers took in, far from the whole body.
        assert sent < total // 3, f"{sent:,} of {total:,} bytes were sent before the 413"
        # The server still answers afterwards.
        assert httpx.get(f"{url}api/memory", timeout=TIMEOUT).status_code == 200


def test_photos_in_flight_are_bounded(tiny_backbone, tmp_path) -> None:
    """Eight photos uploaded at once: at most `photos_in_flight` (default 2) are decoded and segmented
    at a time; the rest wait their turn instead of each holding a decoded photo in memory."""
    from rns.ui.config import DEFAULT_PHOTOS_IN_FLIGHT

    photos = camvid_photos(8)
    busy = 0
    most = 0
    lock = threading.Lock()
    with running_server(tiny_backbone, tmp_path) as (url, session):
        real_open = session.photos.open

        def counting_open(data: bytes, name: str):  # the real decode, with a count of how many overlap
            nonlocal busy, most
            with lock:
                busy += 1
                most = max(most, busy)
            try:
                time.sleep(0.3)  # widen the window in which requests could overlap
                return real_open(data, name)
            finally:
                with lock:
                    busy -= 1

        session.photos.open = counting_open
        results: list[int] = []

        def segment(photo) -> None:
            response = httpx.post(f"{url}api/segment", files={"image": (photo.name, photo.read_bytes())},
                                  data={"classes": "road,car"}, timeout=TIMEOUT)  # fmt: skip
            results.append(response.status_code)

        threads = [threading.Thread(target=segment, args=(photo,)) for photo in photos]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    assert results == [200] * len(photos)
    assert 1 <= most <= DEFAULT_PHOTOS_IN_FLIGHT, most
