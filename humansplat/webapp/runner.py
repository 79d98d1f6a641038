"""One reconstruction for the app, as a stream of events with plain data only.

:func:`run_events` runs the pipeline in a worker thread and yields, in order:
:class:`ProgressUpdate` (often: also as a heartbeat, so a consumer can stop at any moment),
:class:`Preview` (the fitted body, the 4 generated views and the multi-view latents, as soon
as view synthesis is done), :class:`SplatReady` (the Gaussians written as .ply/.splat with
meta.json), :class:`Finished` (the turntable too), or :class:`Failed`.

Events hold only strings, numbers and dicts of them, so the generator can run inside
``@spaces.GPU`` (ZeroGPU runs it in another process and pickles what it yields). Closing the
generator early (the visitor pressed Stop, or left) cancels the worker at its next progress
report and waits for it, so nothing is written after the consumer is gone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from ..errors import HumanSplatError

log = logging.getLogger("humansplat.app")

__all__ = ["RunOptions", "ProgressUpdate", "Preview", "SplatReady", "Finished", "Failed",
           "run_events", "estimate_gpu_seconds", "summary_markdown", "STAGE_LABELS"]

#: what the visitor reads while each pipeline stage runs
STAGE_LABELS = {
    "load": "Reading the photo",
    "preprocess": "Finding the person",
    "body_fit": "Fitting the body model",
    "view_synthesis": "Generating 4 views",
    "model_inputs": "Preparing the model inputs",
    "reconstruction": "Predicting the 3D Gaussians",
    "export": "Writing the files",
    "turntable": "Rendering the turntable video",
}
# share of the progress bar: the pipeline, the file exports, the turntable
_PIPELINE, _EXPORT = 0.75, 0.05


@dataclass(frozen=True)
class RunOptions:
    """The visitor's settings for one run (None = the pipeline's default)."""

    seed: int = 0
    foreground_ratio: float | None = None
    remove_background: bool = True
    num_steps: int | None = None
    guidance: float | None = None
    video_size: int = 256


@dataclass(frozen=True)
class ProgressUpdate:
    fraction: float  # 0..1
    message: str


@dataclass(frozen=True)
class Preview:
    """PNG paths: the fitted body over the crop, the 4 views in a row, the latents picture."""

    body: str
    views: str
    latents: str


@dataclass(frozen=True)
class SplatReady:
    """``files``: every output written so far (keys of ``Reconstruction.save``); ``meta``:
    the contents of meta.json."""

    files: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished(SplatReady):
    """All files, the turntable included."""


@dataclass(frozen=True)
class Failed:
    """``user_error``: the photo cannot be used (message says why); else an internal error
    (details in the server log) or ``cancelled``."""

    message: str
    user_error: bool = False
    cancelled: bool = False


class _Cancelled(Exception):
    pass


def _write_previews(prepared, folder: Path) -> Preview:
    """The outputs of the front half, as PNGs, before the reconstruction runs."""
    from PIL import Image

    from ..io import save_image_grid, to_uint8
    from ..prior.overlay import overlay_fit
    from ..reconstruction import latents_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = Preview(body=str(folder / "body.png"), views=str(folder / "views.png"),
                    latents=str(folder / "latents.png"))
    Image.fromarray(overlay_fit(prepared.pre.rgb, prepared.fit)).save(paths.body)
    views = to_uint8(prepared.synth.previews.clamp(0, 1))  # [4,R,R,3]
    save_image_grid(list(views), paths.views, ncols=len(views))
    Image.fromarray(latents_image(prepared.latents)).save(paths.latents)
    return paths


def run_events(pipe, photo, options: RunOptions, out_dir, *,
               heartbeat_s: float = 0.25) -> Iterator[Any]:
    """Reconstruct ``photo`` (a LoadedImage, array or path) with ``pipe`` into ``out_dir``
    (``preview/`` and ``result/`` inside it), yielding the events of the module docstring.
    The last event is always :class:`Finished` or :class:`Failed`."""
    from ..pipeline import STAGES

    out = Path(out_dir)
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def report(fraction: float, message: str) -> None:
        if cancel.is_set():
            raise _Cancelled()
        events.put(ProgressUpdate(min(max(fraction, 0.0), 1.0), message))

    def on_stage(done: float, total: int, stage: str) -> None:
        # the pipeline reports a stage when it ends: show the one that starts now
        i = min(int(done), total - 1)
        label = STAGE_LABELS.get(STAGES[i], STAGES[i]) if done < total else \
            STAGE_LABELS["reconstruction"]
        if ": " in stage:  # a step inside a stage, e.g. "view_synthesis: step 3/50"
            label = f"{label} ({stage.split(': ', 1)[1]})"
        report(_PIPELINE * done / total, label)

    def on_export(done: float, total: int, stage: str, *, video: bool) -> None:
        if not video:
            report(_PIPELINE + _EXPORT * done / total, STAGE_LABELS["export"])
        else:
            report(_PIPELINE + _EXPORT + (1 - _PIPELINE - _EXPORT) * done / total,
                   STAGE_LABELS["turntable"])

    def work() -> None:
        try:
            t0 = time.perf_counter()
            report(0.0, STAGE_LABELS["load"])
            prepared = pipe.prepare(photo, seed=options.seed,
                                    foreground_ratio=options.foreground_ratio,
                                    remove_background=options.remove_background,
                                    num_steps=options.num_steps, guidance=options.guidance,
                                    progress=on_stage)
            report(_PIPELINE * 5 / 6, STAGE_LABELS["reconstruction"])
            events.put(_write_previews(prepared, out / "preview"))
            rec = pipe.finish([prepared], progress=on_stage)[0]
            rec.timings["total"] = time.perf_counter() - t0
            rec.meta["timings_s"] = dict(rec.timings)
            files = rec.save(out / "result", video=False,
                             progress=lambda d, n, s: on_export(d, n, s, video=False))
            events.put(SplatReady({k: str(v) for k, v in files.items()}, dict(rec.meta)))
            files = rec.save(out / "result", video=True, video_size=options.video_size,
                             progress=lambda d, n, s: on_export(d, n, s, video=True))
            events.put(Finished({k: str(v) for k, v in files.items()}, dict(rec.meta)))
        except _Cancelled:
            log.info("a run was stopped before it finished (%s)", out.name)
            events.put(Failed("The run was stopped.", cancelled=True))
        except HumanSplatError as err:
            events.put(Failed(str(err), user_error=True))
        except Exception:  # noqa: BLE001 - reported to the visitor without internals
            log.exception("reconstruction failed")
            events.put(Failed("The reconstruction failed because of an internal error (it is "
                              "in the server log). Please try again or use another photo."))

    worker = threading.Thread(target=work, name="humansplat-run", daemon=True)
    worker.start()
    last = ProgressUpdate(0.0, STAGE_LABELS["load"])
    try:
        while True:
            try:
                event = events.get(timeout=heartbeat_s)
            except queue.Empty:
                yield last  # heartbeat: lets the consumer stop us between reports
                continue
            if isinstance(event, ProgressUpdate):
                last = event
            yield event
            if isinstance(event, (Finished, Failed)):
                return
    finally:
        cancel.set()  # no-op when finished; otherwise the worker stops at its next report
        worker.join(timeout=600)
        if worker.is_alive():
            log.error("a reconstruction did not stop within 10 minutes of being cancelled")


def estimate_gpu_seconds(options: RunOptions, *, synthesizer: str = "projection",
                         default_steps: int = 50) -> int:
    """Seconds of GPU to ask ZeroGPU for (``@spaces.GPU(duration=...)``): asking too little
    aborts the run, too much costs the visitor quota. Body fit + transformer + exports take
    ~15 s on a GPU; SV3D adds ~0.35 s a step for 4 frames with classifier-free guidance, plus
    the VAE. The turntable is ~60 frames; its cost grows with the pixel count."""
    seconds = 15.0 + 3.0 * (options.video_size / 256) ** 2
    if synthesizer == "sv3d":
        steps = options.num_steps or default_steps
        seconds += 5.0 + 0.35 * steps
    return int(min(max(seconds * 1.25, 20), 300))


def _fmt_seconds(t: float) -> str:
    return f"{t:.2f}" if t < 10 else f"{t:.1f}"


def _checkpoint_name(ck: dict[str, Any]) -> str | None:
    """A Hub id (with its commit), or a local folder's name: never a server path."""
    ident, kind = ck.get("id"), ck.get("kind")
    if not ident:
        return kind
    if kind in ("bundled", "local"):
        return f"{Path(ident).name} ({kind})"
    commit = ck.get("commit")
    return f"{ident}@{commit[:8]}" if commit else str(ident)


