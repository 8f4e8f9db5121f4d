"""The on-disk region cache: hits return the same map, broken entries are recomputed, keys separate inputs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from rns.regions import CachedProposer, RegionCache, build_region_proposer


class CountingProposer:
    """Returns a fixed pattern and counts how often it had to compute."""

    name = "counting"

    def __init__(self, setting: int = 3) -> None:
        self.setting = setting
        self.calls = 0

    def settings_key(self) -> str:
        return f"setting={self.setting}"

    def propose(self, image: Image.Image) -> np.ndarray:
        self.calls += 1
        pattern = np.arange(image.width * image.height) % self.setting
        return pattern.reshape(image.height, image.width).astype(np.int32)


def _image(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((20, 30, 3)) * 255).astype(np.uint8))


def test_hit_returns_identical_map_without_recomputing(tmp_path):
    inner = CountingProposer()
    proposer = CachedProposer(inner, RegionCache(tmp_path))
    first = proposer.propose(_image())
    second = proposer.propose(_image())
    assert inner.calls == 1
    assert second.dtype == np.int32 and (first == second).all()
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_other_image_or_settings_miss(tmp_path):
    cache = RegionCache(tmp_path)
    inner = CountingProposer()
    CachedProposer(inner, cache).propose(_image(0))
    CachedProposer(inner, cache).propose(_image(1))
    other_settings = CountingProposer(setting=5)
    result = CachedProposer(other_settings, cache).propose(_image(0))
    assert inner.calls == 2 and other_settings.calls == 1
    assert result.max() == 4


def test_corrupt_entry_is_recomputed_and_rewritten(tmp_path):
    inner = CountingProposer()
    proposer = CachedProposer(inner, RegionCache(tmp_path))
    expected = proposer.propose(_image())
    (entry,) = tmp_path.rglob("*.npz")
    entry.write_bytes(b"not a zip file")
    assert (proposer.propose(_image()) == expected).all()
    assert inner.calls == 2
    assert (proposer.propose(_image()) == expected).all()  # the rewritten entry is good again
    assert inner.calls == 2


def test_entry_of_the_wrong_size_is_ignored(tmp_path):
    cache = RegionCache(tmp_path)
    inner = CountingProposer()
    key = cache.key(_image(), inner.name, inner.settings_key())
    cache.save(key, np.zeros((5, 5), dtype=np.int32))
    CachedProposer(inner, cache).propose(_image())
    assert inner.calls == 1


def test_large_ids_survive_the_compact_dtype(tmp_path):
    cache = RegionCache(tmp_path)
    region_map = np.arange(300 * 2, dtype=np.int32).reshape(2, 300)
    cache.save("ab" * 32, region_map)
    loaded = cache.load("ab" * 32, (2, 300))
    assert loaded.dtype == np.int32 and (loaded == region_map).all()


def test_unwritable_cache_is_not_fatal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    inner = CountingProposer()
    result = CachedProposer(inner, RegionCache(blocker / "regions")).propose(_image())
    assert result.shape == (20, 30)


def test_builder_caching_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("RNS_CACHE", str(tmp_path))
    assert not isinstance(build_region_proposer("superpixels"), CachedProposer)
    cached = build_region_proposer("superpixels", cache=True)
    assert isinstance(cached, CachedProposer)
    assert cached.cache.directory == tmp_path / "regions"
    assert build_region_proposer("none") is None
