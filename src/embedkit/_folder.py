"""The one folder format for everything embedkit saves (indexes, word vectors, embedders).

Layout::

    <folder>/
      manifest.json    {"format": "embedkit.folder", "version": 2, "kind": "index", "meta": {...},
                       "data": "data-<id>", "files": {"vectors.npy": {"bytes": 1536, "sha256": ...}}}
      data-<id>/       the files the manifest lists; never changed once it names them
      .lock            held by a writer while it saves

Guarantees:

* **Atomic saves.** A writer fills ``.tmp-<id>/``, fsyncs every file, renames it
  to ``data-<id>/`` and then replaces ``manifest.json`` in one ``os.replace``. A
  process killed at any instant leaves the old manifest with its old files, or
  the new one with its new files; a folder that never completed a save has no
  manifest and does not load. Writers of one folder take turns (``.lock``).
* **Consistent reads.** :func:`read` opens every listed file before it checks or
  reads any of them; a save that runs meanwhile replaces files by new names, so
  the open handles keep seeing one version. When the listed files have already
  been swapped away, the manifest is read again (a few times), so a read returns
  the old folder or the new one, whole, or raises.
* **Checked.** Every file's size and sha256 are in the manifest (there is no way
  to leave them out); ``verify=True`` (the default) hashes each file. A manifest
  of a newer format version than this code knows is refused with a message
  saying so; a manifest with missing or mistyped fields is a
  :class:`~embedkit.errors.CorruptFileError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from embedkit._closing import Closing
from embedkit.errors import ConfigError, CorruptFileError

__all__ = [
    "FORMAT",
    "VERSION",
    "FolderWriter",
    "Snapshot",
    "data_path",
    "is_folder",
    "read",
]

FORMAT = "embedkit.folder"
VERSION = 2  # 2: an index's ids.json may be {"range": [0, n]} (version 1 folders still load)
MANIFEST = "manifest.json"
LOCK = ".lock"
_DATA = re.compile(r"data-[0-9a-f]{32}")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_READ_TRIES = 5
_CHUNK = 1 << 22


def is_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding an embedkit manifest."""
    return (Path(path) / MANIFEST).is_file()


def data_path(path: str | os.PathLike[str]) -> Path:
    """The ``data-<id>`` folder the current manifest names (for tools and tests)."""
    manifest = json.loads((Path(path) / MANIFEST).read_text("utf-8"))
    return Path(path) / str(manifest["data"])


# -- writing ------------------------------------------------------------------------
class FolderWriter(Closing):
    """Collect files for ``path`` and swap them in with :meth:`commit` (see the module doc).

    Files are written with :meth:`write_bytes`, :meth:`write_npy`, or by any code
    that writes to :meth:`path_of` (streaming writers, libraries that save to a
    path). Leaving the ``with`` block without ``commit`` discards them.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} is a file; embedkit saves folders")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the folder {self.path}: {exc}") from exc
        self._lock = _Lock(self.path / LOCK)
        self._id = uuid.uuid4().hex
        self._tmp = self.path / f".tmp-{self._id}"
        self._tmp.mkdir()
        self._done = False

    def path_of(self, name: str) -> Path:
        """Where the file ``name`` is to be written before the commit."""
        return self._tmp / _check_name(name)

    def write_bytes(self, name: str, data: bytes) -> None:
        with open(self.path_of(name), "wb") as fh:
            fh.write(data)

    def write_npy(self, name: str, array: NDArray[Any]) -> None:
        with open(self.path_of(name), "wb") as fh:
            np.save(fh, np.ascontiguousarray(array), allow_pickle=False)

    def commit(self, meta: Mapping[str, Any] | None = None) -> Path:
        """Hash and fsync the files, then make them the folder's content; returns the folder."""
        files: dict[str, dict[str, Any]] = {}
        for file in sorted(self._tmp.iterdir()):
            if not file.is_file():
                raise ConfigError(f"{file} is not a plain file; folders hold flat files only")
            files[file.name] = {"bytes": file.stat().st_size, "sha256": _fsync_and_hash(file)}
        _fsync_dir(self._tmp)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "data": f"data-{self._id}",
            "meta": dict(meta or {}),
            "files": files,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=True, allow_nan=False)
        data = self.path / manifest["data"]
        os.replace(self._tmp, data)
        staged = self.path / f"{MANIFEST}.tmp-{self._id}"
        with open(staged, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staged, self.path / MANIFEST)
        _fsync_dir(self.path)
        self._done = True
        for entry in self.path.iterdir():  # earlier versions and leftovers of killed saves
            if entry.name != data.name and (
                entry.name.startswith((".tmp-", "data-", f"{MANIFEST}.tmp-"))
            ):
                _remove(entry)
        self._lock.release()
        return self.path

    def close(self) -> None:
        if not self._done:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._done = True
        self._lock.release()


