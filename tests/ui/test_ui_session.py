"""`rns.ui.session` without a server: the backbone runs once per photo, whatever is taught after."""

from __future__ import annotations

import numpy as np

from tests.ui_helpers import camvid_photos


class CountingBackbone:
    """The real backbone, counting its feature passes (everything else is passed through)."""

    def __init__(self, backbone) -> None:
        self._backbone = backbone
        self.calls = {"dense": 0, "support": 0}

    def dense_features(self, image):
        self.calls["dense"] += 1
        return self._backbone.dense_features(image)

    def support_features(self, image):
        self.calls["support"] += 1
        return self._backbone.support_features(image)

    def __getattr__(self, name):
        return getattr(self._backbone, name)


def test_teaching_and_resegmenting_never_run_the_backbone_again(tiny_backbone, tmp_path) -> None:
    from rns.ui.config import UiConfig
    from rns.ui.session import UiSession

    (photo_path,) = camvid_photos(1)
    backbone = CountingBackbone(tiny_backbone)
    session = UiSession(backbone, UiConfig(memory_path=tmp_path / "memory"))
    photo = session.open_photo(photo_path.read_bytes(), photo_path.name)
    first = session.segment(photo, ["road", "car"])
    assert first.computed_features and backbone.calls["dense"] == 1
    photo._prefetch.join(120)  # the support pass started in the background by the first segment
    assert backbone.calls["support"] == 1 and photo.support is not None

    mask = np.full((360, 480), 255, np.uint8)
    mask[250:] = 1
    for round_ in range(3):
        mask[:50] = 2 if round_ % 2 else 255
        outcome = session.teach(photo, mask, first.segmentation.class_names)
        assert outcome.status in ("added", "replaced") and not outcome.computed_features
        again = session.segment(photo, ["road", "car"])
        assert not again.computed_features
        assert again.segmentation.info["memory_prototypes"] == outcome.prototypes
    assert backbone.calls == {"dense": 1, "support": 1}
    assert session.memory_summary()["photos"] == 1


def test_without_prefetch_the_first_teach_computes_the_support_features(tiny_backbone, tmp_path) -> None:
    from rns.ui.config import UiConfig
    from rns.ui.session import UiSession

    (photo_path,) = camvid_photos(1)
    backbone = CountingBackbone(tiny_backbone)
    session = UiSession(backbone, UiConfig(memory_path=tmp_path / "memory"), prefetch_support=False)
    photo = session.open_photo(photo_path.read_bytes(), photo_path.name)
    session.segment(photo, ["road"])
    assert backbone.calls["support"] == 0
    mask = np.full((360, 480), 255, np.uint8)
    mask[250:] = 1
    assert session.teach(photo, mask, ["background", "road"]).computed_features
    assert not session.teach(photo, mask[::-1].copy(), ["background", "road"]).computed_features
    assert backbone.calls == {"dense": 1, "support": 1}
