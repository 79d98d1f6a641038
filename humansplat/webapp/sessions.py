"""Per-session folders, the files a session may read, and the removal of what it leaves behind.

Each browser tab or API client has a session (Gradio's ``session_hash``: whoever sends it acts
as that session, so it is a credential and never appears in a path or URL). The store gives
each session a random id of its own (the mapping stays in this process) and two folders named
by it:

- a private one, ``work_root/<id>/`` (outside everything the web server serves): the runs
  (``run-.../preview``, ``result``, ``views``) and the session's own copies of its photos;
- a public one, ``root/<id>/``: each file handed to the caller is published there under a
  random folder of its own (``root/<id>/<token>/gaussians.ply``, a hard link to the private
  file), so a URL gives access to that one file and to nothing else of the session.

Which result ``/animate`` or ``/part_view`` works on is decided here from the calling session
(:meth:`latest_result`), never from a path a client sent. A photo a session sends must be an
upload (inside Gradio's upload folder, outside every session folder: :meth:`upload_problem`);
when it is checked it is copied into the session's private folder (:meth:`adopt_upload`) and
the run reads that copy. Clean-up deletes only what a session owns: its two folders, and a
shared upload (Gradio keeps one file per content, shared by every session that sends the
same bytes) only once no open session has claimed it and it is older than ``upload_grace_s``
(time for an identical upload to be claimed by its call). A run still in progress when its
session ends finishes first, then its folders go. Sessions that never end (plain HTTP callers)
are swept once idle for ``ttl_s``."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("humansplat.app")

__all__ = ["SessionStore"]

UPLOADS_DIR = "uploads"  # inside a session's private folder: its copies of its photos


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


def _token() -> str:
    return secrets.token_hex(16)  # 128 bits: not guessable from any other URL


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class SessionStore:
    """root: where published files live (inside the web server's file cache: served, but only
    by their random URLs); work_root: the private folders (never served; default: a sibling of
    ``root``); upload_root: where the server keeps uploads (the only place a photo may come
    from, and the only place shared uploads are deleted from); ttl_s: idle time after which a
    session that never closed is removed; keep_runs: runs kept per session (older ones are
    deleted, with their published files, as new ones start); upload_grace_s: see the module
    docstring."""

    def __init__(self, root, *, work_root=None, upload_root=None, ttl_s: float = 3600.0,
                 keep_runs: int = 3, upload_grace_s: float = 10.0):
        self.root = _private_dir(Path(root))
        self.work_root = _private_dir(Path(work_root) if work_root is not None
                                      else self.root.with_name(self.root.name + "-work"))
        self.upload_root = Path(upload_root) if upload_root is not None else None
        self.ttl_s = float(ttl_s)
        self.keep_runs = int(keep_runs)
        self.upload_grace_s = float(upload_grace_s)
        self._lock = threading.RLock()
        self._ids: dict[str, str] = {}  # session key -> random id (never leaves the server)
        self._seen: dict[str, float] = {}  # id -> last activity (for the idle sweep)
        self._active: dict[str, int] = {}  # id -> work in progress (runs, animations, ...)
        self._closed: set[str] = set()  # ended while work was in progress
        self._published: dict[Path, Path] = {}  # private file -> its public path
        self._copies: dict[tuple[str, Path], Path] = {}  # (id, shared upload) -> own copy
        self._claims: dict[Path, set[str]] = {}  # shared upload -> ids of sessions using it
        self._protected: set[str] = set()  # sha256 of shared files (examples): never deleted
        self._last_sweep = 0.0

    # -- ids and folders ------------------------------------------------------------------
    @staticmethod
    def _key(session_hash) -> str:
        s = "anonymous" if session_hash is None else str(session_hash)
        # a long id from a client is kept as its digest (the mapping's memory stays bounded)
        return s if len(s) <= 128 else "sha256:" + hashlib.sha256(s.encode()).hexdigest()

    def session_id(self, session_hash, *, create: bool = True) -> str | None:
        """The random id of a session's folders (created on first use unless not ``create``)."""
        key = self._key(session_hash)
        with self._lock:
            sid = self._ids.get(key)
            if sid is None and create:
                sid = self._ids[key] = _token()
            if sid is not None:
                self._seen[sid] = time.time()
            return sid

    def folder(self, session_hash) -> Path | None:
        """The session's private folder (None when the session has none)."""
        sid = self.session_id(session_hash, create=False)
        return None if sid is None else self.work_root / sid

    def open(self, session_hash) -> Path:
        """Create (or reuse) the session's private folder; also sweeps idle ones now and then."""
        sid = self.session_id(session_hash)
        with self._lock:
            self._closed.discard(sid)
        path = _private_dir(self.work_root / sid)
        self.sweep(min_interval_s=60.0)
        return path

    def sessions(self) -> list[str]:
        """Ids of the sessions that have a folder (private or public) now."""
        found = {p.name for r in (self.root, self.work_root) if r.is_dir()
                 for p in r.iterdir() if p.is_dir()}
        return sorted(found)

    # -- runs -------------------------------------------------------------------------------
    @contextmanager
    def run(self, session_hash) -> Iterator[Path]:
        """A fresh private run folder of the session, kept alive (not deleted by :meth:`close`)
        until the block ends."""
        with self.use(session_hash) as folder:
            self._prune_runs(folder)
            run_dir = folder / f"run-{time.time_ns():x}-{secrets.token_hex(4)}"
            run_dir.mkdir()
            yield run_dir

    def latest_result(self, session_hash) -> Path | None:
        """The ``result`` folder of the session's most recent *complete* run (it holds
        ``meta.json``), or None: what the animation and the part views work on."""
        folder = self.folder(session_hash)
        if folder is None or not folder.is_dir():
            return None
        for run_dir in sorted(folder.glob("run-*"), key=lambda p: p.name, reverse=True):
            result = run_dir / "result"
            if (result / "meta.json").is_file() and _within(result, folder):
                return result
        return None

    @contextmanager
    def use(self, session_hash) -> Iterator[Path]:
        """The session's private folder, kept alive (not deleted by :meth:`close`) until the
        block ends: for a run, or work on an existing one (an animation, a part view)."""
        sid = self.session_id(session_hash)
        with self._lock:
            self._active[sid] = self._active.get(sid, 0) + 1
        try:
            yield self.open(session_hash)
        finally:
            with self._lock:
                self._active[sid] -= 1
                idle = self._active[sid] == 0
                if idle:
                    del self._active[sid]
                remove = idle and sid in self._closed
                if remove:
                    self._closed.discard(sid)
            if remove:
                self._remove(sid)

    def _prune_runs(self, folder: Path) -> None:
        runs = sorted((p for p in folder.glob("run-*") if p.is_dir()), key=lambda p: p.name)
        for old in runs[: max(0, len(runs) - (self.keep_runs - 1))]:
            self._unpublish_under(old)
            shutil.rmtree(old, ignore_errors=True)

    # -- files handed to the caller ---------------------------------------------------------
    def publish(self, session_hash, path) -> str:
        """The public path of one of the session's private files (``root/<id>/<token>/name``,
        a hard link, or a copy across file systems); the same file gets the same path."""
        src = Path(path)
        folder = self.folder(session_hash)
        if folder is None or not _within(src, folder):
            raise ValueError("only a file of the session's own folder can be published")
        src = src.resolve()
        with self._lock:
            known = self._published.get(src)
            if known is not None and known.is_file():
                return str(known)
            sid = folder.name
            dest_dir = _private_dir(self.root / sid) / _token()
            dest_dir.mkdir()
            dest = dest_dir / src.name
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
            self._published[src] = dest
            return str(dest)

    def _unpublish_under(self, private_dir: Path) -> None:
        with self._lock:
            gone = [s for s in self._published if _within(s, private_dir)]
            for s in gone:
                shutil.rmtree(self._published.pop(s).parent, ignore_errors=True)

    # -- uploads ----------------------------------------------------------------------------
    def protect(self, files: Iterable) -> None:
        """Never delete uploads with the same content as these files (the examples: every
        session that picks one shares the server's single copy)."""
        for f in files:
            digest = _file_sha256(Path(f))
            if digest:
                self._protected.add(digest)

    def upload_problem(self, path) -> str | None:
        """None when ``path`` names a file uploaded to this server (and nothing else: not a
        session's or result's file, not a link, not a server file); else a message without the
        path."""
        not_upload = ("The photo must be a file uploaded to this server (POST "
                      "/gradio_api/upload, or gradio_client.handle_file), not a server path.")
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            return not_upload
        p = Path(path)
        if self.upload_root is None or not p.is_absolute() or ".." in p.parts \
                or not _within(p, self.upload_root):
            return not_upload
        if _within(p, self.root) or _within(p, self.work_root):
            return ("The photo must be a file you uploaded; files the app wrote (results, "
                    "other sessions' files) cannot be sent back as a photo.")
        if p.is_symlink():
            return not_upload
        if not p.is_file():
            return ("The photo is no longer on the server (finished sessions are cleaned "
                    "up); please upload it again.")
        return None

    def claim_upload(self, session_hash, path) -> bool:
        """Note that the session uses this upload (so that no other session's clean-up deletes
        it, and this one's may). False (nothing noted) for anything but a plain upload."""
        if path is None or self.upload_problem(path) is not None:
            return False
        sid = self.session_id(session_hash)
        with self._lock:
            self._claims.setdefault(Path(path).resolve(), set()).add(sid)
        return True

    def adopt_upload(self, session_hash, path) -> Path:
        """The session's own copy of an upload it sent (made now, or the one made before),
        in its private folder: the run reads this copy, whatever happens to the shared file.
        Raises ValueError (with :meth:`upload_problem`'s message) for anything but an upload."""
        if (msg := self.upload_problem(path)) is not None:
            raise ValueError(msg)
        self.claim_upload(session_hash, path)
        src = Path(path).resolve()
        folder = self.open(session_hash)
        with self._lock:
            known = self._copies.get((folder.name, src))
            if known is not None and known.is_file():
                return known
            dest = _private_dir(folder / UPLOADS_DIR) / (_token() + src.suffix.lower()[:8])
            shutil.copyfile(src, dest)
            self._copies[(folder.name, src)] = dest
            return dest

    def _release_uploads(self, sid: str) -> None:
        """Drop the session's claims; delete the shared uploads nobody else claims (now, or
        once ``upload_grace_s`` old)."""
        with self._lock:
            for key in [k for k in self._copies if k[0] == sid]:
                del self._copies[key]
            orphans = []
            for path, owners in list(self._claims.items()):
                if sid in owners:
                    owners.discard(sid)
                    if not owners:
                        orphans.append(path)
        self._delete_orphans(orphans)

    def _delete_orphans(self, paths: list[Path]) -> None:
        later = []
        for p in paths:
            with self._lock:
                if self._claims.get(p):  # claimed again meanwhile
                    continue
                try:
                    age = time.time() - p.stat().st_mtime
                except OSError:  # already gone
                    self._claims.pop(p, None)
                    continue
                if age < self.upload_grace_s:
                    later.append(p)
                    continue
                self._claims.pop(p, None)
                if _file_sha256(p) in self._protected:
                    continue
                try:
                    p.unlink()
                    parent = p.parent
                    if parent != self.upload_root and _within(parent, self.upload_root) \
                            and not any(parent.iterdir()):
                        parent.rmdir()
                except OSError as err:
                    log.warning("could not delete an upload: %s", err)
        if later:
            timer = threading.Timer(self.upload_grace_s, self._delete_orphans, args=(later,))
            timer.daemon = True
            timer.start()

    # -- ending -----------------------------------------------------------------------------
    def close(self, session_hash) -> None:
        """The session ended: its id is forgotten now (a later call with the same hash is a
        new session), its folders go once no work of it is in progress."""
        key = self._key(session_hash)
        with self._lock:
            sid = self._ids.pop(key, None)
        if sid is not None:
            self._end(sid)

    def _end(self, sid: str) -> None:
        with self._lock:
            busy = self._active.get(sid, 0) > 0
            if busy:
                self._closed.add(sid)
        self._release_uploads(sid)
        if not busy:
            self._remove(sid)

    def _remove(self, sid: str) -> None:
        self._unpublish_under(self.work_root / sid)
        for path in (self.work_root / sid, self.root / sid):
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            self._seen.pop(sid, None)

    def sweep(self, *, min_interval_s: float = 0.0) -> list[str]:
        """End sessions idle for longer than ``ttl_s`` (no work in progress), and remove
        folders no session owns. Returns the ids removed."""
        now = time.time()
        if now - self._last_sweep < min_interval_s:
            return []
        self._last_sweep = now
        with self._lock:
            idle = [sid for sid, t in self._seen.items()
                    if now - t > self.ttl_s and not self._active.get(sid)]
            for key in [k for k, sid in self._ids.items() if sid in idle]:
                del self._ids[key]
            live = set(self._ids.values()) | set(self._active)
        for sid in idle:
            self._end(sid)
        stray = [s for s in self.sessions() if s not in live and s not in idle]
        for sid in stray:  # e.g. left by a session whose id was swept while it was busy
            self._remove(sid)
        return sorted(idle + stray)