# -- reading ------------------------------------------------------------------------
@dataclass
class Snapshot(Closing):
    """One consistent version of a folder: its manifest and an open handle per file."""

    path: Path
    kind: str
    meta: dict[str, Any]
    sizes: dict[str, int]
    data: str
    _handles: dict[str, BinaryIO] = field(repr=False)

    def __contains__(self, name: object) -> bool:
        return name in self._handles

    @property
    def size(self) -> int:
        """Total size of the listed files, in bytes."""
        return sum(self.sizes.values())

    def file_path(self, name: str) -> Path:
        """Where the file ``name`` of this version lies (it may be replaced later)."""
        self._handle(name)
        return self.path / self.data / name

    def read_bytes(self, name: str) -> bytes:
        fh = self._handle(name)
        fh.seek(0)
        return fh.read()

    def read_mapped(self, name: str) -> NDArray[np.uint8]:
        """The bytes of ``name``, memory-mapped read-only."""
        fh = self._handle(name)
        return np.memmap(fh, np.uint8, "r") if self.sizes[name] else np.empty(0, np.uint8)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read_bytes(name).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptFileError(f"{self.path}: {name} is not valid JSON: {exc}") from exc

    def read_npy(self, name: str, *, mmap: bool = False) -> NDArray[Any]:
        """The array in ``name``; ``mmap=True`` maps it read-only instead of reading it."""
        fh = self._handle(name)
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = header(fh)
            if dtype.hasobject:
                raise ValueError("object arrays are refused (they would need pickle)")
            offset = fh.tell()
            count = int(np.prod(shape, dtype=np.int64))
            if offset + count * dtype.itemsize != self.sizes[name]:
                raise ValueError(f"{count} values of {dtype} do not fill the file")
            order: Any = "F" if fortran else "C"
            if mmap and count:
                mapped: NDArray[Any] = np.memmap(
                    fh, dtype=dtype, mode="r", offset=offset, shape=shape, order=order
                )
                return mapped
            data: NDArray[Any] = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype)
            out: NDArray[Any] = data.reshape(tuple(shape), order=order).copy()
            return out
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"{self.path}: {name} is not a valid .npy file: {exc}") from exc

    def _handle(self, name: str) -> BinaryIO:
        try:
            return self._handles[name]
        except KeyError:
            raise CorruptFileError(f"{self.path}: the manifest lists no {name}") from None

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles = {}


def read(path: str | os.PathLike[str], kind: str, *, verify: bool = True) -> Snapshot:
    """Open the folder ``path`` saved as ``kind``; the caller closes the snapshot.

    Sizes are always checked; ``verify=True`` also checks every sha256.
    """
    folder = Path(path)
    for _ in range(_READ_TRIES):
        manifest = _read_manifest(folder, kind)
        data = folder / manifest["data"]
        handles: dict[str, BinaryIO] = {}
        name = ""
        try:
            for name in manifest["files"]:
                handles[name] = open(data / name, "rb")  # noqa: SIM115 - kept in the snapshot
        except FileNotFoundError:
            for fh in handles.values():
                fh.close()
            if _read_manifest(folder, kind)["data"] != manifest["data"]:
                continue  # a save swapped the folder meanwhile: read the new version
            raise CorruptFileError(f"{folder}: {name} is missing (the manifest lists it)") from None
        except OSError:
            for fh in handles.values():
                fh.close()
            raise
        snapshot = Snapshot(
            folder,
            kind,
            manifest["meta"],
            {n: int(info["bytes"]) for n, info in manifest["files"].items()},
            manifest["data"],
            handles,
        )
        try:
            for name, info in manifest["files"].items():
                _check(folder, name, handles[name], info, verify)
        except BaseException:
            snapshot.close()
            raise
        return snapshot
    raise CorruptFileError(f"{folder} kept changing while being read ({_READ_TRIES} tries)")


def _read_manifest(folder: Path, kind: str) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        if not folder.exists():
            raise FileNotFoundError(2, "No such file or directory", str(folder)) from exc
        raise CorruptFileError(f"{folder} is not a saved embedkit folder (no {MANIFEST})") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptFileError(f"{path} is not an embedkit manifest (format {FORMAT!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptFileError(f"{path}: 'version' must be a positive integer, got {version!r}")
    if version > VERSION:
        raise CorruptFileError(
            f"{path} was written in folder format version {version}, newer than this "
            f"embedkit reads (up to {VERSION}): upgrade embedkit to load it"
        )
    if manifest.get("kind") != kind:
        raise CorruptFileError(f"{folder} holds {manifest.get('kind')!r}, not {kind!r}")
    if not isinstance(manifest.get("data"), str) or not _DATA.fullmatch(manifest["data"]):
        raise CorruptFileError(f"{path}: 'data' must name a data-<id> folder")
    if not isinstance(manifest.get("meta"), dict):
        raise CorruptFileError(f"{path}: 'meta' must be an object")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise CorruptFileError(f"{path}: 'files' must be an object")
    for name, info in files.items():
        size = info.get("bytes") if isinstance(info, dict) else None
        digest = info.get("sha256") if isinstance(info, dict) else None
        ok = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        if not (ok and isinstance(digest, str) and _HEX64.fullmatch(digest)):
            raise CorruptFileError(f"{path}: entry {name!r} needs 'bytes' and a 'sha256' digest")
        if not _NAME.fullmatch(name) or name in (".", ".."):
            raise CorruptFileError(f"{path}: {name!r} is not a plain file name")
    return manifest


def _check(folder: Path, name: str, fh: BinaryIO, info: Mapping[str, Any], verify: bool) -> None:
    if (size := os.fstat(fh.fileno()).st_size) != info["bytes"]:
        raise CorruptFileError(
            f"{folder}: {name} has {size} bytes, the manifest says {info['bytes']}"
        )
    if verify and _hash(fh) != info["sha256"]:
        raise CorruptFileError(f"{folder}: {name} fails its sha256 check: the file was altered")


def _hash(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    fh.seek(0)
    for chunk in iter(lambda: fh.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _fsync_and_hash(path: Path) -> str:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
        return _hash(fh)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # directories cannot be opened (nor fsynced) elsewhere
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"{name!r} is not a plain file name")
    return name


class _Lock:
    """An exclusive ``flock`` on a file, held from construction to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self._fh: io.BufferedRandom | None = open(path, "a+b")  # noqa: SIM115
        try:
            import fcntl
        except ImportError:  # Windows: writers are not serialised
            return
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None
