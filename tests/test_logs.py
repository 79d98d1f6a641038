"""Quiet by default (humansplat.logs): our records pass, third-party ones do not, and the
native (absl / TF Lite) lines mediapipe writes to fd 2 are removed unless verbose."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from humansplat import logs

ROOT = Path(__file__).resolve().parents[1]

ABSL = ("W0000 00:00:1796286289.846409   10955 inference_feedback_manager.cc:114] Feedback "
        "manager requires a model with a single signature inference.")
TFLITE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def test_native_log_lines_are_recognised_and_ours_are_not():
    for line in (ABSL, TFLITE, "I1203 08:24:21.123456 42 graph.cc:7] started",
                 "WARNING: All log messages before absl::InitializeLog() is called are "
                 "written to STDERR"):
        assert logs.is_third_party_log_line(line), line
    for line in ("[1/1] a.jpg: error: no person found", "humansplat reconstruct: error: x",
                 "INFO:anny:this is Python logging, handled by the logging filter",
                 " 50%|#####     | 3/6 [00:01<00:01, 2.0stage/s]"):
        assert not logs.is_third_party_log_line(line), line


def test_quiet_filter_passes_our_records_and_third_party_errors_only():
    f = logs._QuietFilter(logging.INFO)

    def rec(name, level):
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    assert f.filter(rec("humansplat.app", logging.INFO))
    assert f.filter(rec("humansplat", logging.WARNING))
    assert not f.filter(rec("humansplat.prior.body", logging.DEBUG))
    assert not f.filter(rec("anny.models", logging.INFO))
    assert not f.filter(rec("httpx", logging.WARNING))
    assert not f.filter(rec("humansplatx", logging.INFO))  # a prefix is not our package
    assert f.filter(rec("gradio", logging.ERROR))


def test_configure_rejects_an_unknown_level(monkeypatch):
    monkeypatch.setenv(logs.LEVEL_ENV, "loud")
    with pytest.raises(ValueError, match="HUMANSPLAT_LOG_LEVEL must be one of"):
        logs.configure()


def test_native_filter_keeps_other_fd2_output(capfd, monkeypatch):
    monkeypatch.setitem(logs._state, "verbose", False)
    with logs.native_stderr_filtered():
        os.write(2, f"{ABSL}\nsomething real went wrong\n{TFLITE}\n".encode())
        with logs.native_stderr_filtered():  # nested: still one capture
            os.write(2, f"{ABSL}\n".encode())
    assert capfd.readouterr().err == "something real went wrong\n"
    monkeypatch.setitem(logs._state, "verbose", True)
    with logs.native_stderr_filtered():
        os.write(2, f"{ABSL}\n".encode())
    assert capfd.readouterr().err == ABSL + "\n"


_MEDIAPIPE_RUN = textwrap.dedent("""
    import logging, warnings
    from skimage import data
    from humansplat.logs import configure
    configure()
    from humansplat.prior.landmarks import MediapipePose
    from humansplat.prior.segmentation import default_segmenter
    img = data.astronaut()
    default_segmenter()(img); MediapipePose()(img)
    logging.getLogger("anny").info("a third-party info record")
    logging.getLogger("humansplat.test").info("our own record")
    warnings.warn("a third-party style warning", FutureWarning)
""")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_mediapipe_is_quiet_unless_debug(level):
    """The real thing: mediapipe's graphs print absl and TF Lite lines from C++ at start-up;
    quiet they are gone (and so are third-party records and warnings), with
    HUMANSPLAT_LOG_LEVEL=debug they are all shown."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), logs.LEVEL_ENV: level}
    proc = subprocess.run([sys.executable, "-c", _MEDIAPIPE_RUN], capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    native = [ln for ln in lines if logs.is_third_party_log_line(ln)]
    assert any("humansplat.test: our own record" in ln for ln in lines), proc.stderr
    if level == "debug":
        assert native and any("TensorFlow Lite" in ln for ln in native), proc.stderr
        assert "a third-party info record" in proc.stderr
        assert "FutureWarning" in proc.stderr
    else:
        assert native == [], proc.stderr
        assert "a third-party info record" not in proc.stderr
        assert "FutureWarning" not in proc.stderr
        assert len(lines) == 1, proc.stderr
