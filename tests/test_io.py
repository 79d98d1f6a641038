"""humansplat.io: splat files against plyfile and independent math, images, video, OBJ.

Tolerances (stated once):
- .ply round trip: float32 storage; opacity goes through logit/sigmoid and scale through
  log/exp, so 1e-6 absolute on opacities/colours/SH and 1e-5 relative on scales.
- .splat: positions and scales are float32 (exact); colour and alpha are rounded to 1/255
  (error <= 0.5/255); rotations are rounded to 1/128 per component (error <= 1/128 before
  renormalising), so the decoded unit quaternion is within 0.016 (L2, sign-aligned).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import imageio.v2 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from humansplat.errors import InvalidImageError
from humansplat.gaussians import SH_C0, Gaussians
from humansplat.io import images as imgs
from humansplat.io import mesh, video
from humansplat.io.splat_files import (N_REST, PLY_PROPERTIES, load_ply, load_splat, save_ply,
                                       save_splat)

INRIA_ORDER = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
               + [f"f_rest_{i}" for i in range(45)]
               + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def make_gaussians(n=200, kind="rgb", labels=True, seed=0) -> Gaussians:
    """kind: 'rgb' or 'shD' for SH degree D."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    kw = {}
    if kind == "rgb":
        kw["colors"] = r(n, 3)
    else:
        d = int(kind[2:])
        kw["sh"] = torch.randn(n, (d + 1) ** 2, 3, generator=gen) * 0.4
    return Gaussians(
        means=torch.randn(n, 3, generator=gen) * torch.tensor([0.3, 0.8, 0.2]),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
        scales=0.001 + 0.05 * r(n, 3), opacities=0.02 + 0.96 * r(n),
        labels=torch.randint(0, 24, (n,), generator=gen) if labels else None, **kw)


def assert_same(a: Gaussians, b: Gaussians, atol=1e-6):
    torch.testing.assert_close(b.means, a.means, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.scales, a.scales, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(b.opacities, a.opacities, atol=atol, rtol=0)
    torch.testing.assert_close(b.quats, a.quats, atol=1e-6, rtol=0)
    assert (a.colors is None) == (b.colors is None) and (a.sh is None) == (b.sh is None)
    if a.colors is not None:
        torch.testing.assert_close(b.colors, a.colors, atol=atol, rtol=0)
    else:
        assert b.sh.shape == a.sh.shape
        torch.testing.assert_close(b.sh, a.sh, atol=atol, rtol=0)
    if a.labels is None:
        assert b.labels is None
    else:
        assert b.labels.dtype == torch.int64 and torch.equal(b.labels, a.labels)


# ---------------------------------------------------------------------------------------------
# .ply
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, extra", [(False, None), (True, None),
                                           (True, {"conf": np.linspace(0, 1, 50),
                                                   "view": np.arange(50)})])
def test_ply_header_is_inria_layout(tmp_path, labels, extra):
    g = make_gaussians(50, "sh1", labels=labels)
    save_ply(g, tmp_path / "a.ply", extra=extra)
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert [e.name for e in ply.elements] == ["vertex"]
    assert ply.header.splitlines()[1] == "format binary_little_endian 1.0"
    props = ply["vertex"].properties
    names = [p.name for p in props]
    expected = INRIA_ORDER + (["part"] if labels else []) + list(extra or {})
    assert names == expected and tuple(INRIA_ORDER) == PLY_PROPERTIES
    types = {p.name: p.val_dtype for p in props}
    assert all(np.dtype(types[k]) == np.dtype("<f4") for k in INRIA_ORDER)
    # Gradio's splat loader reads `float` and `int` properties only, and finds the vertex
    # count and properties in the first 10 KB with single-space-separated header lines.
    assert {str(p).split()[1] for p in props} <= {"float", "int"}
    raw = (tmp_path / "a.ply").read_bytes()
    header = raw[: raw.index(b"end_header\n")].decode()
    assert len(header) < 10_240 and "\nelement vertex 50\n" in header
    assert all(len(ln.split(" ")) == 3 for ln in header.splitlines() if ln.startswith("property"))
    v = ply["vertex"].data
    assert len(v) == 50
    for k in ("nx", "ny", "nz"):
        assert not v[k].any()
    if labels:
        assert np.array_equal(v["part"], g.labels.numpy())
    if extra:
        np.testing.assert_allclose(v["conf"], extra["conf"], atol=1e-7)
        assert np.array_equal(v["view"], extra["view"])


