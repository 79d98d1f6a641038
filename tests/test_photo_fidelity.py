"""The real-photo benchmark's core (humansplat.eval.photo_fidelity, benchmarks/real_photos.py)
at micro size: a splat built by unprojecting a known photo through its input camera must
score as a near-perfect copy, a shifted one must not, and the cut-edge share must count
exactly the opacity placed beyond the photo's edge."""

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from humansplat.cameras import pixel_rays, project_points
from humansplat.io import save_ply
from humansplat.eval.photo_fidelity import (
    InputCamera,
    beyond_edge_fraction,
    crop_to_frame,
    cut_edges,
    input_camera_from_meta,
    input_view_scores,
    photo_at_input_camera,
    render_at_camera,
    whole_photo_view,
)
from humansplat.gaussians import Gaussians
from humansplat.prior.fit import input_camera

_SPEC = importlib.util.spec_from_file_location(
    "real_photos", Path(__file__).resolve().parents[1] / "benchmarks" / "real_photos.py")
rp = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("real_photos", rp)  # dataclasses look their module up
_SPEC.loader.exec_module(rp)

W, H, S = 80, 60, 128
CROP_BOX = (-10.0, -15.0, 90.0, 85.0)  # square, reaches beyond the photo on every side
DEPTH = 2.6  # the input camera's distance to the origin


