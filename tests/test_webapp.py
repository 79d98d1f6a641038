"""The pieces behind the web demo, without a server: photo checks, session folders, settings,
the GPU-time estimate, and the streaming run (order of its events, and that stopping it stops
the work)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humansplat.errors import ConfigError, HumanSplatError
from humansplat.webapp import (AppSettings, Failed, Finished, PhotoCheck, Preview,
                               ProgressUpdate, RunOptions, SessionStore, SplatReady,
                               check_photo, estimate_gpu_seconds, load_photo, run_events,
                               summary_markdown)

from torch_threads import one_thread  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"


# --------------------------------------------------------------------------------------------
# photo checks
# --------------------------------------------------------------------------------------------

def _png(path: Path, size, mode="RGB") -> Path:
    Image.new(mode, size).save(path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda d: None, "upload a photo"),
    (lambda d: d / "missing.png", "no longer on the server"),
    (lambda d: _bytes(d / "empty.jpg", b""), "empty"),
    (lambda d: _bytes(d / "notes.jpg", b"just text"), "not an image"),
    (lambda d: _png(d / "one.png", (1, 1)), "too small"),
    (lambda d: _png(d / "thin.png", (64, 900)), "too elongated"),
    # 36 megapixels of 1-bit PNG: a few kB on disk, refused on its header before decoding
    (lambda d: _png(d / "huge.png", (6000, 6000), "1"), "megapixels"),
    (lambda d: _bytes(d / "cut.jpg", EXAMPLE.read_bytes()[:3000]), "corrupt"),
])
def test_bad_photos_get_readable_messages_without_paths(tmp_path, make, expected):
    photo = make(tmp_path)
    msg = check_photo(photo)
    assert msg is not None and expected in msg.lower(), msg
    assert str(tmp_path) not in msg and "<bytes>" not in msg


def test_photo_limits_come_from_the_settings(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8)).save(big)
    assert check_photo(big) is None
    assert "the limit is 0.0954 MB" in check_photo(big, PhotoCheck(max_bytes=100_000))
    assert "megapixels" in check_photo(big, PhotoCheck(max_megapixels=0.1))


def test_a_good_photo_loads_without_its_server_path():
    loaded = load_photo(EXAMPLE)
    assert loaded.rgb.shape == (512, 512, 3) and loaded.source == "upload"


# --------------------------------------------------------------------------------------------
# sessions
# --------------------------------------------------------------------------------------------

def test_session_ids_from_clients_cannot_escape_the_root(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    for evil in ("../../etc", "/abs/path", "a" * 200, "x/../y", "", None):
        folder = store.open(evil)
        assert folder.parent == store.root and folder.is_dir()
    assert SessionStore.key("5f2c-Ab_9") == "5f2c-Ab_9"


def test_closing_a_session_removes_its_folder_and_uploads_but_not_examples(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "a").mkdir(parents=True)
    (uploads / "b").mkdir()
    mine = uploads / "a" / "me.png"
    Image.new("RGB", (80, 80), (1, 2, 3)).save(mine)
    example_copy = uploads / "b" / "astronaut.jpg"
    example_copy.write_bytes(EXAMPLE.read_bytes())
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (80, 80)).save(outside)

    store = SessionStore(tmp_path / "sessions", upload_root=uploads)
    store.protect([EXAMPLE])
    store.open("s1")
    with store.run("s1") as run_dir:
        (run_dir / "x.txt").write_text("output")
    for p in (mine, example_copy, outside):
        store.track_upload("s1", p)
    store.close("s1")
    assert not store.folder("s1").exists()
    assert not mine.exists() and not (uploads / "a").exists()  # and its empty folder
    assert example_copy.exists() and outside.exists()


def test_a_session_closed_during_a_run_is_removed_when_the_run_ends(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    with store.run("s") as run_dir:
        store.close("s")
        (run_dir / "still-writing.ply").write_text("...")  # the run may finish its files
        assert run_dir.exists()
    assert not store.folder("s").exists()


def test_old_runs_are_pruned_and_abandoned_sessions_swept(tmp_path):
    store = SessionStore(tmp_path / "sessions", ttl_s=60, keep_runs=2)
    runs = []
    for _ in range(4):
        with store.run("s") as r:
            runs.append(r)
    kept = sorted(p.name for p in store.folder("s").iterdir())
    assert kept == sorted(r.name for r in runs[-2:])
    assert store.sweep() == []  # fresh
    old = time.time() - 3600
    for p in [store.folder("s"), *store.folder("s").iterdir()]:
        os.utime(p, (old, old))
    assert store.sweep() == ["s"] and not store.folder("s").exists()


# --------------------------------------------------------------------------------------------
# settings, estimate, summary
# --------------------------------------------------------------------------------------------

def test_settings_from_the_environment():
    s = AppSettings.from_env({"HUMANSPLAT_CHECKPOINT": " owner/repo ", "HUMANSPLAT_MCP": "1",
                              "HUMANSPLAT_QUEUE_SIZE": "5", "HF_TOKEN": "secret"})
    assert (s.checkpoint, s.mcp_server, s.queue_size, s.max_file_size) == \
        ("owner/repo", True, 5, "10mb")
    assert "secret" not in repr(s)
    assert AppSettings.from_env({}) == AppSettings()
    for bad in ({"HUMANSPLAT_QUEUE_SIZE": "many"}, {"HUMANSPLAT_CONCURRENCY": "0"},
                {"HUMANSPLAT_MCP": "maybe"}, {"HUMANSPLAT_DEVICE": "tpu"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            AppSettings.from_env(bad)


def test_gpu_time_grows_with_the_diffusion_steps_and_stays_bounded():
    base = estimate_gpu_seconds(RunOptions())
    sv3d = [estimate_gpu_seconds(RunOptions(num_steps=n), synthesizer="sv3d")
            for n in (10, 50, 200)]
    assert 20 <= base < sv3d[0] < sv3d[1] < sv3d[2] <= 300
    assert estimate_gpu_seconds(RunOptions(), synthesizer="sv3d", default_steps=50) == sv3d[1]
    assert estimate_gpu_seconds(RunOptions(video_size=512)) > base


def test_summary_shows_settings_and_timings_but_no_server_path():
    md = summary_markdown({"num_gaussians": 12345, "settings": {"seed": 7, "device": "cpu"},
                           "components": {"view_synthesizer": "projection"},
                           "checkpoint": {"id": "/srv/app/humansplat/checkpoints/humansplat-tiny",
                                          "kind": "bundled"},
                           "timings_s": {"body_fit": 1.234, "total": 4.5}})
    assert "12,345" in md and "| seed | 7 |" in md and "body fit | 1.23" in md
    assert "humansplat-tiny (bundled)" in md and "/srv/app" not in md
    assert "**4.50**" in md


# --------------------------------------------------------------------------------------------
# the streaming run
# --------------------------------------------------------------------------------------------

class _SlowPipe:
    """Stands in for the pipeline: reports progress every 50 ms for ``steps`` steps."""

    def __init__(self, steps=200, fail=None):
        self.steps, self.fail, self.calls = steps, fail, 0
        self.stopped = threading.Event()

    def prepare(self, photo, *, progress, **kw):
        try:
            for i in range(self.steps):
                self.calls += 1
                if self.fail is not None and i == 2:
                    raise self.fail
                time.sleep(0.05)
                progress(i * 5 / self.steps, 6, "body_fit")
        finally:
            self.stopped.set()
        raise AssertionError("the slow pipeline is never meant to finish")


def test_closing_the_stream_stops_the_work(tmp_path):
    pipe = _SlowPipe()
    events = run_events(pipe, None, RunOptions(), tmp_path, heartbeat_s=0.05)
    first = next(events)
    assert isinstance(first, ProgressUpdate)
    t0 = time.perf_counter()
    events.close()  # what Gradio does when the visitor presses Stop
    assert pipe.stopped.is_set() and time.perf_counter() - t0 < 2.0
    assert pipe.calls < pipe.steps
    assert not (tmp_path / "result").exists()


@pytest.mark.parametrize("error, user_error", [
    (HumanSplatError("No person found in the photo."), True),
    (RuntimeError("CUDA out of memory at 0x7f.. in /srv/secret.py"), False),
])
def test_failures_become_messages(tmp_path, error, user_error):
    events = list(run_events(_SlowPipe(fail=error), None, RunOptions(), tmp_path))
    last = events[-1]
    assert isinstance(last, Failed) and last.user_error is user_error
    if user_error:
        assert last.message == str(error)
    else:
        assert "internal error" in last.message and "/srv" not in last.message


@pytest.fixture(scope="module")
def micro_pipe(tmp_path_factory):
    from app_server import save_micro_checkpoint
    from humansplat.pipeline import HumanSplatPipeline

    folder = save_micro_checkpoint(tmp_path_factory.mktemp("micro"))
    return HumanSplatPipeline.from_pretrained(folder)


def test_outputs_arrive_in_order_as_they_become_ready(micro_pipe, tmp_path, one_thread):
    photo = load_photo(EXAMPLE)
    kinds, fractions = [], []
    for event in run_events(micro_pipe, photo, RunOptions(seed=1, video_size=64), tmp_path):
        if isinstance(event, ProgressUpdate):
            fractions.append(event.fraction)
        elif not kinds or kinds[-1] is not type(event):
            kinds.append(type(event))
        if isinstance(event, Preview):
            assert all(Path(p).is_file() for p in (event.body, event.views, event.latents))
            assert not (tmp_path / "result").exists()  # before the Gaussians exist
        if isinstance(event, SplatReady) and not isinstance(event, Finished):
            assert Path(event.files["splat"]).is_file() and "video" not in event.files
    assert kinds == [Preview, SplatReady, Finished], kinds
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    assert Path(event.files["video"]).is_file() and event.meta["seed"] == 1
    assert {Path(p).parent for p in event.files.values()} == {tmp_path / "result"}