def test_ply_storage_space(tmp_path):
    """Raw values: logit opacity, log scale, w-first rotation, DC from rgb, zero f_rest."""
    g = make_gaussians(40, "rgb")
    save_ply(g, tmp_path / "a.ply")
    v = PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    op = g.opacities.double().numpy()
    np.testing.assert_allclose(v["opacity"], np.log(op / (1 - op)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v["scale_1"], np.log(g.scales[:, 1].numpy()), rtol=1e-6)
    np.testing.assert_allclose(v["rot_0"], g.quats[:, 0].numpy(), atol=1e-7)  # w first
    np.testing.assert_allclose(0.5 + 0.28209479 * v["f_dc_2"], g.colors[:, 2].numpy(),
                               atol=1e-6)
    assert not any(v[f"f_rest_{i}"].any() for i in range(N_REST))


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_ply_f_rest_is_channel_major(tmp_path, degree):
    g = make_gaussians(30, f"sh{degree}")
    save_ply(g, tmp_path / "a.ply")
    v = PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    k = (degree + 1) ** 2 - 1
    for c in range(3):
        for j in range(15):
            want = g.sh[:, 1 + j, c].numpy() if j < k else np.zeros(30)
            np.testing.assert_array_equal(v[f"f_rest_{c * 15 + j}"], want.astype(np.float32))


@pytest.mark.parametrize("kind", ["rgb", "sh0", "sh1", "sh2", "sh3"])
@pytest.mark.parametrize("y_down", [False, True])
@pytest.mark.parametrize("labels", [True, False])
def test_ply_round_trip(tmp_path, kind, y_down, labels):
    g = make_gaussians(120, kind, labels=labels)
    save_ply(g, tmp_path / "a.ply", y_down=y_down)
    assert_same(g, load_ply(tmp_path / "a.ply"))  # `up` comment undoes y_down by itself
    assert_same(g, load_ply(tmp_path / "a.ply", y_down=y_down))


def _sh_color(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    from gsplat.cuda._torch_impl import _spherical_harmonics  # independent SH evaluation
    deg = int(round(sh.shape[1] ** 0.5)) - 1
    return _spherical_harmonics(deg, dirs, sh)


@pytest.mark.parametrize("kind", ["rgb", "sh3"])
def test_y_down_file_is_rotated_scene(tmp_path, kind):
    g = make_gaussians(64, kind)
    save_ply(g, tmp_path / "down.ply", y_down=True)
    raw = load_ply(tmp_path / "down.ply", y_down=False)  # the file's own world
    Rx = np.diag([1.0, -1.0, -1.0])  # 180 deg about x
    np.testing.assert_allclose(raw.means.numpy(), g.means.numpy() @ Rx.T, atol=1e-7)
    # Orientation: R(file quat) == Rx @ R(q), checked with scipy (scalar-last quats).
    R_file = Rotation.from_quat(raw.quats.numpy()[:, [1, 2, 3, 0]]).as_matrix()
    R_orig = Rotation.from_quat(g.quats.numpy()[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(R_file, Rx @ R_orig, atol=1e-5)
    np.testing.assert_allclose(raw.scales.numpy(), g.scales.numpy(), rtol=1e-5)
    if kind == "sh3":
        # View-dependent colour seen along d in our world == along Rx d in the file's world.
        d = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator()
                                                      .manual_seed(1)), dim=-1)
        d_file = d * torch.tensor([1.0, -1.0, -1.0])
        torch.testing.assert_close(_sh_color(raw.sh, d_file), _sh_color(g.sh, d),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_foreign_ply_degree_from_f_rest_count(tmp_path, degree):
    """A file from another tool (no humansplat comment, only the f_rest its degree needs)."""
    n, k = 20, (degree + 1) ** 2 - 1
    rng = np.random.default_rng(0)
    fields = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in
                                                              range(3 * k)]
    fields += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.empty(n, [(f, "<f4") for f in fields])
    for f in fields:
        v[f] = rng.normal(size=n)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "f.ply"))
    g = load_ply(tmp_path / "f.ply")
    if degree == 0:
        assert g.colors is not None and g.sh is None
        np.testing.assert_allclose(g.colors.numpy(), np.clip(
            0.5 + SH_C0 * np.stack([v["f_dc_0"], v["f_dc_1"], v["f_dc_2"]], 1), 0, 1), atol=1e-6)
    else:
        assert g.sh_degree == degree
        np.testing.assert_allclose(g.sh[:, 1:, 1].numpy(), np.stack(
            [v[f"f_rest_{k + j}"] for j in range(k)], 1), atol=1e-7)  # G block of channel-major
    np.testing.assert_allclose(g.opacities.numpy(), 1 / (1 + np.exp(-v["opacity"])), atol=1e-6)
    np.testing.assert_allclose(torch.linalg.norm(g.quats, dim=1).numpy(), 1.0, atol=1e-6)


