"""One error policy (humansplat.errors): a HumanSplatError is the user's to fix - one line and
exit 2 in the CLI, its message in the app; anything else is a bug - the traceback and exit 1 in
the CLI, logged with its traceback and a generic message (no internals) in the app."""

from __future__ import annotations

import logging

import pytest

import humansplat.io
from humansplat import cli, errors
from humansplat.errors import HumanSplatError, NoPersonError, OutputFolderError
from humansplat.webapp.runner import Failed, RunOptions, run_events


def test_cli_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nothing.ply"
    assert cli.main(["render", str(missing), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("humansplat render: error: ") and str(missing) in err
    not_a_splat = tmp_path / "bad.ply"
    not_a_splat.write_text("not a ply")
    assert cli.main(["render", str(not_a_splat), "-o", str(tmp_path / "out")]) == 2
    assert "not a readable PLY file" in capsys.readouterr().err


@pytest.mark.parametrize("bug", [RuntimeError("boom"), ValueError("boom"), OSError("boom")],
                         ids=["RuntimeError", "ValueError", "OSError"])
def test_cli_bug_is_a_traceback_and_exit_1(tmp_path, capsys, monkeypatch, bug):
    """Even a ValueError/OSError that no user check raised is a bug, not 'bad input'."""
    def broken(*_a, **_k):
        raise bug

    monkeypatch.setattr(humansplat.io, "load_ply", broken)
    ply = tmp_path / "g.ply"
    ply.write_text("x")
    assert cli.main(["render", str(ply), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f"{type(bug).__name__}: boom" in err
    assert "internal error" in err.splitlines()[-1]


def test_user_errors_live_in_errors_py():
    assert issubclass(OutputFolderError, HumanSplatError) and issubclass(OutputFolderError,
                                                                        OSError)
    assert cli.OutputFolderError is errors.OutputFolderError  # one definition, used by the CLI


class _Pipe:
    """A pipeline whose front half raises ``err`` (the runner only calls prepare first)."""

    def __init__(self, err: Exception):
        self.err = err

    def prepare(self, *_a, **_k):
        raise self.err


def _last_event(pipe, tmp_path):
    events = list(run_events(pipe, object(), RunOptions(), tmp_path, heartbeat_s=0.05))
    assert isinstance(events[-1], Failed)
    return events[-1]


def test_app_user_error_is_shown_as_is(tmp_path):
    ev = _last_event(_Pipe(NoPersonError("no person was found in the photo")), tmp_path)
    assert ev.user_error and ev.message == "no person was found in the photo"


def test_app_bug_is_logged_with_its_traceback_and_shown_generically(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="humansplat.app"):
        ev = _last_event(_Pipe(KeyError("secret_internal_name")), tmp_path)
    assert not ev.user_error and not ev.cancelled
    assert "internal error" in ev.message and "secret_internal_name" not in ev.message
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret_internal_name" in repr(logged[0].exc_info[1])
