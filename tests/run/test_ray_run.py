"""`rns segment --ray` on a local Ray instance held to loopback: the local run's promises, on Ray Data.

One Ray session serves the whole module (starting one costs ~5 s and ~2.5 GB); its node must report
127.0.0.1, or the module stops before any work is sent. Every test has a hard time limit (SIGALRM), and
the Ray processes this module started are killed by pid at the end, should `ray.shutdown` leave any.
The CLI is run in-process: with a Ray connection already open, `--ray` uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from cli_runner import TINY, rns
from PIL import Image
from synthetic_images import two_texture_image

SESSION_LIMIT_S = 120
TEST_LIMIT_S = 180
# What differs between two runs of the same images: wall times and dates, never content.
VOLATILE = {"timings", "seconds", "wall_seconds", "images_per_second", "median_seconds", "finished_at"}


@pytest.fixture(autouse=True)
def hard_time_limit():
    """Fail a test that runs past TEST_LIMIT_S instead of hanging the suite on a stuck Ray."""

    def expire(signum, frame):
        raise TimeoutError(f"test ran past {TEST_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Ray's raylet, GCS and workers are children of the driver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _is_ray_process(pid: int) -> bool:
    """Still running and Ray's (raylet, GCS, a `ray::` worker), not a pid reused by another program."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "ray" in command


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3 API (moto on 127.0.0.1) whose AWS variables the Ray workers inherit, or None without it.

    Started before Ray: workers take their environment from the Ray instance when it starts.
    """
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        yield None
        return
    from s3_server import local_s3

    with local_s3() as s3:
        yield s3


@pytest.fixture(scope="module")
def ray_local(s3_endpoint):
    """A local Ray instance with 2 CPUs, on 127.0.0.1 only, for the whole module."""
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'rns[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from rns.run.ray_session import node_addresses, ray_connection

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("Ray did not start")))
    signal.alarm(SESSION_LIMIT_S)
    session = ray_connection(None, num_cpus=2)
    ray = session.__enter__()
    signal.alarm(0)
    started = _descendants(os.getpid())
    try:
        if ray.util.get_node_ip_address() != "127.0.0.1" or node_addresses(ray) != ["127.0.0.1"]:
            pytest.fail(f"Ray could not be held to loopback (nodes at {node_addresses(ray)}): stopped here")
        yield ray
    finally:
        started += _descendants(os.getpid())  # with the workers started since, before Ray's shutdown
        session.__exit__(None, None, None)
        for pid in set(started):
            if _is_ray_process(pid):  # only Ray's processes that this module's session started
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def comparable(path: Path) -> object:
    """A file's content as two equal runs must reproduce it: bytes, or JSON without timings and dates."""
    if path.suffix != ".json":
        return path.read_bytes()

    def strip(value: object) -> object:
        if isinstance(value, dict):
            # A done record's size of an image's summary.json varies with the digits of its timings.
            timed = str(value.get("name", "")).endswith(".summary.json")
            return {key: strip(item) for key, item in value.items()
                    if key not in VOLATILE and not (timed and key == "bytes")}  # fmt: skip
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return strip(json.loads(path.read_text()))