def _write_ply(path, fields, n=4, fill=0.5):
    v = np.full(n, fill, [(f, "<f4") for f in fields])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(path))


def test_ply_errors(tmp_path):
    # Not a Gaussian PLY: a plain point cloud; the message names what is missing.
    _write_ply(tmp_path / "pc.ply", ["x", "y", "z", "red"])
    with pytest.raises(ValueError, match="missing properties f_dc_0, f_dc_1, f_dc_2, opacity"):
        load_ply(tmp_path / "pc.ply")
    # NaN in the file.
    fields = [p for p in INRIA_ORDER]
    _write_ply(tmp_path / "nan.ply", fields, fill=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        load_ply(tmp_path / "nan.ply")
    # Not a PLY at all / missing file.
    (tmp_path / "t.ply").write_text("hello")
    with pytest.raises(ValueError, match="not a readable PLY"):
        load_ply(tmp_path / "t.ply")
    with pytest.raises(FileNotFoundError, match="nope.ply"):
        load_ply(tmp_path / "nope.ply")
    # NaN in the Gaussians: refused, and no file is left behind.
    g = make_gaussians(10)
    g.means[3, 1] = float("nan")
    with pytest.raises(ValueError, match="means contains NaN"):
        save_ply(g, tmp_path / "out.ply")
    with pytest.raises(ValueError, match="NaN"):
        save_splat(g, tmp_path / "out.splat")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))
    with pytest.raises(ValueError, match="no Gaussians to write"):
        save_splat(make_gaussians(10)[:0], tmp_path / "empty.splat")
    with pytest.raises(ValueError, match="clashes"):
        save_ply(make_gaussians(10), tmp_path / "x.ply", extra={"opacity": np.zeros(10)})
    with pytest.raises(ValueError, match=r"extra\['c'\] must have shape \[10\]"):
        save_ply(make_gaussians(10), tmp_path / "x.ply", extra={"c": np.zeros(9)})


def test_ply_extreme_values_stay_finite(tmp_path):
    g = make_gaussians(4, "rgb")
    g.opacities[:] = torch.tensor([0.0, 1.0, 0.5, 1.0])
    g.scales[0] = 0.0
    save_ply(g, tmp_path / "e.ply")
    h = load_ply(tmp_path / "e.ply")
    torch.testing.assert_close(h.opacities, g.opacities, atol=1e-6, rtol=0)
    assert torch.isfinite(h.scales).all() and (h.scales[0] < 1e-20).all()


