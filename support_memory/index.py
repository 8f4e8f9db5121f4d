"""Optional approximate index (FAISS) for large memories. Placeholder while the store is tested."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class IndexConfig:
    approximate_threshold: int = 200_000


class IndexManager:
    def __init__(self, directory: Path, config: IndexConfig) -> None:
        self.directory = directory
        self.config = config

    def wanted(self, manifest: Any) -> bool:
        return False

    def search(self, memory: Any, snapshot: Any, queries: Any, k: int, allowed: Any) -> Any:
        return None

    def build(self, memory: Any, snapshot: Any) -> dict[str, Any] | None:
        return None

    def describe(self, manifest: Any) -> dict[str, Any] | None:
        return None
