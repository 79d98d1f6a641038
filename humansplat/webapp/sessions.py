"""Per-session output folders, and the removal of everything a session leaves behind.

Each browser tab or API client has a session (Gradio's ``session_hash``). Its outputs go to
``ROOT/<session>/run-.../``; when the session ends (tab closed, client closed) the folder and
the photos the session uploaded are deleted. A run still in progress when its session ends
finishes first, then its folder goes. Folders of sessions that never end (plain HTTP callers)
are swept once older than ``ttl_s``.

The session id comes from the client, so it is never used as a path as is: anything but a
short ``[A-Za-z0-9_-]`` token is replaced by its hash."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterable, Iterator

log = logging.getLogger("humansplat.app")

__all__ = ["SessionStore"]

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


class SessionStore:
    """root: where session folders live (inside the web server's file cache, so outputs are
    served without being copied anywhere else); upload_root: where the server keeps uploads
    (only files inside it are ever deleted as uploads); ttl_s: sweep age for sessions that
    never closed; keep_runs: runs kept per session (older ones are deleted as new ones
    start)."""

    def __init__(self, root, *, upload_root=None, ttl_s: float = 3600.0, keep_runs: int = 3):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.upload_root = Path(upload_root) if upload_root is not None else None
        self.ttl_s = float(ttl_s)
        self.keep_runs = int(keep_runs)
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}  # session -> runs in progress
        self._closed: set[str] = set()  # ended while a run was in progress
        self._uploads: dict[str, set[Path]] = {}
        self._protected: set[str] = set()  # sha256 of shared files (examples): never deleted
        self._last_sweep = 0.0

    # -- ids and folders ------------------------------------------------------------------
    @staticmethod
    def key(session_hash) -> str:
        """A file-system-safe id for ``session_hash`` (None -> "anonymous")."""
        s = "anonymous" if session_hash is None else str(session_hash)
        if _SAFE_ID.fullmatch(s):
            return s
        return "h" + hashlib.sha256(s.encode("utf-8", "replace")).hexdigest()[:32]

    def folder(self, session_hash) -> Path:
        return self.root / self.key(session_hash)

    def open(self, session_hash) -> Path:
        """Create (or reuse) the session's folder; also sweeps abandoned ones now and then."""
        key = self.key(session_hash)
        with self._lock:
            self._closed.discard(key)
        path = self.root / key
        path.mkdir(parents=True, exist_ok=True)
        self.sweep(min_interval_s=60.0)
        return path

    def sessions(self) -> list[str]:
        """Ids of the session folders that exist now."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    # -- runs -------------------------------------------------------------------------------
    @contextmanager
    def run(self, session_hash) -> Iterator[Path]:
        """A fresh run folder inside the session's folder, kept alive (not deleted by
        :meth:`close`) until the block ends."""
        with self.use(session_hash) as folder:
            self._prune_runs(folder)
            run_dir = folder / f"run-{time.time_ns():x}-{uuid.uuid4().hex[:6]}"
            run_dir.mkdir()
            yield run_dir

    def latest_result(self, session_hash) -> Path | None:
        """The ``result`` folder of the session's most recent *complete* run (it holds
        ``meta.json``), or None: what the animation and the part views work on."""
        folder = self.folder(session_hash)
        if not folder.is_dir():
            return None
        for run_dir in sorted(folder.glob("run-*"), key=lambda p: p.name, reverse=True):
            result = run_dir / "result"
            if (result / "meta.json").is_file() and _within(result, self.root):
                return result
        return None

    @contextmanager
    def use(self, session_hash) -> Iterator[Path]:
        """The session's folder, kept alive (not deleted by :meth:`close`) until the block
        ends: for work on an existing run (an animation, a part view)."""
        key = self.key(session_hash)
        with self._lock:
            self._active[key] = self._active.get(key, 0) + 1
        try:
            yield self.open(session_hash)
        finally:
            with self._lock:
                self._active[key] -= 1
                idle = self._active[key] == 0
                if idle:
                    del self._active[key]
                remove = idle and key in self._closed
                if remove:
                    self._closed.discard(key)
            if remove:
                self._remove(key)

    def _prune_runs(self, folder: Path) -> None:
        runs = sorted((p for p in folder.glob("run-*") if p.is_dir()), key=lambda p: p.name)
        for old in runs[: max(0, len(runs) - (self.keep_runs - 1))]:
            shutil.rmtree(old, ignore_errors=True)

    # -- uploads ----------------------------------------------------------------------------
    def protect(self, files: Iterable) -> None:
        """Never delete uploads with the same content as these files (the examples: every
        session that picks one shares the server's single copy)."""
        for f in files:
            digest = _file_sha256(Path(f))
            if digest:
                self._protected.add(digest)

    def track_upload(self, session_hash, path) -> None:
        """Remember a photo this session sent, to delete it when the session ends."""
        if path is None or self.upload_root is None:
            return
        p = Path(path)
        if not _within(p, self.upload_root):
            return
        with self._lock:
            self._uploads.setdefault(self.key(session_hash), set()).add(p)

    def discard_upload(self, path) -> None:
        """Delete an upload that was refused (it will never be used), whoever sent it."""
        if path is not None and self.upload_root is not None and _within(Path(path),
                                                                         self.upload_root):
            self._delete_uploads([Path(path)])

    def _delete_uploads(self, paths: Iterable[Path]) -> None:
        for p in paths:
            if not p.is_file() or _file_sha256(p) in self._protected:
                continue
            try:
                p.unlink()
                parent = p.parent
                if parent != self.upload_root and _within(parent, self.upload_root) \
                        and not any(parent.iterdir()):
                    parent.rmdir()
            except OSError as err:
                log.warning("could not delete an upload: %s", err)

    # -- ending -----------------------------------------------------------------------------
    def close(self, session_hash) -> None:
        """The session ended: delete its uploads now and its folder once no run of it is in
        progress."""
        key = self.key(session_hash)
        with self._lock:
            uploads = self._uploads.pop(key, set())
            busy = self._active.get(key, 0) > 0
            if busy:
                self._closed.add(key)
        self._delete_uploads(uploads)
        if not busy:
            self._remove(key)

    def _remove(self, key: str) -> None:
        path = self.root / key
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)

    def sweep(self, *, min_interval_s: float = 0.0) -> list[str]:
        """Delete folders of sessions idle for longer than ``ttl_s`` (no run in progress).
        Returns the ids removed."""
        now = time.time()
        if now - self._last_sweep < min_interval_s:
            return []
        self._last_sweep = now
        removed = []
        for path in self.root.iterdir():
            if not path.is_dir():
                continue
            with self._lock:
                busy = self._active.get(path.name, 0) > 0
            try:
                age = now - max([path.stat().st_mtime] +
                                [p.stat().st_mtime for p in path.iterdir()])
            except OSError:
                continue
            if not busy and age > self.ttl_s:
                shutil.rmtree(path, ignore_errors=True)
                with self._lock:
                    uploads = self._uploads.pop(path.name, set())
                self._delete_uploads(uploads)
                removed.append(path.name)
        return removed