def summary_markdown(meta: dict[str, Any]) -> str:
    """A small panel of what ran: settings, components and per-stage timings."""
    s = meta.get("settings", {})
    c = meta.get("components", {})
    t = dict(meta.get("timings_s", {}))
    ck = meta.get("checkpoint", {}) or {}
    rows = [
        ("Gaussians", f"{meta.get('num_gaussians', 0):,}"),
        ("seed", s.get("seed", meta.get("seed"))),
        ("foreground ratio", s.get("foreground_ratio")),
        ("background removed", s.get("remove_background")),
        ("view synthesis", c.get("view_synthesizer")),
        ("reconstruction", c.get("reconstruction")),
        ("checkpoint", _checkpoint_name(ck)),
        ("device", s.get("device", c.get("device"))),
    ]
    if s.get("num_steps") is not None:
        rows.append(("diffusion steps / guidance", f"{s.get('num_steps')} / {s.get('guidance')}"))
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None]
    total = t.pop("total", None)
    stage_rows = [f"| {k.replace('_', ' ')} | {_fmt_seconds(v)} |" for k, v in t.items()
                  if isinstance(v, (int, float))]
    if stage_rows:
        lines += ["", "| stage | seconds |", "|---|---|"] + stage_rows
        if total is not None:
            lines.append(f"| **photo to Gaussians** | **{_fmt_seconds(total)}** |")
    return "\n".join(lines)
