"""Process-wide settings fixed once at start-up, before any run: torch's thread count.

torch's intra-op thread count is process state, and float reductions split work by it, so
results depend on it to the last bit. A run therefore never changes it: the CLI and the app
call :func:`fix_threads` once when they start (before worker threads exist: each thread takes
the count when it first runs an op), and every run after that, alone or concurrent, computes
with the same count.

The default is one thread per run. With more, the body fit is not reproducible on CPU (two
threads: the same photo twice in one process gave fitted vertices 1.5 cm apart, while one
thread gave identical bits), and its many small ops gain nothing from threads (on 2 shared
cores one thread was 3-10x faster than two). ``$HUMANSPLAT_THREADS`` trades that for a faster
transformer forward on a many-core CPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from .errors import ConfigError

__all__ = ["THREADS_ENV", "DEFAULT_THREADS", "fix_threads"]

#: environment variable: torch intra-op threads (default DEFAULT_THREADS)
THREADS_ENV = "HUMANSPLAT_THREADS"
DEFAULT_THREADS = 1


def fix_threads(n: int | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """Set torch's intra-op thread count for the process and return it.

    n: the count; None = ``$HUMANSPLAT_THREADS``, else :data:`DEFAULT_THREADS`."""
    env = os.environ if env is None else env
    if n is None:
        raw = (env.get(THREADS_ENV) or "").strip()
        if not raw:
            n = DEFAULT_THREADS
        else:
            try:
                n = int(raw)
            except ValueError:
                raise ConfigError(f"${THREADS_ENV} must be an integer, got {raw!r}") from None
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise ConfigError(f"the thread count must be an int in [1, 1024], got {n!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