def _photo() -> tuple[np.ndarray, np.ndarray]:
    """A smooth textured 'person' (an ellipse cut by the bottom edge) on a gradient."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    person = ((x - 42) / 18) ** 2 + ((y - 50) / 30) ** 2 < 1.0
    bg = np.stack([x / W, 0.3 + 0 * x, y / H], -1)
    fg = np.stack([0.5 + 0.4 * np.sin(y / 5), 0.6 + 0.3 * np.cos(x / 6), 0.2 + 0 * x], -1)
    rgb = np.where(person[..., None], fg, bg)
    return (rgb * 255 + 0.5).astype(np.uint8), person.astype(np.float32)


def _camera() -> InputCamera:
    cam = input_camera(S, S)
    return InputCamera(cam.viewmats[0], cam.Ks[0], S, S, CROP_BOX)


def _unprojected_splat(photo: np.ndarray, mask: np.ndarray, cam: InputCamera) -> Gaussians:
    """One small Gaussian per crop pixel whose centre falls on the person in the photo,
    coloured from the photo by the crop box alone (independent of the warp under test)."""
    origins, dirs = pixel_rays(cam.viewmat[None], cam.K[None], S, S)
    v, u = np.mgrid[0:S, 0:S] + 0.5
    xs = np.floor(u / cam.scale + CROP_BOX[0]).astype(int)
    ys = np.floor(v / cam.scale + CROP_BOX[1]).astype(int)
    ok = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    on = np.zeros((S, S), bool)
    on[ok] = mask[ys[ok], xs[ok]] > 0.5
    sel = torch.from_numpy(on)
    t = DEPTH / dirs[0, ..., 2].abs()  # to the plane z = 0 (the camera looks along -z)
    means = (origins[0] + dirs[0] * t[..., None])[sel]
    colors = torch.from_numpy(photo[ys[on], xs[on]].astype(np.float32) / 255.0)
    n = len(means)
    px = DEPTH / float(cam.K[0, 0])  # one pixel in metres at that depth
    return Gaussians(means=means.float(), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
                     scales=torch.full((n, 3), 0.45 * px), opacities=torch.full((n,), 0.99),
                     colors=colors)


def _micro_rec(g: Gaussians, cam: InputCamera) -> SimpleNamespace:
    """A stand-in Reconstruction: what the benchmark reads of one (gaussians, meta)."""
    return SimpleNamespace(gaussians=g, meta={
        "camera": {"viewmat": cam.viewmat.tolist(), "K": cam.K.tolist(), "image_size": [S, S]},
        "input": {"crop_box": list(CROP_BOX), "original_size": [W, H], "source": None}})


def test_photo_view_matches_crop_geometry():
    photo, mask = _photo()
    cam = _camera()
    view = photo_at_input_camera(photo, mask, cam)
    assert view.rgb.shape == (S, S, 3) and view.mask.shape == view.inside.shape == (S, S)
    # the photo's edges in camera pixels, and nothing of the photo beyond them
    left, top, right, bottom = cam.photo_rect((W, H))
    assert (left, top) == pytest.approx((10 * 1.28, 15 * 1.28))
    assert (right, bottom) == pytest.approx((90 * 1.28, 75 * 1.28))
    assert view.inside[:, : int(left) - 1].max() == 0 and view.inside[int(bottom) + 1:].max() == 0
    assert view.inside[30:80, 30:80].min() == 1.0
    # the identity crop returns the photo itself
    same = InputCamera(cam.viewmat, cam.K, 60, 60, (0.0, 0.0, 60.0, 60.0))
    v2 = photo_at_input_camera(photo[:, :60], mask[:, :60], same)
    np.testing.assert_allclose(v2.rgb, photo[:, :60] / 255.0, atol=1e-6)


def test_unprojected_photo_scores_as_a_copy_and_a_shifted_one_does_not():
    photo, mask = _photo()
    cam = _camera()
    view = photo_at_input_camera(photo, mask, cam)
    g = _unprojected_splat(photo, mask, cam)
    rgb, alpha = render_at_camera(g, cam.viewmat, cam.K, S, S)
    good = input_view_scores(rgb, alpha, view)
    assert good["psnr"] > 25.0 and good["ssim"] > 0.85 and good["iou"] > 0.9, good
    shifted = Gaussians(means=g.means + torch.tensor([0.25, 0.0, 0.0]), quats=g.quats,
                        scales=g.scales, opacities=g.opacities, colors=g.colors)
    rgb, alpha = render_at_camera(shifted, cam.viewmat, cam.K, S, S)
    bad = input_view_scores(rgb, alpha, view)
    assert bad["iou"] < good["iou"] - 0.2 and bad["psnr"] < good["psnr"] - 5, (good, bad)


def test_psnr_where_the_masks_agree_separates_the_splat_from_the_segmenters():
    """A pipeline mask that cut away half the person: the splat of what it kept scores low
    inside the independent mask (white where the half is missing), but as a copy where the
    two masks agree."""
    photo, mask = _photo()
    cam = _camera()
    own = mask.copy()
    own[:, : own.shape[1] // 2] = 0
    view = photo_at_input_camera(photo, mask, cam)
    own_view = photo_at_input_camera(photo, own, cam).mask
    rgb, alpha = render_at_camera(_unprojected_splat(photo, own, cam), cam.viewmat, cam.K, S, S)
    s = input_view_scores(rgb, alpha, view, own_mask=torch.from_numpy(own_view))
    assert s["psnr_both"] > 25.0 and s["psnr"] < s["psnr_both"] - 5, s
    assert "psnr_both" not in input_view_scores(rgb, alpha, view)


def test_scores_need_a_mask_and_matching_shapes():
    photo, mask = _photo()
    view = photo_at_input_camera(photo, np.zeros_like(mask), _camera())
    with pytest.raises(ValueError, match="empty"):
        input_view_scores(torch.ones(S, S, 3), torch.ones(S, S), view)
    with pytest.raises(ValueError, match="do not match"):
        input_view_scores(torch.ones(S, S + 1, 3), torch.ones(S, S + 1), view)


def test_cut_edges():
    _, mask = _photo()
    assert cut_edges(mask) == ("bottom",)
    m = np.zeros((50, 40), np.float32)
    assert cut_edges(m) == ()
    m[10:50, 0:25] = 1.0  # through the bottom-left corner
    assert cut_edges(m) == ("bottom", "left")


def test_beyond_edge_fraction_counts_opacity_past_the_cut_edge():
    cam = _camera()
    left, _, _, bottom = cam.photo_rect((W, H))
    # pixels: 3 inside the photo, 1 below its bottom edge, 1 beyond the left one
    pix = torch.tensor([[30.0, 30.0], [40.0, 20.0], [20.0, 40.0],
                        [30.0, bottom + 4.0], [left - 3.0, 30.0]])
    ones = torch.ones(len(pix), 1)
    d_cam = torch.cat([pix, ones], 1) @ torch.linalg.inv(cam.K).T
    R, t = cam.viewmat[:3, :3], cam.viewmat[:3, 3]
    pts_cam = d_cam / d_cam[:, 2:3] * 2.0  # 2 m in front of the camera
    means = (pts_cam - t) @ R  # camera -> world
    behind = (torch.tensor([[30.0, bottom + 4.0, -2.0]]) - t) @ R  # never counts
    uv, _ = project_points(means, cam.viewmat[None], cam.K[None])
    assert torch.allclose(uv[0], pix, atol=1e-3)
    op = torch.tensor([0.5, 0.5, 0.5, 1.0, 0.5, 1.0])
    n = len(op)
    g = Gaussians(means=torch.cat([means, behind]),
                  quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
                  scales=torch.full((n, 3), 0.01), opacities=op, colors=torch.ones(n, 3))
    assert beyond_edge_fraction(g, cam, (W, H), ("bottom",)) == pytest.approx(1.0 / 3.0)
    assert beyond_edge_fraction(g, cam, (W, H), ("left",)) == pytest.approx(0.5 / 3.0)
    assert beyond_edge_fraction(g, cam, (W, H)) == pytest.approx(1.5 / 3.0)
    assert beyond_edge_fraction(g, cam, (W, H), ()) == 0.0
    with pytest.raises(ValueError, match="unknown edge"):
        beyond_edge_fraction(g, cam, (W, H), ("bottom", "under"))


def test_input_camera_from_meta_round_trip():
    cam = _camera()
    meta = {"camera": {"viewmat": cam.viewmat.tolist(), "K": cam.K.tolist(),
                       "image_size": [S, S]}, "input": {"crop_box": list(CROP_BOX)}}
    back = input_camera_from_meta(json.loads(json.dumps(meta)))
    assert torch.allclose(back.viewmat, cam.viewmat) and back.crop_box == CROP_BOX
    with pytest.raises(ValueError, match="no usable input camera"):
        input_camera_from_meta({"camera": {}})


def test_benchmark_evaluate_case_on_a_micro_reconstruction():
    """The benchmark's per-case scoring on a stand-in reconstruction (meta + gaussians)."""
    photo, mask = _photo()
    cam = _camera()

    rec = _micro_rec(_unprojected_splat(photo, mask, cam), cam)
    rec.mask = photo_at_input_camera(photo, mask, cam).mask  # the pipeline's mask, [S,S]
    row = rp.evaluate_case(rec, photo, mask)
    assert row["mask_agreement"] == pytest.approx(1.0)
    assert row["psnr"] > 25 and row["iou"] > 0.9 and row["cut_edges"] == ["bottom"]
    assert row["psnr_both"] >= row["psnr"] - 1e-6
    assert row["beyond_cut_edge"] < 0.02 and row["gaussians"] == len(rec.gaussians)
    regions = row["error_by_region"]
    assert sum(r["pixels"] for r in regions.values()) == pytest.approx(1.0)
    assert sum(r["error"] for r in regions.values()) == pytest.approx(1.0)