# ---------------------------------------------------------------------------------------------
# .splat
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["rgb", "sh2"])
@pytest.mark.parametrize("y_down", [False, True])
def test_splat_round_trip_within_quantisation(tmp_path, kind, y_down):
    n = 300
    g = make_gaussians(n, kind)
    save_splat(g, tmp_path / "a.splat", y_down=y_down)
    assert (tmp_path / "a.splat").stat().st_size == 32 * n
    h = load_splat(tmp_path / "a.splat", y_down=y_down)
    key = (g.scales.double().prod(1) * g.opacities.double()).numpy()
    order = torch.from_numpy(np.argsort(-key, kind="stable"))
    s = g[order]
    assert torch.equal(h.means, s.means) and torch.equal(h.scales, s.scales)
    torch.testing.assert_close(h.colors, s.rgb, atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(h.opacities, s.opacities, atol=0.5 / 255 + 1e-6, rtol=0)
    sign = torch.sign((h.quats * s.quats).sum(1, keepdim=True))
    assert (h.quats * sign - s.quats).norm(dim=1).max() <= 0.016
    assert h.labels is None and h.sh is None


def test_splat_sort_and_raw_layout(tmp_path):
    g = make_gaussians(100, "rgb")
    save_splat(g, tmp_path / "a.splat")
    raw = np.fromfile(tmp_path / "a.splat", np.uint8).reshape(-1, 32)
    pos = raw[:, :12].copy().view("<f4")
    scale = raw[:, 12:24].copy().view("<f4")
    alpha = raw[:, 27].astype(np.float64) / 255
    # Descending by prod(scale) * alpha (up to alpha's 1/255 rounding).
    key = np.prod(scale.astype(np.float64), 1) * alpha
    vol = np.prod(scale.astype(np.float64), 1)
    assert np.all(key[:-1] >= key[1:] - (vol[:-1] + vol[1:]) * (0.5 / 255) - 1e-15)
    # Rotation bytes: w first, q*128+128.
    i = int(np.argmin(np.abs(pos[:, 0] - g.means[0, 0].item())))
    np.testing.assert_allclose((raw[i, 28:32].astype(float) - 128) / 128, g.quats[0].numpy(),
                               atol=0.5 / 128 + 1e-6)


def test_splat_errors(tmp_path):
    (tmp_path / "bad.splat").write_bytes(b"x" * 33)
    with pytest.raises(ValueError, match="multiple of 32"):
        load_splat(tmp_path / "bad.splat")
    (tmp_path / "empty.splat").write_bytes(b"")
    with pytest.raises(ValueError, match="multiple of 32"):
        load_splat(tmp_path / "empty.splat")


def test_ply_write_speed_smoke(tmp_path):
    """65,536 Gaussians (the paper's output size) write and read without per-row loops;
    timings are in benchmarks/io_bench.py, this only checks it completes."""
    g = make_gaussians(65536, "sh3")
    save_ply(g, tmp_path / "big.ply")
    assert len(load_ply(tmp_path / "big.ply")) == 65536


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

def _png_bytes(img: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, format=kw.pop("format", "PNG"), **kw)
    return b.getvalue()


def _ramp(w=96, h=80):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)


