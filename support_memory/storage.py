"""Where a memory's objects live: one small interface, a local folder or any fsspec URL behind it.

Every byte the memory reads or writes goes through a `Storage`, so the commit protocol (see commit.py and
docs/MEMORY_STORAGE.md) is written once and holds on a local disk and on an object store alike. The
protocol needs only what object stores offer:

- whole-object reads and writes (a reader sees an object entirely or not at all);
- `create`: write an object only if no object has that key (a local hard link; an S3 conditional PUT with
  `If-None-Match: *`). It is the one compare-and-swap the commit log is built on;
- listing the keys under a prefix, and deleting.

There is no rename and no lock: objects are never modified after they are written, except the best-effort
index hint, which readers never trust blindly.

`open_storage("s3://bucket/path")` uses fsspec (s3fs for S3, the `s3` extra); credentials and endpoint come
from the standard AWS environment variables (`AWS_ENDPOINT_URL` for a local server).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from support_memory import durability
from support_memory.errors import MemoryStoreError, NotAMemoryError


def unreachable(error: BaseException, location: str) -> MemoryStoreError | None:
    """A network client's own exception (botocore, aiohttp: not OSErrors) as one line, else None."""
    module = type(error).__module__.split(".")[0]
    if module not in {"botocore", "aiobotocore", "aiohttp"}:
        return None
    return MemoryStoreError(
        f"memory {location} cannot be reached ({type(error).__name__}: {error}); check the location and, for "
        "an object store, its endpoint (AWS_ENDPOINT_URL), credentials and network"
    )


def _network_errors_as_one_line(method):  # type: ignore[no-untyped-def]
    """Decorate a FsspecStorage method so that client exceptions become `unreachable` errors."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return method(self, *args, **kwargs)
        except Exception as error:
            translated = unreachable(error, self.location)
            if translated is None:
                raise
            raise translated from None

    return call


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether a memory location names a remote store (`scheme://...`) rather than a local folder."""
    text = os.fspath(location)
    return "://" in text and not text.startswith("file://")


class Storage(ABC):
    """The objects of one memory, addressed by '/'-separated keys relative to its root."""

    location: str  # shown in messages: the folder or the URL the user gave

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The whole object; FileNotFoundError when there is none."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write `data` under `key` only if no object has that key; False when one already does."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Write or replace an object; readers see the old or the new bytes, never a mix."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Names of the objects and sub-folders directly under `prefix` (a folder key, no trailing '/')."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object or everything under a folder key; missing ones are ignored."""

    @abstractmethod
    def zarr_store(self, prefix: str, *, read_only: bool) -> Any:
        """A zarr store rooted at `prefix`, for the row arrays."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes held under the root (for `stats`)."""

    @abstractmethod
    def probe_writable(self) -> None:
        """Raise an OSError (EROFS/EACCES...) now if objects cannot be written here."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections (nothing to do for a folder)."""


class LocalStorage(Storage):
    """A memory in a local folder. `create` is a hard link of a fully written, fsynced temp file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def _temp_with(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:  # a full disk or a kill: no half-written file is left behind
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp_with(path, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists: the local compare-and-swap
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        durability.fsync_dir(path.parent)
        return True

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp_with(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        durability.fsync_dir(path.parent)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(p.name for p in self._path(prefix).iterdir() if not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def zarr_store(self, prefix: str, *, read_only: bool) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(self._path(prefix), read_only=read_only)

    def sync_tree(self, prefix: str) -> None:
        """fsync a freshly written folder of arrays before a commit names it."""
        durability.fsync_tree(self._path(prefix))
        durability.fsync_dir(self._path(prefix).parent)

    def size_bytes(self) -> int:
        size = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    size += (Path(dirpath) / name).stat().st_size
        return size

    def probe_writable(self) -> None:
        probe = self.root / f".probe.{uuid.uuid4().hex[:12]}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        probe.unlink(missing_ok=True)


class FsspecStorage(Storage):
    """A memory at an fsspec URL (tested: s3:// through s3fs against a real S3 API)."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec comes with zarr's dependencies
            raise MemoryStoreError(f"memory {url}: fsspec is not installed; pip install fsspec") from None
        self.location = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except ImportError as error:
            raise MemoryStoreError(
                f"memory {url}: this URL needs a package that is not installed ({error}); for s3:// "
                "install the s3 extra: pip install 'rns[s3]'"
            ) from None
        except ValueError as error:
            raise NotAMemoryError(f"memory {url}: not a usable URL ({error}); check the address") from None
        self.root = root.rstrip("/")
        self._url_root = url.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    @_network_errors_as_one_line
    def read(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise
        except OSError as error:
            if getattr(error, "errno", None) == errno.ENOENT:
                raise FileNotFoundError(key) from None
            raise

    @_network_errors_as_one_line
    def create(self, key: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(self._path(key), data, mode="create")
        except FileExistsError:
            return False
        except OSError as error:
            # A 412 whose condition the client could not name: decide by what is stored now.
            if "precondition" not in str(error).lower():
                raise
            return False
        return True

    @_network_errors_as_one_line
    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    @_network_errors_as_one_line
    def exists(self, key: str) -> bool:
        self.fs.invalidate_cache(self._path(key))
        return bool(self.fs.exists(self._path(key)))

    @_network_errors_as_one_line
    def list(self, prefix: str) -> list[str]:
        path = self._path(prefix)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(name.rstrip("/").rsplit("/", 1)[-1] for name in entries if name.rstrip("/") != path)

    @_network_errors_as_one_line
    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isdir(path):
                self.fs.rm(path, recursive=True)
            else:
                self.fs.rm_file(path)
        self.fs.invalidate_cache(path)

    def zarr_store(self, prefix: str, *, read_only: bool) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(f"{self._url_root}/{prefix}", read_only=read_only)

    @_network_errors_as_one_line
    def size_bytes(self) -> int:
        self.fs.invalidate_cache(self.root)
        try:
            return int(sum(info.get("size", 0) for info in self.fs.find(self.root, detail=True).values()))
        except FileNotFoundError:
            return 0

    @_network_errors_as_one_line
    def probe_writable(self) -> None:
        key = f"probe/{uuid.uuid4().hex}"
        self.write(key, b"")
        self.delete(key)


def open_storage(location: str | os.PathLike[str]) -> Storage:
    """The storage for a memory location: a local folder (path or file:// URL) or an fsspec URL."""
    text = os.fspath(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if is_url(text):
        return FsspecStorage(text)
    return LocalStorage(Path(text).expanduser())
