"""Known answers for `rns.teach.memory_export.export_npz`: what a small memory becomes in the .npz file."""

from __future__ import annotations

import json

import numpy as np

from rns.teach.memory_export import EXPORT_FORMAT, export_npz
from support_memory import SupportMemory

FINGERPRINT = {"model": "test", "dim": 4}
# Unit vectors whose float16 storage is exact, so the exported float32 values are known exactly.
A = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
B = np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32)


def _memory(tmp_path) -> SupportMemory:
    memory = SupportMemory.open(tmp_path / "mem")
    memory.put_source("img-a", A, ["road", "car"], fingerprint=FINGERPRINT, content_key="ka")
    memory.put_source("img-b", B, ["car"], fingerprint=FINGERPRINT, content_key="kb",
                      class_texts={"car": None})  # fmt: skip
    return memory


def test_export_holds_every_prototype_with_its_class_and_source(tmp_path):
    memory = _memory(tmp_path)
    summary = export_npz(memory, tmp_path / "out.npz")
    assert (summary.n_rows, summary.n_classes, summary.n_sources) == (3, 2, 2)
    with np.load(tmp_path / "out.npz") as data:
        assert data["vectors"].dtype == np.float32
        np.testing.assert_array_equal(data["vectors"], np.concatenate([A, B]))
        assert data["class_names"].tolist() == ["road", "car"]
        assert [data["class_names"][i] for i in data["labels"]] == ["road", "car", "car"]
        assert data["sources"].tolist() == ["img-a", "img-a", "img-b"]
        # "car" was last put with no usable text: it has none, and its text column is empty
        assert data["class_has_text"].tolist() == [True, False]
        assert data["class_texts"].tolist() == ["road", ""]
        meta = json.loads(str(data["meta_json"]))
    assert meta["format"] == EXPORT_FORMAT
    assert meta["fingerprint"] == FINGERPRINT and meta["dim"] == 4
    classes = [(c["name"], c["prototypes"], c["sources"]) for c in meta["classes"]]
    assert classes == [("road", 1, 1), ("car", 2, 2)]
    assert [(s["source_id"], s["prototypes"]) for s in meta["sources"]] == [("img-a", 2), ("img-b", 1)]


def test_export_leaves_out_removed_sources(tmp_path):
    memory = _memory(tmp_path)
    memory.remove_source("img-a")
    summary = export_npz(memory, tmp_path / "out.npz")
    assert summary.n_rows == 1
    with np.load(tmp_path / "out.npz") as data:
        np.testing.assert_array_equal(data["vectors"], B)
        assert data["sources"].tolist() == ["img-b"]


def test_export_of_an_empty_memory(tmp_path):
    memory = SupportMemory.open(tmp_path / "mem")
    summary = export_npz(memory, tmp_path / "out.npz")
    assert (summary.n_rows, summary.n_classes, summary.n_sources) == (0, 0, 0)
    with np.load(tmp_path / "out.npz") as data:
        assert data["vectors"].shape == (0, 0)
        assert data["labels"].tolist() == []
