"""The app's views of a finished result, without a server: which result a session works on
(``SessionStore.latest_result``, ``use``), the animation and the part views written from a
result folder (files only, as across the ZeroGPU boundary), and their input checks."""

from __future__ import annotations

from dataclasses import replace

import imageio.v3 as iio
import pytest
import torch

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.avatar import BodyParams, body_surface_gaussians
from humansplat.io import load_splat, save_ply, save_splat
from humansplat.parts_export import resolve_parts
from humansplat.webapp import (SessionStore, animate_result, check_motion, check_part_view,
                               estimate_animation_gpu_seconds, part_view)


def _complete(run_dir):
    (run_dir / "result").mkdir(parents=True)
    (run_dir / "result" / "meta.json").write_text("{}")
    return run_dir / "result"


def test_latest_result_is_the_newest_complete_run_of_that_session(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    assert store.latest_result("a") is None
    with store.run("a") as first:
        done = _complete(first)
    with store.run("a") as second:  # a run that never finished (stopped, failed)
        (second / "result").mkdir()
    assert store.latest_result("a") == done
    assert store.latest_result("b") is None  # never another session's
    with store.run("a") as third:
        newest = _complete(third)
    assert store.latest_result("a") == newest


def test_a_session_closed_while_its_result_is_in_use_goes_when_the_work_ends(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    with store.run("a") as run_dir:
        result = _complete(run_dir)
    with store.use("a"):
        store.close("a")
        assert result.is_dir()  # an animation is still reading it
    assert store.sessions() == [] and not result.exists()


@pytest.fixture(scope="module")
def result_folder(anny_body, tmp_path_factory):
    """A result folder as a run leaves it, with a splat that carries no part labels (so
    the part views fall back to the fitted body) and the body's parameters."""
    body = anny_body
    params = BodyParams(torch.zeros(body.num_joints - 1, 3), body.shape_default.clone(),
                        torch.zeros(3), torch.zeros(3), torch.tensor(1.0))
    g = body_surface_gaussians(body, params, n=1500)
    result = _complete(tmp_path_factory.mktemp("session") / "run-1")
    save_ply(replace(g, labels=None), result / "gaussians.ply", y_down=True)
    save_splat(g, result / "gaussians.splat", y_down=True)
    params.save(result / "body.npz")
    return result, g


def test_part_views_from_a_result_folder(result_folder, anny_body):
    result, g = result_folder
    assert part_view(result, "photo") == str(result / "gaussians.splat")
    head = part_view(result, "head", body_model=anny_body)
    assert head.startswith(str(result.parent / "views"))  # next to the result, not in it
    truth = int(torch.isin(g.labels, torch.tensor(resolve_parts("head"))).sum())
    assert abs(len(load_splat(head, y_down=True)) - truth) <= 0.03 * truth
    assert part_view(result, "head") == head  # reused: the result never changes
    assert len(load_splat(part_view(result, "all"), y_down=True)) == len(g)
    with pytest.raises(ValueError, match="part view must be"):
        part_view(result, "../../etc")


def test_a_part_the_reconstruction_lacks_gets_a_readable_error(anny_body, tmp_path):
    params = BodyParams(torch.zeros(anny_body.num_joints - 1, 3),
                        anny_body.shape_default.clone(), torch.zeros(3), torch.zeros(3),
                        torch.tensor(1.0))
    g = body_surface_gaussians(anny_body, params, n=800)
    legs = g[torch.isin(g.labels, torch.tensor(resolve_parts("legs")))]
    result = _complete(tmp_path / "run-1")
    save_ply(legs, result / "gaussians.ply", y_down=True)
    with pytest.raises(ValueError, match="no Gaussian labelled head"):
        part_view(result, "head")


@pytest.mark.parametrize("motion, frames", [("walk", 4), ("apose", 60)])
def test_animation_from_a_result_folder(result_folder, anny_body, motion, frames):
    result, _ = result_folder
    path = animate_result(result, motion, body_model=anny_body, size=64, n_frames=4)
    assert path == str(result.parent / "views" / f"{motion}.mp4")
    video = list(iio.imiter(path))
    assert len(video) == frames  # the A-pose is a turntable of its own length
    assert video[0].shape == (64, 64, 3) and video[0].std() > 1.0
    assert animate_result(result, motion, size=64, n_frames=4) == path  # reused


def test_checks_and_gpu_time():
    assert check_motion("wave") is None and "walk" in check_motion("moonwalk")
    assert check_motion(None) is not None
    for ok in ("photo", "all", "upper_body", "left_hand"):
        assert check_part_view(ok) is None, ok
    for bad in ("", "../x", "tail", None, "HEAD"):
        assert check_part_view(bad) is not None, bad
    assert 15 <= estimate_animation_gpu_seconds(256) <= estimate_animation_gpu_seconds(1024) \
        <= 120
