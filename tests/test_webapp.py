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

def _uploads(tmp_path: Path) -> Path:
    return tmp_path / "gradio"


def _store(tmp_path: Path, **kw) -> SessionStore:
    up = _uploads(tmp_path)
    up.mkdir(exist_ok=True)
    return SessionStore(up / "humansplat-sessions", work_root=tmp_path / "work",
                        upload_root=up, **kw)


def _upload(tmp_path: Path, name: str, colour=(1, 2, 3)) -> Path:
    """A file as Gradio's upload route leaves it: <upload folder>/<digest>/<name>."""
    folder = _uploads(tmp_path) / f"{abs(hash((name, colour))):x}"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (80, 80), colour).save(folder / name)
    return folder / name


def test_session_folders_are_named_by_random_ids_never_by_the_session_hash(tmp_path):
    store = _store(tmp_path)
    for hash_ in ("5f2c-Ab_9", "../../etc", "/abs/path", "a" * 500, "", None):
        folder = store.open(hash_)
        assert folder.parent == store.work_root and folder.is_dir()
        assert hash_ is None or hash_ == "" or hash_ not in str(folder)
        assert len(folder.name) == 32 and folder.name != store._key(hash_)
    # an id seen in a URL, sent as a session hash, is a new session with nothing in it
    sid = store.session_id("victim")
    assert store.session_id(sid) != sid
    # a session that ends and comes back (same hash) gets a new id
    store.close("victim")
    assert store.session_id("victim") != sid


def test_each_published_file_has_its_own_random_folder(tmp_path):
    store = _store(tmp_path)
    with store.run("s") as run_dir:
        (run_dir / "result").mkdir()
        files = [run_dir / "result" / n for n in ("gaussians.ply", "meta.json")]
        for f in files:
            f.write_text(f.name)
    public = [Path(store.publish("s", f)) for f in files]
    assert [p.read_text() for p in public] == ["gaussians.ply", "meta.json"]
    assert public[0].parent != public[1].parent  # one URL gives away no sibling
    assert all(p.parent.parent == store.root / store.folder("s").name for p in public)
    assert store.publish("s", files[0]) == str(public[0])  # the same file, the same path
    with pytest.raises(ValueError):  # another session's file is never published for it
        store.publish("intruder", files[0])
    store.close("s")
    assert not any(p.exists() for p in public) and store.sessions() == []


def test_a_photo_must_be_an_upload_not_a_session_or_server_file(tmp_path):
    store = _store(tmp_path)
    good = _upload(tmp_path, "me.png")
    assert store.upload_problem(str(good)) is None
    with store.run("victim") as run_dir:
        result = run_dir / "views.png"
        Image.new("RGB", (80, 80)).save(result)
    published = Path(store.publish("victim", result))
    link = _uploads(tmp_path) / "link.png"
    link.symlink_to(good)
    outside = tmp_path / "server-file.png"
    Image.new("RGB", (80, 80)).save(outside)
    for bad in (result, published, link, outside, EXAMPLE, str(good.parent / ".." / "x.png"),
                "relative.png", "", None, 3):
        msg = store.upload_problem(bad if isinstance(bad, (int, type(None))) else str(bad))
        assert msg is not None, bad
        assert str(tmp_path) not in msg and "/" not in msg.replace("/gradio_api/upload", "")
    with pytest.raises(ValueError):
        store.adopt_upload("intruder", str(published))
    assert published.is_file() and result.is_file()  # a refusal deletes nothing


def test_uploads_are_copied_per_session_and_a_shared_one_outlives_its_other_users(tmp_path):
    store = _store(tmp_path, upload_grace_s=0.0)
    store.protect([EXAMPLE])
    shared = _upload(tmp_path, "same.png")  # two sessions sent the same bytes: one file
    example = _upload(tmp_path, "astronaut.jpg")
    example.write_bytes(EXAMPLE.read_bytes())
    copy_a = store.adopt_upload("a", str(shared))
    copy_b = store.adopt_upload("b", str(shared))
    store.adopt_upload("b", str(example))
    assert copy_a != copy_b and copy_a.read_bytes() == copy_b.read_bytes() == shared.read_bytes()
    assert copy_a.parent.parent == store.folder("a")  # inside a's own private folder
    assert store.adopt_upload("a", str(shared)) == copy_a  # adopted once
    store.close("b")  # b ends while a still uses the photo
    assert shared.is_file() and copy_a.is_file() and not copy_b.exists()
    store.close("a")  # the last user ends: the shared upload goes, the examples stay
    assert not shared.exists() and not copy_a.exists() and example.is_file()


def test_a_young_orphaned_upload_waits_for_the_grace_period(tmp_path):
    store = _store(tmp_path, upload_grace_s=0.5)
    photo = _upload(tmp_path, "new.png")
    store.claim_upload("a", str(photo))
    store.close("a")
    assert photo.is_file()  # another session may have just uploaded the same bytes
    deadline = time.monotonic() + 5
    while photo.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not photo.exists()


def test_a_session_closed_during_a_run_is_removed_when_the_run_ends(tmp_path):
    store = _store(tmp_path)
    with store.run("s") as run_dir:
        store.close("s")
        (run_dir / "still-writing.ply").write_text("...")  # the run may finish its files
        assert run_dir.exists()
    assert not run_dir.exists() and store.sessions() == []