def test_masks_only_scores_the_masks_as_the_full_run_does():
    """``--masks-only`` (``mask_case``): the pipeline's mask from its preprocessing alone,
    placed in the whole photo by the crop box, scores the full run's ``mask_agreement`` to
    the bit; the shares each mask alone holds are measured, noisy copies are preprocessed
    too, and the table prints every case and the mean."""
    photo, mask = _photo()
    cam = _camera()
    rec = _micro_rec(_unprojected_splat(photo, mask, cam), cam)
    own = photo_at_input_camera(photo, mask, cam).mask.copy()
    own[: S // 2] = 0.0  # the pipeline's mask loses the top half of the person
    rec.mask = own
    seen = []

    class Pipe:
        def preprocess(self, p):
            seen.append(p)
            return SimpleNamespace(mask=own, crop_box=CROP_BOX)

    case = SimpleNamespace(name="micro", split="dev", load=lambda: photo,
                           independent_mask=lambda: mask)
    row = rp.mask_case(Pipe(), case, noise_seeds=2)
    full = rp.evaluate_case(rec, photo, mask)
    assert row["mask_agreement"] == full["mask_agreement"] < 0.8
    assert row["independent_only"] > 0.05 and row["pipeline_only"] < 0.01
    assert len(seen) == 3 and seen[0] is photo
    assert np.array_equal(seen[2], rp.grey_level_noise(photo, 2))
    n = row["mask_agreement_noise"]
    assert n["min"] == n["max"] == row["mask_agreement"]  # the stub's mask ignores the noise
    text = rp.masks_table([row, {"case": "gone", "split": "dev", "error": "no person"}])
    assert "micro" in text and "error: no person" in text and "mean" in text


def test_benchmark_noise_runs_score_the_photo_saved_again():
    """``--noise-seeds``: the pipeline also sees the photo with a grey level of seeded noise
    (never more than one level off), every run is scored against the photo itself, and the
    row and the table give the mean and range over the runs."""
    from types import SimpleNamespace

    photo, mask = _photo()
    cam = _camera()
    rec = _micro_rec(_unprojected_splat(photo, mask, cam), cam)
    rec.mask = photo_at_input_camera(photo, mask, cam).mask
    seen = []

    def pipe(p, seed=0):
        seen.append(p)
        return rec

    case = SimpleNamespace(name="micro", file="micro.png", crop=None, package=None,
                           split="dev", what="a stand-in", load=lambda: photo,
                           independent_mask=lambda: mask)
    row = rp.run_case(pipe, case, noise_seeds=2)
    assert len(seen) == 3 and seen[0] is photo
    for k, noisy in enumerate(seen[1:], 1):
        diff = noisy.astype(int) - photo.astype(int)
        assert noisy.dtype == np.uint8 and np.abs(diff).max() == 1 and diff.any()
        assert np.array_equal(noisy, rp.grey_level_noise(photo, k))  # seeded
    assert not np.array_equal(seen[1], seen[2])
    assert len(row["noise_runs"]) == 3 and row["noise_runs"][0]["psnr"] == row["psnr"]
    p = row["psnr_noise"]
    assert p["min"] <= p["mean"] <= p["max"] and p["max"] - p["min"] < 1e-6  # same splat
    text = rp.table([dict(row, seconds=1.0)])
    assert "over 3 runs" in text and "spread 0.00 dB" in text
    assert "noise_runs" not in rp.run_case(pipe, case)


def test_error_by_region_puts_each_error_where_it_is():
    """Person = the left 12 columns; the pipeline's mask: solid on 10, soft on column 10;
    all the error in column 11, just outside the pipeline's mask."""
    from types import SimpleNamespace

    S = 20
    pm = np.zeros((S, S), np.float32)
    pm[:, :10] = 1.0
    pm[:, 10] = 0.7
    person = np.zeros((S, S), np.float32)
    person[:, :12] = 1.0
    photo = np.full((S, S, 3), 0.5, np.float32)
    render = photo.copy()
    render[:, 11] += 0.25  # squared error 1/16 in column 11 only
    view = SimpleNamespace(rgb=photo, mask=person, inside=np.ones((S, S), np.float32))
    regions = rp.error_by_region(render, view, pm)
    assert regions["inside"]["pixels"] == pytest.approx(10 / 12)
    assert regions["rim"]["pixels"] == pytest.approx(1 / 12)
    assert regions["outside_3px"]["pixels"] == pytest.approx(1 / 12)
    assert regions["outside_far"]["pixels"] == 0 and regions["outside_far"]["psnr"] is None
    assert regions["outside_3px"]["error"] == pytest.approx(1.0)
    assert regions["outside_3px"]["psnr"] == pytest.approx(-10 * np.log10(1 / 16))
    assert regions["inside"]["psnr"] == 99.0  # no error at all there


def test_table_and_before_after_markdown():
    row = {"case": "a", "split": "dev", "psnr": 12.44, "ssim": 0.56, "iou": 0.778,
           "beyond_cut_edge": 0.029, "gaussians": 6007, "seconds": 30.0}
    after = dict(row, psnr=26.01, iou=0.93, beyond_cut_edge=0.004, gaussians=41000)
    err = {"case": "b", "split": "held-out", "error": "no person"}
    text = rp.table([row, err])
    assert "12.44" in text and "error: no person" in text and "0/1 cases" in text
    md = rp.compare_markdown({"label": "before", "rows": [row, err]},
                             {"label": "after", "rows": [after, err]})
    assert ("| a | dev | 12.4 → 26.0 | - → - | 0.560 → 0.560 | 0.778 → 0.930 | - → - | "
            "2.9 % → 0.4 % |") in md
    assert "6,007 → 41,000" in md and "| b |" not in md
    assert "Both targets met: before 0 of 1, after 1 of 1" in md
    # a case only the later run has (a photo added since) is a row with "-" before it
    new = dict(after, case="c", psnr=20.0)
    md = rp.compare_markdown({"label": "before", "rows": [row]},
                             {"label": "after", "rows": [after, new]})
    assert "| c | dev | - → 20.0 |" in md
    assert "before 0 of 1, after 1 of 2 (PSNR >= 25: 1, IoU >= 0.92: 2)" in md


def test_before_after_markdown_over_noise_runs():
    def row(psnrs, ious):
        runs = [{"psnr": p, "iou": i} for p, i in zip(psnrs, ious)]
        return {"case": "a", "split": "dev", "psnr": psnrs[0], "ssim": 0.9, "iou": ious[0],
                "beyond_cut_edge": None, "gaussians": 10, "seconds": 1.0, "noise_runs": runs,
                "psnr_noise": {"mean": float(np.mean(psnrs)), "min": min(psnrs),
                               "max": max(psnrs)},
                "iou_noise": {"mean": float(np.mean(ious)), "min": min(ious), "max": max(ious)}}

    md = rp.compare_markdown({"label": "b", "rows": [row([20.0, 14.0, 17.0], [0.8] * 3)]},
                             {"label": "a", "rows": [row([18.0, 19.0, 20.0], [0.9] * 3)]})
    assert "| a | dev | 17.0 [14.0, 20.0] → 19.0 [18.0, 20.0] | 0.800 → 0.900 | 20.0 → 18.0 |" in md
    assert "mean PSNR 17.00 → 19.00 dB" in md and "spread (max - min PSNR) 6.00 → 2.00 dB" in md


def test_cases_are_real_files_with_a_held_out_split():
    names = [c.name for c in rp.CASES]
    assert len(names) == len(set(names)) >= 5
    assert {c.split for c in rp.CASES} == {"dev", "held-out"}
    assert sum(c.split == "held-out" for c in rp.CASES) >= 2
    readme = (Path(rp.ROOT) / "examples" / "README.md").read_text()
    for c in rp.CASES:
        assert c.file in readme and c.name in readme
        if c.package is None:
            assert (Path(rp.ROOT) / "examples" / c.file).is_file()
        else:  # fetched from a pinned wheel, never committed
            assert "==" in c.package.requirement and len(c.package.sha256) == 64
            assert not (Path(rp.ROOT) / "examples" / c.file).exists()
            assert c.package.requirement in readme and c.package.licence in readme
    # at least five distinct photos (issue 15), counting a crop as its photo
    assert len({c.file for c in rp.CASES}) >= 5


def _tiny_wheel(folder: Path, member: str, data: bytes) -> None:
    """A minimal valid wheel ``tinyphotos-0.1`` holding ``member``, for pip's --find-links."""
    import zipfile

    di = "tinyphotos-0.1.dist-info"
    meta = "Metadata-Version: 2.1\nName: tinyphotos\nVersion: 0.1\n"
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(folder / "tinyphotos-0.1-py3-none-any.whl", "w") as z:
        z.writestr(member, data)
        z.writestr(f"{di}/METADATA", meta)
        z.writestr(f"{di}/WHEEL", wheel)
        z.writestr(f"{di}/RECORD", "")


def test_package_photo_fetches_checks_and_caches(tmp_path):
    import hashlib

    from package_photos import PackagePhoto, PhotoUnavailable

    index, cache = tmp_path / "index", tmp_path / "cache"
    index.mkdir()
    data = b"\x89PNG not really, but bytes with a known hash"
    _tiny_wheel(index, "tinyphotos/assets/person.png", data)
    local = ("--no-index", "--find-links", str(index))
    sha = hashlib.sha256(data).hexdigest()
    photo = PackagePhoto("tinyphotos==0.1", "tinyphotos/assets/person.png", sha, "CC0")
    path = photo.fetch(cache, local)
    assert path.read_bytes() == data and path.is_relative_to(cache)
    (index / "tinyphotos-0.1-py3-none-any.whl").unlink()  # the cache answers now
    assert photo.fetch(cache, local) == path
    with pytest.raises(PhotoUnavailable, match="SHA-256"):  # other bytes than pinned
        _tiny_wheel(index, "tinyphotos/assets/person.png", data + b"!")
        PackagePhoto("tinyphotos==0.1", "tinyphotos/assets/person.png", "0" * 64,
                     "CC0").fetch(cache, local)
    with pytest.raises(PhotoUnavailable, match="has no"):
        PackagePhoto("tinyphotos==0.1", "tinyphotos/other.png", sha, "CC0").fetch(cache, local)
    with pytest.raises(PhotoUnavailable, match="could not download"):
        PackagePhoto("tinyphotos==9.9", "x.png", sha, "CC0").fetch(tmp_path / "c2", local)


def test_package_photo_takes_one_frame_of_a_video(tmp_path):
    """A video member gives the frame at ``frame`` (read in order), as a PNG."""
    import hashlib

    import cv2
    from package_photos import PackagePhoto, PhotoUnavailable

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]  # BGR: red, green, blue frames
    for c in colours:
        w.write(np.full((48, 64, 3), c, np.uint8))
    w.release()
    data = video.read_bytes()
    index = tmp_path / "index"
    index.mkdir()
    _tiny_wheel(index, "tinyphotos/demo/clip.avi", data)
    local = ("--no-index", "--find-links", str(index))
    sha = hashlib.sha256(data).hexdigest()
    path = PackagePhoto("tinyphotos==0.1", "tinyphotos/demo/clip.avi", sha, "MIT",
                        frame=2).fetch(tmp_path / "cache", local)
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32).mean((0, 1))
    assert path.suffix == ".png" and rgb[2] > 200 and rgb[:2].max() < 50  # the blue frame
    with pytest.raises(PhotoUnavailable, match="no frame 7"):
        PackagePhoto("tinyphotos==0.1", "tinyphotos/demo/clip.avi", sha, "MIT",
                     frame=7).fetch(tmp_path / "cache", local)


