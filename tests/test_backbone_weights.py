"""Where weights come from: tags (cached or not, online or not), checkpoint files, random init."""

from __future__ import annotations

import pytest
import torch

from rns.backbone import TINY_TEST_MODEL, BackboneSpec, build_backbone, check_weights
from rns.backbone import weights as weights_module
from rns.backbone.spec import CHECKPOINT_ENV, MODEL_ENV, PRETRAINED_ENV, VARIANT_ENV
from rns.errors import InputError, WeightsUnavailableError


@pytest.fixture
def nothing_cached(monkeypatch):
    """Pretend the open_clip / huggingface cache is empty, whatever this machine holds."""
    monkeypatch.setattr(weights_module, "cached_tag_file", lambda cfg: None)


def test_offline_tag_fails_with_one_line(monkeypatch, nothing_cached):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as excinfo:
        build_backbone("ViT-B-16", "laion2b_s34b_b88k", device="cpu")
    message = str(excinfo.value)
    assert "\n" not in message
    assert "ViT-B-16 / laion2b_s34b_b88k" in message
    assert "unset HF_HUB_OFFLINE" in message
    assert "--checkpoint FILE" in message and "internet" in message


def test_unreachable_hub_is_detected_without_hf_hub_offline(monkeypatch, nothing_cached):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens there
    assert weights_module.hub_reachable(timeout_s=1.0) is False
    with pytest.raises(WeightsUnavailableError, match="unreachable"):
        build_backbone("ViT-B-16", "laion2b_s34b_b88k", device="cpu")


def test_failed_download_is_one_line(monkeypatch, nothing_cached):
    import open_clip

    monkeypatch.setattr(weights_module, "hub_offline_forced", lambda: False)
    monkeypatch.setattr(weights_module, "hub_reachable", lambda timeout_s=3.0: True)

    def failing_download(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'laion2b_s34b_b88k': 503\nmore detail")

    monkeypatch.setattr(open_clip, "create_model", failing_download)
    with pytest.raises(WeightsUnavailableError, match="download from the model hub failed") as excinfo:
        build_backbone("ViT-B-16", "laion2b_s34b_b88k", device="cpu")
    assert "\n" not in str(excinfo.value)


def test_cached_tag_is_found_in_the_hub_cache_without_network(monkeypatch, tmp_path):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--laion--CLIP-ViT-B-16-laion2B-s34B-b88K" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    check = check_weights("ViT-B-16", "laion2b_s34b_b88k", None)
    assert check.available_offline, check.detail
    assert "open_clip_model.safetensors" in check.detail
    source = weights_module.locate_weights("ViT-B-16", "laion2b_s34b_b88k", None)
    assert source.label == "laion2b_s34b_b88k" and source.identity == {"tag": "laion2b_s34b_b88k"}
    assert source.local_file.name == "open_clip_model.safetensors"


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(InputError, match="laion2b_s34b_b88k") as excinfo:
        build_backbone("ViT-B-16", "no_such_tag", device="cpu")
    assert "\n" not in str(excinfo.value)


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(InputError, match="does not exist") as excinfo:
        build_backbone(TINY_TEST_MODEL, checkpoint=tmp_path / "absent.pt", device="cpu")
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("name", "content"), [("garbage.pt", b"\x00\x01 definitely not a checkpoint"),
                                               ("empty.bin", b""),
                                               ("bad.safetensors", b"not safetensors")])
def test_garbage_checkpoint_is_one_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable") as excinfo:
        build_backbone(TINY_TEST_MODEL, checkpoint=path, device="cpu")
    assert "\n" not in str(excinfo.value) and name in str(excinfo.value)


def test_checkpoint_without_weights_is_one_line(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(InputError, match="holds no model weights"):
        build_backbone(TINY_TEST_MODEL, checkpoint=path, device="cpu")


def test_checkpoint_of_another_architecture_is_one_line(tiny_backbone, tmp_path):
    state = {k: v.clone() for k, v in tiny_backbone.model.state_dict().items()}
    state["visual.proj"] = torch.zeros(64, 16)  # wrong embedding size
    del state["logit_scale"]
    path = tmp_path / "other.pt"
    torch.save(state, path)
    with pytest.raises(InputError, match="does not fit model rns-tiny-test") as excinfo:
        build_backbone(TINY_TEST_MODEL, checkpoint=path, device="cpu")
    message = str(excinfo.value)
    assert "\n" not in message
    assert "missing keys" in message and "tensor shapes differ" in message


def test_checkpoint_file_round_trip(tiny_backbone, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_backbone.model.state_dict(), path)
    loaded = build_backbone(TINY_TEST_MODEL, checkpoint=path, variant=tiny_backbone.variant, device="cpu")
    assert loaded.weights_label == f"file:{path.resolve()}"
    identity = loaded.fingerprint["weights"]
    assert identity["file"] == "tiny.pt" and identity["size"] == path.stat().st_size
    assert len(identity["sha256_first_mib"]) == 16
    assert loaded.fingerprint != tiny_backbone.fingerprint
    from PIL import Image

    image = Image.new("RGB", (64, 48), (120, 30, 200))
    assert torch.allclose(loaded.dense_features(image), tiny_backbone.dense_features(image), atol=1e-6)
    assert check_weights(TINY_TEST_MODEL, "random", path).available_offline


def test_spec_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(MODEL_ENV, "ViT-B-32")
    monkeypatch.setenv(PRETRAINED_ENV, "openai")
    monkeypatch.setenv(CHECKPOINT_ENV, "/models/b32.pt")
    monkeypatch.setenv(VARIANT_ENV, "clearclip")
    spec = BackboneSpec.resolve()
    assert (spec.model, spec.pretrained, spec.checkpoint, spec.variant) == (
        "ViT-B-32", "openai", "/models/b32.pt", "clearclip")
    explicit = BackboneSpec.resolve(pretrained="random")  # an explicit tag is not overridden by the env file
    assert explicit.checkpoint is None and explicit.pretrained == "random"
    assert BackboneSpec.resolve(variant="MaskCLIP").variant == "maskclip"
    assert spec.to_dict()["window"] == {"short_side": 448, "crop": 448, "stride": 224, "batch_size": 8,
                                        "long_side": 2048, "support_crops": (448, 224), "support_stride": 112}


def test_spec_builtin_defaults(monkeypatch):
    for name in (MODEL_ENV, PRETRAINED_ENV, CHECKPOINT_ENV, VARIANT_ENV):
        monkeypatch.delenv(name, raising=False)
    spec = BackboneSpec.resolve()
    assert (spec.model, spec.pretrained, spec.checkpoint) == ("ViT-B-16", "laion2b_s34b_b88k", None)
