"""``python app.py`` in a subprocess on 127.0.0.1, for tests and the cold-start benchmark:
start it, wait until it answers, say how long that took, stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AppProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppProcess:
    """url: where it serves; temp_dir: its GRADIO_TEMP_DIR (uploads, served files, session
    folders); log: its stdout+stderr; startup_s: launch to first HTTP 200."""

    url: str
    temp_dir: Path
    log: Path
    startup_s: float
    proc: subprocess.Popen

    @classmethod
    def start(cls, app_file: Path, work_dir: Path, env: dict[str, str] | None = None, *,
              timeout_s: float = 180.0) -> AppProcess:
        import httpx

        work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        full_env = dict(os.environ, GRADIO_TEMP_DIR=str(work_dir / "gradio"),
                        GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
                        GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
                        **(env or {}))
        log = work_dir / "server.log"
        url = f"http://127.0.0.1:{port}/"
        t0 = time.perf_counter()
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(app_file)], cwd=app_file.parent,
                                    env=full_env, stdout=out, stderr=subprocess.STDOUT)
        app = cls(url, work_dir / "gradio", log, 0.0, proc)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{app_file.name} exited with {proc.returncode}:\n"
                                   + app.log_tail())
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                app.stop()
                raise RuntimeError(f"{app_file.name} did not serve within {timeout_s:.0f} s:\n"
                                   + app.log_tail())
            time.sleep(0.1)
        app.startup_s = time.perf_counter() - t0
        return app

    def alive(self) -> bool:
        import httpx

        return self.proc.poll() is None and httpx.get(self.url, timeout=10).status_code == 200

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