def test_reconstruction_beyond_edges_reads_the_meta():
    from humansplat.eval.photo_fidelity import reconstruction_beyond_edges

    photo, mask = _photo()
    cam = _camera()

    g = _unprojected_splat(photo, mask, cam)
    assert reconstruction_beyond_edges(_micro_rec(g, cam), ("bottom",)) == 0.0
    low = Gaussians(means=g.means - torch.tensor([0.0, 0.5, 0.0]), quats=g.quats,
                    scales=g.scales, opacities=g.opacities, colors=g.colors)
    assert reconstruction_beyond_edges(_micro_rec(low, cam), ("bottom",)) > 0.3
    with pytest.raises(ValueError, match="original photo size"):
        reconstruction_beyond_edges(SimpleNamespace(gaussians=g, meta={
            **_micro_rec(g, cam).meta, "input": {"crop_box": list(CROP_BOX)}}))


def _script(name: str):
    """A module of ``scripts/`` (not a package), loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _micro_rec_dir(tmp_path: Path):
    """A reconstruction folder as ``Reconstruction.save`` writes it, of the toy photo:
    (folder, photo, mask, camera)."""
    from PIL import Image

    photo, mask = _photo()
    cam = _camera()
    g = _unprojected_splat(photo, mask, cam)
    rec = tmp_path / "micro"
    rec.mkdir()
    save_ply(g, rec / "gaussians.ply", y_down=True)  # as Reconstruction.save writes it
    (rec / "meta.json").write_text(json.dumps(_micro_rec(g, cam).meta))
    Image.fromarray(photo).save(rec / "photo.png")
    return rec, photo, mask, cam


def test_readme_figure_of_a_micro_reconstruction(tmp_path):
    rf = _script("readme_figures")
    from PIL import Image

    rec, photo, mask, cam = _micro_rec_dir(tmp_path)
    size = 48
    img = rf.figure(rec, size=size)
    assert img.dtype == np.uint8 and img.shape == (size + rf.LABEL_PX + 4, 5 * size + 12, 3)
    # panel 2 (the re-render) shows the photo's person where panel 1 does
    p1 = img[2:2 + size, 2:2 + size].astype(float)
    p2 = img[2:2 + size, 4 + size:4 + 2 * size].astype(float)
    person = np.asarray(Image.fromarray((photo_at_input_camera(photo, mask, cam).mask * 255)
                                        .astype(np.uint8)).resize((size, size))) > 200
    assert np.abs(p1 - p2)[person].mean() < 20
    n = rf.save_small_png(img, tmp_path / "fig.png", max_kb=150)
    assert n == (tmp_path / "fig.png").stat().st_size < 150 * 1024


def test_zoom_figure_crops_photo_and_rerenders_at_the_photos_resolution(tmp_path):
    zf = _script("zoom_figure")
    rec, photo, mask, cam = _micro_rec_dir(tmp_path)
    img = zf.zoom_panels([rec, rec], ["a", "b"], (0.25, 0.25, 0.75, 0.75), scale=2)
    side = 50 * 2  # half of the 100 px native crop, enlarged 2x
    assert img.dtype == np.uint8 and img.shape == (side + zf.LABEL_PX + 4, 3 * side + 8, 3)
    p1 = img[2:2 + side, 2:2 + side].astype(float)
    view = photo_at_input_camera(photo, mask, cam.native())
    person = np.kron(view.mask[25:75, 25:75], np.ones((2, 2))) > 0.8
    assert person.any()
    for k in (1, 2):  # both re-renders show the photo's person where the photo does
        pk = img[2:2 + side, 2 + k * (side + 2):2 + k * (side + 2) + side].astype(float)
        assert np.abs(p1 - pk)[person].mean() < 20


def test_native_camera_is_the_same_view_at_the_photos_resolution():
    cam = _camera()
    nat = cam.native()
    assert nat.width == nat.height == 100  # the crop box's side in photo pixels
    assert nat.scale == pytest.approx(1.0)
    assert nat.photo_rect((W, H)) == pytest.approx((10.0, 15.0, 90.0, 75.0))
    p = torch.tensor([[0.1, 0.2, 0.3]])
    uv, _ = project_points(p, cam.viewmat[None], cam.K[None])
    uv2, _ = project_points(p, nat.viewmat[None], nat.K[None])
    assert torch.allclose(uv2, uv * 100 / S, atol=1e-4)
    assert cam.native(max_size=64).width == 64
    photo, mask = _photo()
    g = _unprojected_splat(photo, mask, cam)
    view = photo_at_input_camera(photo, mask, nat)
    rgb, alpha = render_at_camera(g, nat.viewmat, nat.K, nat.width, nat.height)
    assert input_view_scores(rgb, alpha, view)["iou"] > 0.9


def test_whole_photo_frame_projects_like_the_crop_and_maps_its_masks_back():
    """The benchmark scores in the whole photo's frame: a point projects to the same photo
    pixel through the crop's camera and the reframed one, and a crop-space mask maps back
    onto the photo pixels it came from."""
    photo, mask = _photo()
    cam = _camera()
    view, frame = whole_photo_view(photo, mask, cam)
    assert (frame.width, frame.height) == (W, H) and view.rgb.shape == (H, W, 3)
    np.testing.assert_allclose(view.rgb, photo / 255.0, atol=1e-6)
    assert view.inside.min() == 1.0
    p = torch.tensor([[0.1, 0.2, 0.3], [-0.4, 0.1, -0.2]])
    uv, _ = project_points(p, cam.viewmat[None], cam.K[None])
    uv2, _ = project_points(p, frame.viewmat[None], frame.K[None])
    photo_xy = uv / cam.scale + torch.tensor(CROP_BOX[:2])  # crop px -> photo px
    assert torch.allclose(uv2, photo_xy, atol=1e-3)
    back = crop_to_frame(photo_at_input_camera(photo, mask, cam).mask, cam, frame)
    assert back.shape == (H, W)
    assert np.abs(back - mask)[2:-2, 2:-2].mean() < 0.02  # resampled twice: edges soften
    # the splat seen in the photo's own frame is the photo again
    rgb, alpha = render_at_camera(_unprojected_splat(photo, mask, cam), frame.viewmat,
                                  frame.K, W, H)
    good = input_view_scores(rgb, alpha, view)
    assert good["psnr"] > 25.0 and good["iou"] > 0.9, good
    # a long side over max_size scales the frame, keeping the photo's aspect
    small, f2 = whole_photo_view(photo, mask, cam, max_size=40)
    assert (f2.width, f2.height) == (40, 30) and small.mask.shape == (30, 40)


def test_benchmark_counts_the_person_a_crop_cut_off():
    """The crop is the pipeline's choice: person pixels beyond it still count as missed
    (the evaluation frame is the whole photo, not the crop)."""
    photo, mask = _photo()
    tight = (30.0, 5.0, 55.0, 30.0)  # the person's head only
    cam = _camera().reframed(tight, S, S)  # the same camera, cropped tighter
    g = _unprojected_splat(photo, mask, _camera())  # the whole person as a splat
    inside_crop = np.zeros_like(mask)
    inside_crop[5:30, 30:55] = 1.0
    # only the Gaussians that project inside the tight crop: what a cut mask would give
    uv, _ = project_points(g.means, cam.viewmat[None], cam.K[None])
    keep = ((uv[0] >= 0) & (uv[0] < S)).all(-1)
    cut = Gaussians(means=g.means[keep], quats=g.quats[keep], scales=g.scales[keep],
                    opacities=g.opacities[keep], colors=g.colors[keep])
    full_row = rp.evaluate_case(_micro_rec_box(g, cam, tight), photo, mask)
    cut_row = rp.evaluate_case(_micro_rec_box(cut, cam, tight), photo, mask)
    missed = (mask * (1 - inside_crop)).sum() / mask.sum()
    assert missed > 0.2
    assert full_row["iou"] > 0.9
    assert cut_row["iou"] < full_row["iou"] - 0.8 * missed, (cut_row["iou"], missed)


def _micro_rec_box(g: Gaussians, cam: InputCamera, box) -> SimpleNamespace:
    return SimpleNamespace(gaussians=g, meta={
        "camera": {"viewmat": cam.viewmat.tolist(), "K": cam.K.tolist(), "image_size": [S, S]},
        "input": {"crop_box": list(box), "original_size": [W, H], "source": None}})


def test_mask_overlay_paints_where_the_masks_disagree():
    """scripts/mask_overlay.py: blue where only the pipeline's mask calls a pixel person,
    red where only the independent one does, the photo unchanged beside it; the shares
    counted; a held-out photo refused unless asked for."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "mask_overlay.py"
    spec = importlib.util.spec_from_file_location("mask_overlay", path)
    mo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mo)
    rgb = np.full((4, 5, 3), 0.5, np.float32)
    pipeline = np.zeros((4, 5), np.float32)
    independent = np.zeros((4, 5), np.float32)
    pipeline[0, :2] = 1.0  # pipeline only at (0, 0), both at (0, 1) ...
    independent[0, 1:3] = 0.9  # ... independent only at (0, 2)
    pipeline[3, 4] = 0.7  # pipeline only at (3, 4) too
    pic, shares = mo.disagreement(rgb, pipeline, independent)
    assert pic.shape == (4, 10, 3) and pic.dtype == np.uint8
    assert (pic[:, :5] == 128).all()  # the photo as it is
    assert tuple(pic[0, 5 + 2]) == (255, 0, 0)
    assert tuple(pic[0, 5]) == tuple(pic[3, 5 + 4]) == (0, 0, 255)
    assert tuple(pic[0, 5 + 1]) == tuple(pic[1, 5 + 1]) == (128, 128, 128)  # dimmed grey
    assert shares == {"pipeline_only": 2 / 20, "independent_only": 1 / 20}
    with pytest.raises(ValueError, match="differ"):
        mo.disagreement(rgb, pipeline[:3], independent)
    with pytest.raises(SystemExit):
        mo.main(["--cases", "walk"])  # held out
