"""The web demo (``python app.py``) launched on 127.0.0.1 for the app tests, once per test run.

Until the bundled checkpoint ships, the server loads a *micro* reconstruction checkpoint that
this fixture saves (random weights: the files are real, the splat is not a good one). Small
settings keep a run short on 2 CPU cores: a 128 px turntable, a 256 px crop, a quick body
fit (``prior.fit.QUICK_FIT``), a 2 MB upload limit (so the oversized-upload case is
cheap to make), a 1 s session heartbeat (sessions end within about a second of a client
closing), a queue of ``QUEUE_SIZE`` device-work calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from humansplat.webapp.process import AppProcess

ROOT = Path(__file__).resolve().parents[1]
MAX_UPLOAD_MB = 2
VIDEO_SIZE = 128
QUEUE_SIZE = 4

_server: AppServer | None = None  # one server per test run, shared by the test modules


class AppServer(AppProcess):
    @property
    def sessions_dir(self) -> Path:
        return self.temp_dir / "humansplat-sessions"

    @property
    def work_dir(self) -> Path:
        """The private folder of the runs (next to Gradio's, never served)."""
        found = sorted(self.temp_dir.parent.glob("humansplat-work-*"))
        assert len(found) == 1, found
        return found[0]

    def sessions(self) -> list[str]:
        """Ids of the session folders (public or private) on the server now: random ids,
        never a client's session hash."""
        return sorted({p.name for d in (self.sessions_dir, self.work_dir) if d.is_dir()
                       for p in d.iterdir()})


def copies_of(data: bytes, *roots: Path) -> list[Path] | None:
    """Files holding exactly ``data`` under ``roots``; None while a folder vanishes mid-scan
    (the server's cleanup at work: look again)."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    try:
        return [p for r in roots for p in r.rglob("*")
                if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    except OSError:
        return None


def save_micro_checkpoint(folder: Path) -> Path:
    """A pipeline checkpoint folder with a randomly initialised micro transformer. Few
    Gaussians (a 128 px input view, 64 px generated views): these servers test sessions and
    wiring, not fidelity, and a software-rendered viewer slows every browser command."""
    from micro_pipeline import make_micro_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    return make_micro_checkpoint(folder, input_resolution=128, view_resolution=64)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, request) -> AppServer:
    global _server
    if _server is None or _server.proc.poll() is not None:
        tmp = tmp_path_factory.mktemp("app")
        ckpt = save_micro_checkpoint(tmp / "micro-checkpoint")
        env = {"HUMANSPLAT_CHECKPOINT": str(ckpt), "GRADIO_HEARTBEAT_INTERVAL": "1",
               "HUMANSPLAT_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
               "HUMANSPLAT_VIDEO_SIZE": str(VIDEO_SIZE), "HF_HUB_OFFLINE": "1",
               "HUMANSPLAT_QUEUE_SIZE": str(QUEUE_SIZE),
               "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        _server = AppServer.start(ROOT / "app.py", tmp, env)
        request.config.add_cleanup(_server.stop)
        msg = f"app.py served on {_server.url} {_server.startup_s:.1f} s after launch"
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(msg)
        else:
            print(msg)
    return _server
