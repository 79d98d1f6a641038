"""Keep a long-running server's memory flat over many runs (glibc only; a no-op elsewhere).

A run allocates and frees hundreds of MB (photos, body fit, renders, videos) from worker
threads. glibc gives each thread its own heap arena (up to 8 per core) and keeps freed pages
mapped, so the resident size of a server climbs run after run although nothing leaks. Two
remedies, both standard for threaded Python servers: few arenas (:func:`limit_malloc_arenas`,
at start-up, before the worker threads exist) and handing freed pages back after each run
(:func:`returning_memory`, around a run)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("humansplat.app")

__all__ = ["limit_malloc_arenas", "trim_heap", "returning_memory"]

_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


def limit_malloc_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas for the whole process; True when applied (glibc)."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, int(n)) == 1)


def trim_heap() -> None:
    """Return freed heap pages to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@contextmanager
def returning_memory() -> Iterator[None]:
    """Around a run: once it ends (however), its freed memory goes back to the system."""
    try:
        yield
    finally:
        trim_heap()
