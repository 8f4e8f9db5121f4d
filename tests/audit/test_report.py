"""The audit report's rule: which entries and photos are flagged, the reasons, the table and the JSON."""

from __future__ import annotations

import json
from collections import Counter

from rns.audit.report import AuditReport, EntryScore, PhotoScore


def _report(**rule) -> AuditReport:
    entries = [
        EntryScore("a#road", "road", "/p/street7.jpg", "/p/street7.png", deltas=[-4.0, -5.0, -3.3]),
        EntryScore("a#car", "car", "/p/street7.jpg", "/p/street7.png", deltas=[0.4, -0.2]),
        EntryScore("b#road", "road", "/p/b.jpg", "/p/b.png", deltas=[-2.0]),  # one photo: too little evidence
        EntryScore("c#sky", "sky", "/p/c.jpg", "/p/c.png", deltas=[3.0, 1.0]),
        EntryScore("d#sky", "sky", "/p/d.jpg", "/p/d.png"),  # never retrieved
    ]
    photos = [PhotoScore("a", "/p/street7.jpg", ["a#road", "a#car"], ["road", "car"], deltas=[-6.0, -2.0]),
              PhotoScore("c", "/p/c.jpg", ["c#sky", "c#tree"], ["sky", "tree"], deltas=[-1.5, -1.5])]
    skipped = Counter({"photo or mask file gone": 2})
    return AuditReport("mem", 7, entries, 3, {"/p/street7.jpg": 55.0}, skipped, 1, 12.0, 30, photos=photos,
                       **rule)  # fmt: skip


def test_rule_needs_both_the_threshold_and_the_evidence():
    report = _report(threshold=1.0, min_evidence=2)
    assert [e.source_id for e in report.hurting()] == ["a#road"]
    assert [p.image_id for p in report.hurting_photos()] == ["a", "c"]
    assert report.flagged_sources() == {"a#road", "a#car", "c#sky", "c#tree"}
    report.whole_photos = False
    assert report.flagged_sources() == {"a#road"}
    assert _report(threshold=1.0, min_evidence=1).flagged_sources() >= {"b#road"}
    assert _report(threshold=5.0, min_evidence=2).flagged_sources() == set()


def test_reason_table_and_json_say_what_to_do():
    report = _report(threshold=1.0, min_evidence=2)
    assert report.hurting()[0].reason() == (
        "class `road` from street7.jpg lowers the mean IoU of the 3 photos that retrieve it by 4.1 points: "
        "is its mask right (street7.png)?")
    assert report.hurting_photos()[0].reason().startswith(
        "the examples from street7.jpg (road, car) together lower the mean IoU of the 2 photos")
    table = report.table()
    assert table.splitlines()[1].split() == ["-4.1", "3", "road", "street7.jpg"]
    assert table.splitlines()[5].split() == ["-", "0", "sky", "d.jpg"]  # never retrieved: last
    assert "skipped 2 entries (1 photos gone): 2 photo or mask file gone" in table
    data = json.loads(report.dumps())
    assert data["hurting"][0]["source"] == "a#road" and data["hurting"][0]["retrieved_by"] == 3
    assert data["entries"][-1]["score"] is None and data["seconds_per_photo"] == 4.0
