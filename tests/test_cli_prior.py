"""The README's first command, end to end: `humansplat prior` on the example photo (the
pipeline without a model, as `reconstruct --prior-only`), plus bad
inputs in the same batch (each gets a one-line error, the good photo still finishes, exit 2)."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from plyfile import PlyData

from humansplat.io import load_ply
from humansplat.io.splat_files import PLY_PROPERTIES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prior")
    bad_txt = tmp / "notes.jpg"
    bad_txt.write_text("this is not an image")
    blank = tmp / "blank.png"
    iio.imwrite(blank, np.full((256, 256, 3), 200, np.uint8))
    out = tmp / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "humansplat.cli", "prior", str(ROOT / "examples/astronaut.jpg"),
         str(bad_txt), str(tmp / "missing.png"), str(blank), "-o", str(out)],
        capture_output=True, text=True, timeout=900)
    return proc, out


def test_good_photo_finishes_and_bad_ones_fail_cleanly(prior_run):
    proc, out = prior_run
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 3, proc.stderr[-2000:]
    assert any("notes.jpg" in e for e in errors)
    assert any("missing.png" in e for e in errors)
    assert any("blank.png" in e and "person" in e.lower() for e in errors)
    assert (out / "astronaut").is_dir()
    assert not (out / "notes").exists() and not (out / "blank").exists()


def test_outputs_open_in_third_party_readers(prior_run):
    _, out = prior_run
    d = out / "astronaut"
    ply = PlyData.read(str(d / "gaussians.ply"))
    names = [p.name for p in ply["vertex"].properties]
    assert names[: len(PLY_PROPERTIES)] == list(PLY_PROPERTIES)
    g = load_ply(d / "gaussians.ply")  # the header says y-down; the loader undoes it
    assert len(g) > 1000 and g.means[:, 1].max() > g.means[:, 1].min() + 0.3
    assert (d / "gaussians.splat").stat().st_size == 32 * len(g)
    frames = list(iio.imiter(d / "orbit.mp4"))
    assert len(frames) == 60
    meta = json.loads((d / "meta.json").read_text())
    assert meta["components"]["view_synthesizer"] == "projection"
    assert meta["fit"]["silhouette_iou"] > 0.5
    views = iio.imread(d / "views.png")
    assert views.shape[1] == 4 * views.shape[0]


def test_prior_writes_what_reconstruct_prior_only_writes(prior_run):
    """`humansplat prior` is the pipeline without a model: the folder layout, meta.json
    schema and settings of `reconstruct --prior-only`."""
    from humansplat.reconstruction import OUTPUT_FILES

    _, out = prior_run
    d = out / "astronaut"
    assert sorted(p.name for p in d.iterdir()) == sorted(OUTPUT_FILES.values())
    meta = json.loads((d / "meta.json").read_text())
    assert meta["format"] == "humansplat-reconstruction/1"
    assert meta["settings"]["prior_only"] is True and meta["settings"]["crop_size"] == 512
    assert meta["checkpoint"] == {"id": None, "kind": "prior-only"}