def folder_content(folder: Path) -> dict[str, object]:
    return {str(p.relative_to(folder)): comparable(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".rns.lock"}  # fmt: skip


def events(stdout: str) -> list[tuple[str, int, str]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [(e["status"], e["index"], e["stem"]) for e in lines if e["event"] == "image"]


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for seed in range(3):
        Image.fromarray(two_texture_image(20 + seed)).save(folder / f"p{seed}.png")
    Image.fromarray(two_texture_image(30)).save(folder / "sub" / "q.jpg")
    return folder


@pytest.fixture()
def memory(tmp_path: Path, capsys) -> Path:
    """A memory with one example of "car" (left half), so the workers open and pin a real one."""
    image, mask = tmp_path / "support.png", tmp_path / "support_mask.png"
    Image.fromarray(two_texture_image(1)).save(image)
    half = np.zeros((120, 160), dtype=np.uint8)
    half[:, :80] = 1
    Image.fromarray(half).save(mask)
    path = tmp_path / "memory.zarr"
    code, _, err = rns(["add-support", image, mask, "--class", "car", "--memory", path, *TINY], capsys)
    assert code == 0, err
    return path


def test_ray_run_writes_what_a_local_run_writes(ray_local, photos, memory, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["segment", photos, "--classes", "car,road", "--out", out, "--memory", memory, "--save", "all",
            "--json", *TINY]  # fmt: skip
    code, local_stdout, err = rns(base, capsys)
    assert code == 0, err
    local = folder_content(out)
    shutil.rmtree(out)  # the same --out for both runs, so even the paths written inside are equal
    code, ray_stdout, err = rns([*base, "--ray"], capsys)
    assert code == 0, err
    assert folder_content(out) == local
    assert len(local) == 4 * 6 + 2  # five outputs and a done record per image, summary and classes
    # Progress: the same events, in input order, as the local run.
    assert events(ray_stdout) == events(local_stdout)
    assert [status for status, _, _ in events(ray_stdout)] == ["done"] * 4


def test_a_corrupt_image_is_reported_and_skipped_as_in_a_local_run(ray_local, photos, tmp_path, capsys):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    results = {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        out = tmp_path / "out"
        code, _, err = rns(["segment", photos, "--classes", "car", "--out", out, "-q", *extra, *TINY], capsys)
        results[name] = (code, folder_content(out))
        shutil.rmtree(out)
    code, content = results["ray"]
    assert code == 1  # some images failed
    assert results["ray"] == results["local"]
    summary = content["summary.json"]
    assert summary["counts"] == {"total": 5, "done": 4, "skipped": 0, "failed": 1}
    assert summary["failures"][0]["path"].endswith("broken.png")
    assert "broken.png" in summary["failures"][0]["reason"]
    assert "broken.rns.json" not in content


def test_resume_across_local_and_ray_runs(ray_local, photos, tmp_path, capsys):
    out = tmp_path / "out"
    later = tmp_path / "later"
    later.mkdir()
    for name in ("p1.png", "p2.png"):  # a partly done folder: two images arrive after a local run
        (photos / name).rename(later / name)
    base = ["segment", photos, "--classes", "car", "--out", out, "--json", *TINY]
    code, _, err = rns(base, capsys)
    assert code == 0, err
    for name in ("p1.png", "p2.png"):
        (later / name).rename(photos / name)
    code, stdout, err = rns([*base, "--ray"], capsys)
    assert code == 0, err
    assert [(status, stem) for status, _, stem in events(stdout)] == [
        ("skipped", "p0"), ("done", "p1"), ("done", "p2"), ("skipped", "sub/q")]
    code, stdout, err = rns([*base, "--ray"], capsys)  # nothing left to do, on Ray
    assert code == 0, err
    assert [status for status, _, _ in events(stdout)] == ["skipped"] * 4
    code, stdout, err = rns(base, capsys)  # nor locally: Ray's done records are the local ones
    assert code == 0, err
    assert [status for status, _, _ in events(stdout)] == ["skipped"] * 4
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 4


def test_workers_read_the_memory_at_the_commit_the_driver_pinned(ray_local, photos, memory, tmp_path, capsys):
    from rns.run.ray_run import run_folder_on_ray
    from rns.run.runner import run_folder
    from rns.segment.pipeline import build_segmenter

    def segmenter():
        return build_segmenter("car", memory_path=memory, model="rns-tiny-test", pretrained="random",
                               device="cpu")  # fmt: skip

    pinned = segmenter()
    out = tmp_path / "out"
    run_folder(pinned, [photos], out)
    expected = folder_content(out)
    shutil.rmtree(out)
    image, mask = tmp_path / "more.png", tmp_path / "more_mask.png"  # someone adds to the memory meanwhile
    Image.fromarray(two_texture_image(2)).save(image)
    Image.fromarray(np.ones((120, 160), dtype=np.uint8)).save(mask)
    code, _, err = rns(["add-support", image, mask, "--class", "car", "--memory", memory, *TINY], capsys)
    assert code == 0, err
    assert segmenter().settings_key() != pinned.settings_key()  # the memory did change
    report = run_folder_on_ray(pinned, [photos], out)
    assert report.done == 4
    assert folder_content(out) == expected  # every worker read the driver's commit, not the newest


def test_a_memory_on_s3_gives_the_local_run_outputs(ray_local, s3_endpoint, photos, tmp_path, capsys):
    if s3_endpoint is None:
        pytest.skip("the s3 extra or moto is not installed (pip install -e '.[s3,test]')")
    url = f"s3://{s3_endpoint.new_bucket()}/team/memory"
    image, mask = tmp_path / "support.png", tmp_path / "support_mask.png"
    Image.fromarray(two_texture_image(1)).save(image)
    half = np.zeros((120, 160), dtype=np.uint8)
    half[:, 80:] = 1
    Image.fromarray(half).save(mask)
    code, _, err = rns(["add-support", image, mask, "--class", "car", "--memory", url, *TINY], capsys)
    assert code == 0, err
    out = tmp_path / "out"
    base = ["segment", photos, "--classes", "car", "--out", out, "--memory", url, "-q", *TINY]
    code, _, err = rns(base, capsys)
    assert code == 0, err
    local = folder_content(out)
    shutil.rmtree(out)
    code, _, err = rns([*base, "--ray"], capsys)  # the workers open the URL at the driver's commit
    assert code == 0, err
    assert folder_content(out) == local
    assert local["summary.json"]["counts"]["done"] == 4
