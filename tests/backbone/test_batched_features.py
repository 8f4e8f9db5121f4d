"""Issue 16, GPU throughput: several images per backbone forward give each image its single-image result.

`dense_features_many` puts the crops of several images into shared forwards; every image must still get
exactly what `dense_features` gives it alone, whatever its size and aspect ratio (so whatever its number
and shape of crops), and `Segmenter.segment_many` must give the labels `segment` gives. Tiny random model on
CPU; one slow test repeats the label check with a randomly initialised ViT-B-16 (the real architecture).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from shared_data import CAMVID  # RNS_SHARED, else ../shared

from rns.backbone import build_backbone
from rns.backbone.batching import MAX_AUTO_IMAGES, images_per_forward
from rns.backbone.geometry import window_starts
from rns.segment.pipeline import Segmenter, SegmentOptions

# (width, height): landscape, portrait, panoramas, a strip thinner than a crop (another crop shape), tiny
SIZES = [(480, 360), (360, 480), (1000, 300), (3000, 200), (40, 40), (1200, 448)]


def _photo(width: int, height: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _crops(backbone, image: Image.Image) -> tuple[tuple[int, int], int]:
    """(crop shape in patches, number of crops) of an image's test-time sliding window."""
    gh, gw = backbone.grid_size(image.width, image.height)
    window, patch = backbone.spec.window, backbone.patch_size
    ch, cw = min(window.crop // patch, gh), min(window.crop // patch, gw)
    step = window.stride // patch
    return (ch, cw), len(window_starts(gh, ch, step)) * len(window_starts(gw, cw, step))


def _counting_forwards(backbone, monkeypatch) -> list[int]:
    """Record the batch size of every crop forward the backbone runs."""
    dense = backbone._dense
    original = dense.crop_features
    sizes: list[int] = []

    def counted(crops: torch.Tensor) -> torch.Tensor:
        sizes.append(int(crops.shape[0]))
        return original(crops)

    monkeypatch.setattr(dense, "crop_features", counted)
    return sizes


def test_the_images_really_differ_in_crops(tiny_backbone):
    """The premise of the next test: these sizes give different crop counts and more than one crop shape."""
    plans = [_crops(tiny_backbone, _photo(w, h, 0)) for w, h in SIZES]
    assert len({count for _, count in plans}) >= 4
    assert len({shape for shape, _ in plans}) >= 2
    assert max(count for _, count in plans) > tiny_backbone.spec.window.batch_size  # chunks, too


def test_batched_features_equal_single_image_features(tiny_backbone, monkeypatch):
    images = [_photo(w, h, seed) for seed, (w, h) in enumerate(SIZES)]
    single = [tiny_backbone.dense_features(image) for image in images]
    forwards = _counting_forwards(tiny_backbone, monkeypatch)
    batched = tiny_backbone.dense_features_many(images)
    assert len(batched) == len(images)
    for image, one, many in zip(images, single, batched, strict=True):
        assert many.shape == one.shape == (*tiny_backbone.grid_size(image.width, image.height), 32)
        torch.testing.assert_close(many, one, atol=1e-6, rtol=0)
    # The crops were shared: fewer forwards than the images alone take, some with crops of several images.
    alone = 0
    for image in images:
        _, count = _crops(tiny_backbone, image)
        alone += -(-count // tiny_backbone.spec.window.batch_size)
    assert len(forwards) < alone
    assert max(forwards) > max(_crops(tiny_backbone, image)[1] for image in images[:2])
    assert sum(forwards) == sum(_crops(tiny_backbone, image)[1] for image in images)


def test_one_image_batched_is_the_single_path(tiny_backbone):
    image = _photo(1000, 300, 3)
    (many,) = tiny_backbone.dense_features_many([image])
    assert torch.equal(many, tiny_backbone.dense_features(image))
    assert tiny_backbone.dense_features_many([]) == []


def test_auto_batch_size_is_one_on_cpu_and_grows_with_free_gpu_memory(tiny_backbone):
    assert tiny_backbone.auto_batch_size() == 1
    dense = tiny_backbone._dense
    small, large = images_per_forward(dense, 1 << 20), images_per_forward(dense, 1 << 36)
    assert small == 1 and large == MAX_AUTO_IMAGES  # a little memory: one at a time; plenty: the cap


def _camvid_images(count: int) -> list[Image.Image]:
    folder = CAMVID / "test" / "images"
    paths = sorted(folder.glob("*.jpg"))[:count]
    if len(paths) < count:
        pytest.skip(f"CamVid test images not found under {folder} (RNS_SHARED=DIR: the folder with data/)")
    return [Image.open(path).convert("RGB") for path in paths]


def _assert_same_segmentations(segmenter: Segmenter, images: list[Image.Image]) -> None:
    single = [segmenter.segment(image) for image in images]
    batched = segmenter.segment_many(images)
    for one, many in zip(single, batched, strict=True):
        assert np.array_equal(one.labels, many.labels)
        assert one.labels.shape == many.labels.shape
        assert np.array_equal(one.probabilities, many.probabilities)


def test_segment_many_gives_the_labels_of_segment_on_camvid(tiny_backbone):
    images = _camvid_images(4)
    images.append(images[0].resize((270, 480)))  # portrait: crops along the other axis
    options = SegmentOptions(keep_probabilities=True)
    _assert_same_segmentations(Segmenter(tiny_backbone, ["road", "sky", "car"], options=options), images)


@pytest.mark.slow
def test_segment_many_gives_the_labels_of_segment_with_vit_b_16():
    """The real architecture at random weights: 12 blocks, 448-pixel crops, the same compute path."""
    images = _camvid_images(2)
    backbone = build_backbone("ViT-B-16", pretrained="random", device="cpu")
    # Two classes, no background: few text prompts to encode, so the test costs mostly the image forwards.
    options = SegmentOptions(zero_shot=True, background=False, keep_probabilities=True)
    _assert_same_segmentations(Segmenter(backbone, ["road", "sky"], options=options), images)


def test_out_of_gpu_memory_in_a_batch_is_a_device_error_naming_the_fix(tiny_backbone, monkeypatch):
    """The runner retries a batch that raised a user error one image at a time; GPU memory running out
    for a whole batch must be such an error, not a crash."""
    from rns.errors import DeviceError

    def too_big(images):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tiny_backbone, "dense_features_many", too_big)
    segmenter = Segmenter(tiny_backbone, ["road", "sky"], options=SegmentOptions(zero_shot=True))
    with pytest.raises(DeviceError, match="smaller --batch-size"):
        segmenter.segment_many([_photo(64, 48, 0), _photo(64, 48, 1)])
