"""Ids of support entries: one per (image, class), `<image content hash>#<class>`.

Kept apart from `rns.teach.support` (which needs torch) so that listing and removing entries stay light.
"""

from __future__ import annotations

from support_memory.manifest import name_key

SOURCE_CLASS_SEPARATOR = "#"


def support_source_id(image_id: str, class_name: str) -> str:
    """The memory's id of one (image, class) entry; class names compare case-insensitively."""
    return f"{image_id}{SOURCE_CLASS_SEPARATOR}{name_key(class_name)}"


def image_of_source(source_id: str) -> str:
    """The image content hash a source id belongs to (ids of memories from 0.1.0 are the hash itself)."""
    return source_id.split(SOURCE_CLASS_SEPARATOR, 1)[0]
