"""Quiet by default: our own progress, results and errors; third-party logging only when asked.

Entry points (the CLI's ``main``, the app's start-up) call :func:`configure` once, before the
libraries that log are imported. Quiet (the default) means:

- Python logging: one stderr handler that passes ``humansplat.*`` records at the chosen level
  (INFO) and other loggers' records only at ERROR and above (``INFO:anny...``, httpx, ...);
- Python warnings from other packages are ignored;
- libraries with handlers of their own are told through their environment variables
  (transformers, diffusers, tokenizers), which they read at import;
- native code (mediapipe's absl/glog lines ``W0000 ...``, TF Lite's ``INFO: Created TensorFlow
  Lite XNNPACK delegate``) writes to file descriptor 2 from C++ and reads no environment
  variable we could set, so calls into it run inside :func:`native_stderr_filtered`, which
  captures fd 2 for the call and writes back every line that is not such a log line.

Verbose (``--verbose`` or ``HUMANSPLAT_LOG_LEVEL=debug``) leaves every library at its own
defaults and shows our DEBUG records. ``HUMANSPLAT_LOG_LEVEL=warning`` (or ``error``) also
quietens our own INFO records.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LEVEL_ENV", "configure", "is_verbose", "is_third_party_log_line",
           "native_stderr_filtered"]

#: environment variable: debug (= --verbose), info (default), warning, error
LEVEL_ENV = "HUMANSPLAT_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
# read by these libraries when they are imported (setdefault: a user's own choice wins)
_LIBRARY_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",  # else a warning at every fork after tokenizing
    "GLOG_minloglevel": "2",  # glog-based native code (older mediapipe builds)
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow native code
}
# Lines native libraries write to fd 2: absl/glog ("W0000 00:00:1796.84 10955 file.cc:114] ..."),
# absl's pre-init notice, and TF Lite's own "INFO: ..."/"WARNING: ..." lines.
_NATIVE_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w./+-]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|(?:INFO|WARNING|ERROR): (?:Created TensorFlow Lite|TfLite|Initialized TensorFlow Lite))")
_OWN = "humansplat"

_state = {"verbose": None}  # set by configure(); None: decided by $HUMANSPLAT_LOG_LEVEL
_fd_lock = threading.RLock()
_fd_depth = 0


def _env_level() -> str:
    return os.environ.get(LEVEL_ENV, "info").strip().lower() or "info"


def is_verbose() -> bool:
    """Whether third-party logging is shown (``--verbose`` or ``HUMANSPLAT_LOG_LEVEL=debug``)."""
    if _state["verbose"] is not None:
        return _state["verbose"]
    return _env_level() == "debug"


def is_third_party_log_line(line: str) -> bool:
    """Whether ``line`` is a native library's log line (absl/glog, TF Lite)."""
    return bool(_NATIVE_LINE.match(line))


class _QuietFilter(logging.Filter):
    """Our own records at our level; anybody else's only from ERROR up."""

    def __init__(self, own_level: int):
        super().__init__()
        self.own_level = own_level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == _OWN or record.name.startswith(_OWN + ".")
        return record.levelno >= (self.own_level if own else logging.ERROR)


def configure(verbose: bool | None = None) -> bool:
    """Set up logging for an entry point; returns whether it is verbose.

    verbose: True for ``--verbose``; None/False defer to ``$HUMANSPLAT_LOG_LEVEL``."""
    name = _env_level()
    if name not in _LEVELS:
        raise ValueError(f"${LEVEL_ENV} must be one of {', '.join(_LEVELS)}, got {name!r}")
    verbose = bool(verbose) or name == "debug"
    _state["verbose"] = verbose
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    handler._humansplat = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # replace our earlier handler and plain stderr handlers a library's basicConfig() added
    # (they would print everything unfiltered); keep others (files, pytest's capture)
    for h in list(root.handlers):
        if getattr(h, "_humansplat", False) or type(h) is logging.StreamHandler:
            root.removeHandler(h)
    root.addHandler(handler)
    if verbose:
        root.setLevel(logging.DEBUG)
        return True
    for key, value in _LIBRARY_ENV.items():
        os.environ.setdefault(key, value)
    handler.addFilter(_QuietFilter(_LEVELS[name]))
    # root at our level: libraries' INFO records are then dropped by the filter, not by
    # their own (unset) levels
    root.setLevel(_LEVELS[name])
    if not sys.warnoptions:  # python -W / $PYTHONWARNINGS: the user's choice stands
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=_OWN + r"(\.|$)")
    for lib in ("transformers", "diffusers"):  # already imported: their env var came too late
        mod = sys.modules.get(lib)
        if mod is not None and hasattr(getattr(mod, "utils", None), "logging"):
            mod.utils.logging.set_verbosity_error()
    return False


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Run a call into native code with its absl/TF Lite log lines on fd 2 removed (unless
    verbose). Whatever else reached fd 2 meanwhile (other threads, real errors) is written
    back when the block ends. Process-wide: blocks in other threads wait for this one."""
    global _fd_depth
    if is_verbose():
        yield
        return
    with _fd_lock:
        if _fd_depth:  # nested in this thread: the outer block already captures
            _fd_depth += 1
            try:
                yield
            finally:
                _fd_depth -= 1
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (e.g. pythonw)
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            _fd_depth = 1
            try:
                yield
            finally:
                _fd_depth = 0
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
                keep = "".join(line for line in text.splitlines(keepends=True)
                               if not is_third_party_log_line(line))
                if keep:
                    os.write(2, keep.encode("utf-8"))