def test_exif_rotated_jpeg(tmp_path):
    # Stored 120x80 (landscape): left half red, right half blue. Orientation 6 = the viewer
    # rotates 90 deg clockwise, so the upright image is 80x120 with red on top.
    a = np.zeros((80, 120, 3), np.uint8)
    a[:, :60] = (255, 0, 0)
    a[:, 60:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    Image.fromarray(a).save(p, exif=exif.tobytes(), quality=95)
    im = imgs.load_image(p)
    assert im.exif_rotated and im.original_size == (120, 80) and im.size == (80, 120)
    assert im.rgb.shape == (120, 80, 3) and im.alpha is None and im.source == str(p)
    assert im.rgb[:50, :, 0].mean() > 200 and im.rgb[:50, :, 2].mean() < 50
    assert im.rgb[70:, :, 2].mean() > 200


def _gray16():
    v = (np.arange(80 * 96, dtype=np.uint32).reshape(80, 96) * 8).astype(np.uint16)
    return v


VALID = {
    "rgb_png": (lambda: _png_bytes(Image.fromarray(_ramp())), _ramp(), None),
    "rgba_real_alpha": (
        lambda: _png_bytes(Image.fromarray(np.dstack([_ramp(), np.tile(
            np.arange(96, dtype=np.uint8) * 2, (80, 1))]))),
        _ramp(), np.tile(np.arange(96, dtype=np.uint8) * 2, (80, 1))),
    "rgba_opaque": (lambda: _png_bytes(Image.fromarray(np.dstack(
        [_ramp(), np.full((80, 96), 255, np.uint8)]))), _ramp(), None),
    "grayscale": (lambda: _png_bytes(Image.fromarray(_ramp()[..., 0])),
                  np.repeat(_ramp()[..., :1], 3, 2), None),
    "la": (lambda: _png_bytes(Image.fromarray(_ramp()[..., :2], "LA")),
           np.repeat(_ramp()[..., :1], 3, 2), _ramp()[..., 1]),
    "palette": (lambda: _png_bytes(Image.fromarray(_ramp()).quantize(16)),
                lambda: np.asarray(Image.fromarray(_ramp()).quantize(16).convert("RGB")), None),
    "palette_transparency": (
        lambda: _png_bytes(Image.fromarray(_ramp()).quantize(16), transparency=0),
        lambda: np.asarray(Image.fromarray(_ramp()).quantize(16).convert("RGB")),
        lambda: np.where(np.asarray(Image.fromarray(_ramp()).quantize(16)) == 0, 0, 255)),
    "gray16_png": (lambda: _png_bytes(Image.fromarray(_gray16())),
                   np.repeat(np.rint(_gray16() / 257.0).astype(np.uint8)[..., None], 3, 2),
                   None),
    "cmyk_jpeg": (lambda: _png_bytes(Image.new("CMYK", (96, 80), (0, 255, 255, 0)),
                                     format="JPEG", quality=100),
                  np.tile(np.array([255, 0, 0], np.uint8), (80, 96, 1)), None),
    "array_hw": (lambda: _ramp()[..., 0], np.repeat(_ramp()[..., :1], 3, 2), None),
    "array_hw1": (lambda: _ramp()[..., :1], np.repeat(_ramp()[..., :1], 3, 2), None),
    "array_float": (lambda: _ramp().astype(np.float32) / 255, _ramp(), None),
    "array_uint16_rgba": (
        lambda: np.dstack([_ramp(), np.tile(np.arange(96, dtype=np.uint8) * 2, (80, 1))]
                          ).astype(np.uint16) * 257,
        _ramp(), np.tile(np.arange(96, dtype=np.uint8) * 2, (80, 1))),
    "pil_image": (lambda: Image.fromarray(_ramp()), _ramp(), None),
    "file_object": (lambda: io.BytesIO(_png_bytes(Image.fromarray(_ramp()))), _ramp(), None),
}


@pytest.mark.parametrize("name", list(VALID))
def test_load_image_valid(name):
    make, want_rgb, want_alpha = VALID[name]
    want_rgb = want_rgb() if callable(want_rgb) else want_rgb
    want_alpha = want_alpha() if callable(want_alpha) else want_alpha
    im = imgs.load_image(make())
    assert im.rgb.dtype == np.uint8 and im.rgb.shape == (80, 96, 3)
    tol = 2 if name == "cmyk_jpeg" else 0
    assert np.abs(im.rgb.astype(int) - want_rgb.astype(int)).max() <= tol
    if want_alpha is None:
        assert im.alpha is None
    else:
        assert im.alpha.dtype == np.uint8 and np.array_equal(im.alpha, want_alpha)
    assert im.original_size == (96, 80) and not im.exif_rotated


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with a tiny IDAT: cheap to build, refused
    before any decode."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "trunc.jpg"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(p, quality=90)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


INVALID = {
    "text_as_jpg": (lambda t: _write(t / "notes.jpg", b"not an image, just text"),
                    InvalidImageError, "not a recognised image"),
    "truncated_jpeg": (_truncated_jpeg, InvalidImageError, "corrupt or truncated"),
    "48mp_header": (lambda t: _png_header_only(8000, 6000), InvalidImageError,
                    r"8000x6000 \(48.0 megapixels\); the limit is 40"),
    "400mp_header_pil_bomb": (lambda t: _png_header_only(20000, 20000), InvalidImageError,
                              "megapixels"),
    "1x1": (lambda t: _png_bytes(Image.new("RGB", (1, 1))), InvalidImageError,
            "1x1, too small; its short side must be at least 64"),
    "63px_short_side": (lambda t: np.zeros((63, 500, 3), np.uint8), InvalidImageError,
                        "too small"),
    "missing_file": (lambda t: t / "missing.png", imgs.ImageNotFoundError,
                     "image file not found: .*missing.png"),
    "empty_file": (lambda t: _write(t / "e.png", b""), InvalidImageError,
                   "empty"),
    "empty_bytes": (lambda t: b"", InvalidImageError, "empty"),
    "float_out_of_range": (lambda t: np.full((64, 64, 3), 2.0), InvalidImageError,
                           r"must lie in \[0, 1\]"),
    "channels_first": (lambda t: np.zeros((3, 64, 64), np.uint8), InvalidImageError,
                       "channels-first"),
    "int32_array": (lambda t: np.zeros((64, 64, 3), np.int32), InvalidImageError,
                    "unsupported array dtype int32"),
    "wrong_type": (lambda t: 3.5, InvalidImageError, "got float"),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_load_image_refuses(tmp_path, name):
    make, exc, msg = INVALID[name]
    with pytest.raises(exc, match=msg):
        imgs.load_image(make(tmp_path))


def test_missing_file_is_also_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        imgs.load_image(tmp_path / "x.jpg")


def test_tensor_conversions():
    a = _ramp()
    t = imgs.to_tensor(a)
    assert t.shape == (3, 80, 96) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert np.array_equal(imgs.to_uint8(t), a)
    batch = imgs.to_tensor(np.stack([a, a]))
    assert batch.shape == (2, 3, 80, 96) and imgs.to_uint8(batch).shape == (2, 80, 96, 3)
    assert np.array_equal(imgs.to_uint8(torch.tensor([[[-1.0, 2.0]]])), [[[0], [255]]])
    with pytest.raises(ValueError, match="uint8"):
        imgs.to_tensor(a.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# video and grids
# ---------------------------------------------------------------------------------------------

def _read_frames(path) -> list[np.ndarray]:
    with iio.get_reader(str(path), format="FFMPEG") as r:
        return [f for f in r]


@pytest.mark.parametrize("w, h", [(64, 48), (65, 49)])
def test_write_video_decodes_back(tmp_path, w, h):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 200, 200)] * 3
    frames = (np.full((h, w, 3), c, np.uint8) for c in colors)  # a generator is fine
    p = video.write_video(frames, tmp_path / "v.mp4", fps=12)
    out = _read_frames(p)
    assert len(out) == len(colors)
    assert out[0].shape == (h + h % 2, w + w % 2, 3)  # padded to even, never resized
    for f, c in zip(out, colors):
        assert np.abs(f.reshape(-1, 3).mean(0) - np.array(c)).max() < 6
    assert list(tmp_path.iterdir()) == [tmp_path / "v.mp4"]


def test_write_video_errors(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        video.write_video([], tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="frame 1 is 32x32"):
        video.write_video([np.zeros((16, 16, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)],
                          tmp_path / "b.mp4")
    with pytest.raises(ValueError, match=r"uint8 \[H,W,3\]"):
        video.write_video([np.zeros((16, 16, 3), np.float32)], tmp_path / "c.mp4")
    with pytest.raises(ValueError, match="must end in"):
        video.write_video([np.zeros((16, 16, 3), np.uint8)], tmp_path / "d.gif")
    assert not list(tmp_path.iterdir())  # failed writes leave nothing behind


def _point_splat_rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width,
                           height, *, backgrounds=None, sh_degree=None, **_):
    """A stand-in renderer for testing the turntable plumbing while humansplat.render is
    not importable: each Gaussian paints its projected pixel (nearest wins)."""
    from humansplat.cameras import project_points
    C = viewmats.shape[0]
    rgb = colors if sh_degree is None else (0.5 + SH_C0 * colors[:, 0]).clamp(0, 1)
    out = backgrounds[:, None, None, :].expand(C, height, width, 3).clone()
    alpha = torch.zeros(C, height, width, 1)
    uv, z = project_points(means, viewmats, Ks)
    for c in range(C):
        px = uv[c].floor().long()
        ok = (z[c] > 0) & (px[:, 0] >= 0) & (px[:, 0] < width) & (px[:, 1] >= 0) & \
            (px[:, 1] < height)
        idx = torch.argsort(z[c][ok], descending=True)  # far first, near overwrites
        p = px[ok][idx]
        out[c, p[:, 1], p[:, 0]] = rgb[ok][idx]
        alpha[c, p[:, 1], p[:, 0]] = 1.0
    return out, alpha, {}



@pytest.mark.parametrize("renderer", ["point_stand_in", "humansplat.render"])
def test_orbit_video(tmp_path, monkeypatch, renderer):
    import sys
    import types
    if renderer == "point_stand_in":
        fake = types.ModuleType("humansplat.render")
        fake.rasterize = _point_splat_rasterize
        monkeypatch.setitem(sys.modules, "humansplat.render", fake)
    # A 1.7 m "person": a column of Gaussians, lifted off the origin (small: the CPU
    # renderer is slow on 2 shared cores).
    n = 800
    g = make_gaussians(n, "sh1", labels=False)
    g.means[:] = (torch.rand(n, 3) - 0.5) * torch.tensor([0.4, 1.7, 0.25]) + torch.tensor(
        [0.1, 0.9, 0.0])
    g.scales[:] = 0.015
    g.opacities[:] = 0.95
    calls = []
    p = video.save_orbit_video(g, tmp_path / "orbit.mp4", n_frames=6, size=48, chunk=4,
                               progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 6), (6, 6)]
    frames = _read_frames(p)
    assert len(frames) == 6 and frames[0].shape == (48, 48, 3)
    # The person fills the frame: its extent spans most of the height, none is clipped.
    for f in frames[::2]:
        fg = (f.astype(int).sum(-1) < 600)
        rows = np.flatnonzero(fg.any(1))
        assert rows[0] > 0 and rows[-1] < 47 and rows[-1] - rows[0] > 0.55 * 48


def test_orbit_framing_keeps_everything_in_view():
    from humansplat.cameras import project_points
    g = make_gaussians(2000, "rgb")
    target, radius = video.orbit_framing(g)
    cams = video.orbit_video_cameras(g, n_frames=8, size=128)
    uv, z = project_points(g.means[g.opacities >= 0.05], cams.viewmats, cams.Ks)
    inside = ((uv >= 0) & (uv < 128)).all(-1) & (z > 0)
    assert inside.float().mean() > 0.98  # the robust bounds drop at most ~1% outliers
    np.testing.assert_allclose(cams.centers[:, 1].numpy(), target[1], atol=1e-5)


def test_image_grid(tmp_path):
    ims = [np.full((10, 20, 3), i * 40, np.uint8) for i in range(5)]
    grid = video.image_grid(ims, ncols=3, padding=2, pad_value=255)
    assert grid.shape == (2 * 10 + 3 * 2, 3 * 20 + 4 * 2, 3)
    assert (grid[2:12, 24:44] == 40).all() and (grid[14:24, 24:44] == 160).all()
    assert (grid[14:24, 46:66] == 255).all()  # the empty cell
    p = video.save_image_grid(torch.rand(4, 3, 16, 16), tmp_path / "views.png", 2)
    assert Image.open(p).size == (32, 32)
    with pytest.raises(ValueError, match="share one size"):
        video.image_grid([ims[0], np.zeros((5, 5, 3), np.uint8)], 2)


# ---------------------------------------------------------------------------------------------
# OBJ
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_colors", [False, True])
def test_obj_read_by_trimesh(tmp_path, with_colors):
    import trimesh
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(50, 3)).astype(np.float32)
    faces = rng.integers(0, 50, size=(80, 3))
    cols = rng.random((50, 3)).astype(np.float32) if with_colors else None
    p = mesh.save_obj(tmp_path / "body.obj", torch.from_numpy(verts), faces, cols)
    t = trimesh.load(p, process=False, maintain_order=True)
    np.testing.assert_allclose(t.vertices, verts, atol=1e-6)
    assert np.array_equal(t.faces, faces)
    if with_colors:
        np.testing.assert_allclose(t.visual.vertex_colors[:, :3] / 255.0, cols, atol=1 / 255)
    back = mesh.load_obj(p)
    np.testing.assert_allclose(back.verts, verts, atol=1e-6)
    assert np.array_equal(back.faces, faces)
    assert (back.vertex_colors is None) == (not with_colors)
    if with_colors:
        np.testing.assert_allclose(back.vertex_colors, cols, atol=1e-4)


def test_load_obj_polygons_and_negative_indices(tmp_path):
    (tmp_path / "q.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\n"
                                    "f 1//1 2//1 3//1 4//1\nf -4 -3 -1\n")
    m = mesh.load_obj(tmp_path / "q.obj")
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 3]] and m.vertex_colors is None
    with pytest.raises(ValueError, match="face indices"):
        mesh.save_obj(tmp_path / "bad.obj", np.zeros((3, 3)), [[0, 1, 3]])