def test_old_runs_are_pruned_with_their_links_and_idle_sessions_swept(tmp_path):
    store = _store(tmp_path, ttl_s=60, keep_runs=2)
    runs, links = [], []
    for _ in range(4):
        with store.run("s") as r:
            (r / "f.txt").write_text(r.name)
            runs.append(r)
            links.append(Path(store.publish("s", r / "f.txt")))
    kept = sorted(p.name for p in store.folder("s").iterdir())
    assert kept == sorted(r.name for r in runs[-2:])
    assert [p.exists() for p in links] == [False, False, True, True]
    assert store.sweep() == []  # fresh
    sid = store.folder("s").name
    store._seen[sid] -= 3600  # idle for an hour
    assert store.sweep() == [sid] and store.sessions() == []
    assert store.folder("s") != store.work_root / sid  # the hash now names a new session


# --------------------------------------------------------------------------------------------
# inputs taken exactly as sent, and the gate in front of the queue
# --------------------------------------------------------------------------------------------

def _photo_payload():
    return {"path": "/x/y.png", "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize("index, value, expected", [
    (1, 1.5, "seed must be a whole number from 0 to 2147483647; got 1.5"),
    (1, "7", "seed must be a whole number from 0 to 2147483647; got the string '7'"),
    (1, True, "seed must be a whole number"),
    (1, -1, "seed must be a whole number"),
    (2, 0.2, "foreground_ratio must be a number from 0.3 to 1; got 0.2"),
    (2, float("nan"), "foreground_ratio must be a number from 0.3 to 1"),
    (3, "false", "remove_background must be true or false (a JSON boolean); got the string "
                 "'false'"),
    (3, 0, "remove_background must be true or false"),
    (4, 0, "num_steps must be a whole number from 1 to 200"),
    (5, 11, "guidance must be a number from 1 to 10; got 11"),
    (0, "/etc/passwd", "image must be a file uploaded to this server"),
])
def test_inputs_are_taken_exactly_as_sent_with_a_message_per_parameter(index, value, expected):
    from humansplat.webapp.inputs import RECONSTRUCT_API, check_inputs

    data = [_photo_payload(), 0, 0.85, True, 50, 2.5]
    assert check_inputs(RECONSTRUCT_API, data) == [None] * 6
    assert check_inputs(RECONSTRUCT_API, [_photo_payload(), 3, 1, False, 1, 10.0]) == [None] * 6
    data[index] = value
    messages = check_inputs(RECONSTRUCT_API, data)
    assert messages[index] is not None and messages[index].startswith(expected), messages
    assert sum(m is not None for m in messages) == 1


def test_a_call_with_missing_inputs_gets_one_message_naming_them():
    from humansplat.webapp.inputs import RECONSTRUCT_API, check_inputs

    msg = check_inputs(RECONSTRUCT_API, [_photo_payload()])[0]
    assert msg == ("this endpoint takes 6 input(s), in this order: image, seed, "
                   "foreground_ratio, remove_background, num_steps, guidance; got 1.")


class _FakeQueue:
    """Gradio's queue as far as the gate sees it: ``push`` awaits the validator, then
    appends (the window a burst slips through)."""

    def __init__(self):
        from types import SimpleNamespace

        self.max_size = None
        self.group = SimpleNamespace(queue=[], current_concurrency=0)
        self.event_queue_per_concurrency_id = {"device": self.group}

    async def push(self, body, request, username):
        import asyncio

        await asyncio.sleep(0.01)  # the validator
        self.group.queue.append(body)
        return True, "event", "success"


def test_the_gate_holds_the_queue_limit_under_a_burst():
    import asyncio
    from types import SimpleNamespace

    from humansplat.webapp.gate import QueueGate, Rule
    from humansplat.webapp.inputs import MOTION, PART

    queue = _FakeQueue()
    gate = QueueGate(queue, {7: Rule((MOTION,), heavy=True), 8: Rule((PART,))}, None,
                     size=3, heavy_concurrency_id="device")

    async def burst(fn, n):
        calls = [gate.push(SimpleNamespace(fn_index=fn, data=["walk"]), None, None)
                 for _ in range(n)]
        return await asyncio.gather(*calls)

    results = asyncio.run(burst(7, 8))
    assert [r[2] for r in results].count("queue_full") == 5 and len(queue.group.queue) == 3
    assert "queue is full" in results[-1][1].lower() and "3 runs" in results[-1][1]
    # light calls are never refused for a full queue
    assert all(r[2] == "success" for r in asyncio.run(burst(8, 4)))
    bad = asyncio.run(gate.push(SimpleNamespace(fn_index=8, data=[3]), None, None))
    assert bad[2] == "validator_error" and bad[1][0]["parameter_name"] == "part"
    assert bad[1][0]["message"] == "part must be a short string; got 3."


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


def test_memory_is_handed_back_after_a_run_even_a_failed_one():
    from humansplat.webapp.memory import limit_malloc_arenas, returning_memory

    assert isinstance(limit_malloc_arenas(), bool)
    with pytest.raises(RuntimeError), returning_memory():
        raise RuntimeError("a run failed")
