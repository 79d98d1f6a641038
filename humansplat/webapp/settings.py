"""The app's settings, read once from environment variables (documented in the README).

Every limit that protects a public deployment lives here, with its default, so the app, its
tests and the README agree on one set of numbers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from collections.abc import Mapping

from ..errors import ConfigError, MissingWeightsError

log = logging.getLogger("humansplat.app")

__all__ = ["AppSettings", "load_pipeline", "ENV"]

#: environment variable names, one place
ENV = {
    "checkpoint": "HUMANSPLAT_CHECKPOINT",  # folder or Hub repo id (default: bundled)
    "revision": "HUMANSPLAT_REVISION",  # Hub revision of that checkpoint
    "token": "HF_TOKEN",  # Hub token for gated/private checkpoints
    "device": "HUMANSPLAT_DEVICE",  # "cpu" / "cuda" (default: cuda when present)
    "mcp": "HUMANSPLAT_MCP",  # 1 = also serve the API as an MCP server (needs gradio[mcp])
    "queue_size": "HUMANSPLAT_QUEUE_SIZE",
    "concurrency": "HUMANSPLAT_CONCURRENCY",
    "max_upload_mb": "HUMANSPLAT_MAX_UPLOAD_MB",
    "max_megapixels": "HUMANSPLAT_MAX_MEGAPIXELS",
    "video_size": "HUMANSPLAT_VIDEO_SIZE",
    "session_ttl": "HUMANSPLAT_SESSION_TTL",
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    name = ENV[key]
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"${name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"${name} must be in [{lo}, {hi}], got {value}")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    name = ENV[key]
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"${name} must be 1/0 (true/false), got {raw!r}")


@dataclass(frozen=True)
class AppSettings:
    """checkpoint/revision/token: which pipeline to load (None = the bundled one, offline);
    device: None = CUDA when present; mcp_server: serve the API as MCP tools too;
    queue_size: waiting runs before new ones are told the queue is full;
    concurrency: runs at once (1 on a CPU: parallel runs only slow each other down);
    max_upload_mb: uploads larger than this are refused by the server before they land;
    max_megapixels: photos with more pixels are refused on their header, before decoding;
    video_size: turntable and animation side in px; session_ttl_s: age after which an
    abandoned session's folder (a caller that never closed its session) is swept."""

    checkpoint: str | None = None
    revision: str | None = None
    token: str | None = field(default=None, repr=False)
    device: str | None = None
    mcp_server: bool = False
    queue_size: int = 20
    concurrency: int = 1
    max_upload_mb: int = 10
    max_megapixels: int = 24
    video_size: int = 256
    session_ttl_s: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        env = os.environ if env is None else env
        device = (env.get(ENV["device"]) or "").strip().lower() or None
        if device not in (None, "cpu", "cuda"):
            raise ConfigError(f"${ENV['device']} must be cpu or cuda, got {device!r}")
        return cls(
            checkpoint=(env.get(ENV["checkpoint"]) or "").strip() or None,
            revision=(env.get(ENV["revision"]) or "").strip() or None,
            token=(env.get(ENV["token"]) or "").strip() or None,
            device=device,
            mcp_server=_bool(env, "mcp", False),
            queue_size=_int(env, "queue_size", 20, 1, 10_000),
            concurrency=_int(env, "concurrency", 1, 1, 64),
            max_upload_mb=_int(env, "max_upload_mb", 10, 1, 200),
            max_megapixels=_int(env, "max_megapixels", 24, 1, 40),
            video_size=_int(env, "video_size", 256, 64, 1024),
            session_ttl_s=_int(env, "session_ttl", 3600, 60, 7 * 24 * 3600),
        )

    @property
    def max_file_size(self) -> str:
        """For ``launch(max_file_size=...)``."""
        return f"{self.max_upload_mb}mb"


def load_pipeline(settings: AppSettings, *, on_zero_gpu: bool = False):
    """Load the pipeline the settings name. Returns ``(pipeline, notices)``: notices are
    sentences the UI shows once (e.g. that only the prior-only baseline could be loaded).

    A checkpoint named explicitly (``$HUMANSPLAT_CHECKPOINT``) must load, or this raises: a
    misconfigured deployment should fail loudly. When the *bundled* checkpoint is absent the
    app still works with the prior-only baseline and says so."""
    from ..pipeline import HumanSplatPipeline
    from ..runtime import fix_threads

    fix_threads()  # at start-up, before the worker threads: runs never change the count
    device = "cuda" if on_zero_gpu else settings.device
    notices: list[str] = []
    try:
        pipe = HumanSplatPipeline.from_pretrained(settings.checkpoint, revision=settings.revision,
                                                  token=settings.token, device=device)
    except MissingWeightsError as err:
        if settings.checkpoint is not None:
            raise
        log.warning("no reconstruction checkpoint (%s); running the prior-only baseline", err)
        pipe = HumanSplatPipeline.prior_only(device=device)
        notices.append("No trained reconstruction checkpoint was found, so this demo shows "
                       "the **prior-only baseline** (the fitted body, textured from the "
                       "photo). Set `HUMANSPLAT_CHECKPOINT` to a checkpoint folder or Hub repo.")
    return pipe, notices
