"""Process-wide settings fixed once at start-up, before any run: torch's thread count.

torch's intra-op thread count is process state, and float reductions (the body fit's
iterations, the transformer's matmuls) split work by it, so results depend on it to the last
bit. A run therefore never changes it: the CLI and the app call :func:`fix_threads` once when
they start (before worker threads exist: each thread takes the count when it first runs an
op), and every run after that, alone or concurrent, computes with the same count.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from .errors import ConfigError

__all__ = ["THREADS_ENV", "fix_threads"]

#: environment variable: torch intra-op threads per run (default: cores / concurrent runs)
THREADS_ENV = "HUMANSPLAT_THREADS"


def fix_threads(n: int | None = None, *, concurrent_runs: int = 1,
                env: Mapping[str, str] | None = None) -> int:
    """Set torch's intra-op thread count for the process and return it.

    n: the count; None = ``$HUMANSPLAT_THREADS``, else torch's default (the cores, or
    ``$OMP_NUM_THREADS``) shared between ``concurrent_runs`` runs (at least 1 each), so
    concurrent runs do not oversubscribe the cores."""
    env = os.environ if env is None else env
    if n is None:
        raw = (env.get(THREADS_ENV) or "").strip()
        if raw:
            try:
                n = int(raw)
            except ValueError:
                raise ConfigError(f"${THREADS_ENV} must be an integer, got {raw!r}") from None
        else:
            n = max(1, torch.get_num_threads() // max(1, int(concurrent_runs)))
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise ConfigError(f"the thread count must be an int in [1, 1024], got {n!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
