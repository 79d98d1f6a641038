"""Scan datasets (THuman2.0, 2K2K, Twindom layouts) as training samples: the same sample
dict as :class:`humansplat.train.dataset.SyntheticHumans`, so the same trainer trains the
paper's setting on real scans.

A scan is a textured mesh (OBJ + MTL + texture image, or a mesh with vertex colours) plus a
fitted SMPL / SMPL-X body. The body model is :class:`humansplat.prior.body.SMPLBody`, from
the user's licensed SMPL files (``smpl=`` a file/folder/Hub id, or ``$HUMANSPLAT_SMPL_PATH``).

Layouts read (``layout=``); ``<id>`` is any folder name:

- ``thuman2``: ``ROOT/{data,scans,THuman2.0_Release}/<id>/<id>.obj`` (+ ``material0.mtl`` and
  its texture) and the fits in ``ROOT/{smplx,smpl,THuman2.0_smplx,THuman2.0_smpl}/<id>/``
  ``{smplx_param,smpl_param,param}.{pkl,npz,npy,json}``.
- ``2k2k``: ``ROOT/{train,test}/<id>/`` holding the mesh (``.obj``/``.ply``) and the fit
  (``{smpl,smplx,smpl_param,smplx_param,param}.*``); the folder is the split.
- ``twindom``: ``ROOT/<id>/`` holding the mesh and the fit, or the fits in
  ``ROOT/smpl/<id>.{pkl,npz,npy,json}``.

Fit files (ICON's convention for THuman2.0): ``betas``, ``global_orient`` [3],
``body_pose`` [63 (SMPL-X: 21 joints) | 69 (SMPL: 23)] or ``pose`` [72], ``transl`` [3]
(optional), ``scale`` (optional, default 1) and ``translation`` [3] (optional): the scan is
``scale * smpl(...) + translation`` where ``smpl(...)`` is the body model's output including
``transl`` (smplx places the pelvis at its rest position + transl). SMPL-X fits are read
with SMPL: the 21 shared body joints are kept (the hands stay at rest) and the betas are
used as they are, an approximation a note in the sample's meta records.

Scans are assumed metric, +y up. Each sample: the scan turned by a random yaw (seeded per
subject, mostly within +-45 deg), placed like a preprocessed photo (as the synthetic
subjects), rendered unlit (scan textures carry their lighting) with the same cameras, part
labels from the nearest fitted-body vertex, and the model inputs built from the fit with the
same fitting noise. Rendered samples are cached as ``.npz`` (``cache_dir``, default
``ROOT/.humansplat_cache/<layout>``), so each scan renders once.
"""

from __future__ import annotations

import json
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .dataset import (LEVELS, SynthDataConfig, build_cycle_cameras, decode_sample, fit_noise,
                      model_inputs, pack_sample, pick_targets)

__all__ = ["LAYOUTS", "ScanRecord", "ScanMesh", "find_scans", "load_scan", "load_fit_params",
           "scan_body_params", "render_scan", "scan_sample", "ScanDataset"]

LAYOUTS = ("thuman2", "2k2k", "twindom")
_MESH_EXT = (".obj", ".ply")
_FIT_EXT = (".pkl", ".npz", ".npy", ".json")
_FIT_STEMS = ("smplx_param", "smpl_param", "param", "smplx", "smpl")


@dataclass
class ScanRecord:
    """One scan on disk: id, mesh file, fit file (None when not found), split folder."""

    id: str
    mesh: Path
    fit: Path | None
    split: str | None = None


def _find_fit(folder: Path) -> Path | None:
    for stem in _FIT_STEMS:
        for ext in _FIT_EXT:
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def _find_mesh(folder: Path, prefer: str | None = None) -> Path | None:
    if prefer is not None:
        for ext in _MESH_EXT:
            if (folder / f"{prefer}{ext}").is_file():
                return folder / f"{prefer}{ext}"
    meshes = sorted(p for p in folder.iterdir() if p.suffix.lower() in _MESH_EXT)
    return meshes[0] if meshes else None


def find_scans(root, layout: str = "thuman2") -> list[ScanRecord]:
    """The scans under ``root`` in ``layout`` (module docs), sorted by id."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"scan folder not found: {root}")
    out: list[ScanRecord] = []
    if layout == "thuman2":
        scans = next((root / d for d in ("data", "scans", "THuman2.0_Release")
                      if (root / d).is_dir()), root)
        fits = [root / d for d in ("smplx", "smpl", "THuman2.0_smplx", "THuman2.0_smpl")
                if (root / d).is_dir()]
        for d in sorted(p for p in scans.iterdir() if p.is_dir() and not p.name.startswith(".")):
            mesh = _find_mesh(d, d.name)
            if mesh is None:
                continue
            fit = next((f for f in (_find_fit(fd / d.name) for fd in fits
                                    if (fd / d.name).is_dir()) if f is not None), None)
            out.append(ScanRecord(d.name, mesh, fit or _find_fit(d)))
    elif layout == "2k2k":
        for split in ("train", "test"):
            sd = root / split
            if not sd.is_dir():
                continue
            for d in sorted(p for p in sd.iterdir() if p.is_dir()):
                mesh = _find_mesh(d, d.name)
                if mesh is not None:
                    out.append(ScanRecord(d.name, mesh, _find_fit(d), split))
    else:
        fits = root / "smpl"
        for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "smpl"
                        and not p.name.startswith(".")):
            mesh = _find_mesh(d, d.name)
            if mesh is None:
                continue
            fit = _find_fit(d)
            if fit is None and fits.is_dir():
                fit = next((fits / f"{d.name}{e}" for e in _FIT_EXT
                            if (fits / f"{d.name}{e}").is_file()), None)
            out.append(ScanRecord(d.name, mesh, fit))
    return out


# ----------------------------------------------------------------------------------------
# meshes and fits
# ----------------------------------------------------------------------------------------
@dataclass
class ScanMesh:
    """vertices [N,3] (scan frame, metres), faces [F,3] int64, and either uv [N,2] with
    texture [3,H,W] float in [0,1] (OBJ convention: v = 0 at the image's bottom) or
    colors [N,3] in [0,1]; neither: plain grey."""

    vertices: Tensor
    faces: Tensor
    uv: Tensor | None = None
    texture: Tensor | None = None
    colors: Tensor | None = None


def load_scan(path) -> ScanMesh:
    """Read a textured OBJ (its MTL and texture) or a vertex-coloured OBJ/PLY with trimesh."""
    import trimesh

    m = trimesh.load(str(path), force="mesh", process=False, maintain_order=True)
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise ValueError(f"{path}: no triangle mesh found")
    v = torch.as_tensor(np.asarray(m.vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(m.faces), dtype=torch.long)
    vis = m.visual
    if isinstance(vis, trimesh.visual.TextureVisuals) and vis.uv is not None:
        img = getattr(vis.material, "image", None)
        if img is None and hasattr(vis.material, "baseColorTexture"):
            img = vis.material.baseColorTexture
        if img is not None:
            tex = np.asarray(img.convert("RGB"), np.float32) / 255.0
            return ScanMesh(v, f, torch.as_tensor(np.asarray(vis.uv), dtype=torch.float32),
                            torch.as_tensor(tex).permute(2, 0, 1).contiguous())
    if isinstance(vis, trimesh.visual.ColorVisuals) and vis.kind == "vertex":
        c = np.asarray(vis.vertex_colors)[:, :3].astype(np.float32) / 255.0
        return ScanMesh(v, f, colors=torch.as_tensor(c))
    return ScanMesh(v, f)


def load_fit_params(path) -> dict[str, np.ndarray]:
    """A fit file (.pkl/.npz/.npy/.json) as a dict of float64 arrays."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".pkl":
        with open(path, "rb") as fh:
            raw = pickle.load(fh, encoding="latin1")
    elif ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    elif ext == ".npy":
        raw = np.load(path, allow_pickle=True).item()
    elif ext == ".json":
        raw = json.loads(path.read_text())
    else:
        raise ValueError(f"unknown fit file type: {path}")
    out = {}
    for k, v in dict(raw).items():
        try:
            out[k] = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v,
                                np.float64)
        except (TypeError, ValueError):
            continue  # strings (gender) and the like
    return out


def scan_body_params(model, fit: dict[str, np.ndarray]) -> tuple[dict, list[str]]:
    """The fitted body in the scan frame as forward arguments of ``model`` (an SMPLBody):
    (smpl_pose [24,3] (root = global orientation), shape [S], orient [3,3], transl [3],
    scale) as a dict, and notes on approximations."""
    from ..geometry import axis_angle_to_matrix
    from ..prior.parts import NUM_PARTS

    notes = []
    g = lambda k, d=None: fit[k].reshape(-1) if k in fit else d  # noqa: E731
    if "pose" in fit and g("pose").size == 72:
        full = g("pose")
        orient, body = full[:3], full[3:]
    else:
        orient = g("global_orient", np.zeros(3))
        body = g("body_pose", np.zeros(69))
    if body.size == 63:
        notes.append("SMPL-X body pose read with SMPL: 21 shared joints, hands at rest")
        body = np.concatenate([body, np.zeros(6)])
    if body.size != 69:
        raise ValueError(f"body_pose must hold 63 (SMPL-X) or 69 (SMPL) values, got {body.size}")
    smpl_pose = np.concatenate([orient, body]).reshape(NUM_PARTS, 3)
    betas = g("betas", np.zeros(model.num_shape))
    if betas.size != model.num_shape:
        notes.append(f"{betas.size} betas fitted, the body model takes {model.num_shape}")
        betas = np.resize(np.concatenate([betas, np.zeros(model.num_shape)])[:model.num_shape],
                          model.num_shape)
    if "expression" in fit or "jaw_pose" in fit:
        notes.append("SMPL-X betas used with SMPL (approximate shape)")
    s = float(g("scale", np.ones(1))[0])
    translation = g("translation", np.zeros(3))
    transl = g("transl", np.zeros(3))
    # smplx output = ours (root at 0) + rest pelvis j0 + transl; scan = s * that + translation
    smpl = getattr(model, "smpl", None)
    if smpl is not None:
        from smplx.lbs import blend_shapes

        with torch.no_grad():
            b = torch.as_tensor(betas, dtype=smpl.v_template.dtype)[None]
            v_shaped = smpl.v_template[None] + blend_shapes(b, smpl.shapedirs)
            j0 = (smpl.J_regressor[0] @ v_shaped[0]).double().numpy()
    else:
        j0 = np.zeros(3)
    root = s * (j0 + transl) + translation
    R = axis_angle_to_matrix(torch.as_tensor(orient, dtype=torch.float64)).numpy()
    return {"smpl_pose": smpl_pose, "shape": betas, "orient": R, "transl": root,
            "scale": s}, notes


# ----------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------
@torch.no_grad()
def render_scan(scan: ScanMesh, labels: Tensor, cameras, resolution: int | None = None, *,
                supersample: int = 2, background: float = 1.0):
    """Render a (placed) scan into ``cameras``: RenderedViews (rgb on white, coverage,
    parts from the per-vertex ``labels`` [N]), unlit: colours straight from the texture."""
    from ..prior.parts import NUM_PARTS
    from ..synth.projection import rasterize_mesh
    from ..data.subject_render import RenderedViews

    R = int(resolution or cameras.width)
    cams = cameras.to("cpu", torch.float32).resized(R, R)
    ss = int(supersample)
    Rs = R * ss
    faces = scan.faces
    rgbs, alphas, parts = [], [], []
    for c in range(len(cams)):
        K = cams.Ks[c].clone()
        K[:2] *= ss
        r = rasterize_mesh(scan.vertices, faces, cams.viewmats[c], K, Rs, Rs)
        fid = r.face_ids.reshape(-1)
        cov = fid >= 0
        col = torch.full((Rs * Rs, 3), float(background))
        lab = torch.full((Rs * Rs,), -1, dtype=torch.long)
        if bool(cov.any()):
            corners = faces[fid[cov]]
            bary = r.bary.reshape(-1, 3)[cov]
            w = bary[..., None]
            if scan.texture is not None:
                uv = (w * scan.uv[corners]).sum(1)
                grid = torch.stack([uv[:, 0] * 2 - 1, (1 - uv[:, 1]) * 2 - 1], -1)
                col[cov] = F.grid_sample(scan.texture[None], grid[None, None], mode="bilinear",
                                         padding_mode="border", align_corners=False)[0, :, 0].T
            elif scan.colors is not None:
                col[cov] = (w * scan.colors[corners]).sum(1)
            else:
                col[cov] = 0.6
            lab[cov] = labels[corners.gather(1, bary.argmax(-1, keepdim=True))[:, 0]]
        img = F.avg_pool2d(col.T.reshape(1, 3, Rs, Rs), ss)[0]
        a = F.avg_pool2d(cov.float().reshape(1, 1, Rs, Rs), ss)[0]
        blocks = lab.reshape(R, ss, R, ss).permute(0, 2, 1, 3).reshape(R * R, ss * ss)
        counts = torch.zeros(R * R, NUM_PARTS + 1).scatter_add_(1, blocks + 1,
                                                               torch.ones(R * R, ss * ss))
        counts[:, 0] = 0
        p = counts.argmax(1) - 1
        p = torch.where(a.reshape(-1) >= 0.5, p, torch.full_like(p, -1))
        rgbs.append(img.clamp(0, 1))
        alphas.append(a)
        parts.append(p.reshape(R, R))
    return RenderedViews(torch.stack(rgbs), torch.stack(alphas), torch.stack(parts))


@dataclass
class _PlacedScan:
    mesh: object  # a SubjectMesh-like view for build_cycle_cameras: .vertices, .body
    scan: ScanMesh
    labels: Tensor


def scan_sample(record: ScanRecord, model, cfg: SynthDataConfig, *, index: int = 0,
                split: str = "train", seed: int = 0) -> dict[str, np.ndarray]:
    """Render one scan into the stored sample arrays (same fields as the synthetic data)."""
    from scipy.spatial import cKDTree

    from ..geometry import axis_angle_to_matrix
    from ..prior.fit import input_camera
    from ..data.synthetic_humans import fit_placement

    if record.fit is None:
        raise FileNotFoundError(f"scan {record.id}: no fitted SMPL/SMPL-X parameters found "
                                f"next to {record.mesh}")
    sseed = zlib.crc32(f"{seed}:{record.id}".encode())
    rng = np.random.default_rng(sseed)
    scan = load_scan(record.mesh)
    body, notes = scan_body_params(model, load_fit_params(record.fit))
    # turn and place: x_world = t + s * R_yaw (x_scan - root)
    yaw = rng.normal(0, 22.0) if rng.random() < 0.85 else rng.uniform(-180, 180)
    yaw = float(np.clip(yaw, -45, 45)) if abs(yaw) < 60 else float(yaw)
    R_yaw = axis_angle_to_matrix(torch.tensor([0.0, math.radians(yaw), 0.0],
                                              dtype=torch.float64))
    root = torch.as_tensor(body["transl"], dtype=torch.float64)
    centred = (scan.vertices.double() - root) @ R_yaw.T
    s, t = fit_placement(centred, cfg.input_size)
    verts = (torch.as_tensor(t) + s * centred).float()
    placed = ScanMesh(verts, scan.faces, scan.uv, scan.texture, scan.colors)
    orient = R_yaw @ torch.as_tensor(body["orient"])
    dt = model.dtype
    gt = {"body_pose": model.body_pose_from_smpl(
              torch.as_tensor(body["smpl_pose"], dtype=dt)[None]),
          "shape": torch.as_tensor(body["shape"], dtype=dt)[None],
          "global_orient": orient.to(dt)[None], "transl": torch.as_tensor(t, dtype=dt)[None],
          "scale": torch.tensor([s * body["scale"]], dtype=dt)}
    with torch.no_grad():
        gt_out = model(**gt)
    # part of each scan vertex: the nearest fitted-body vertex's
    _, nn = cKDTree(gt_out.vertices[0].double().numpy()).query(verts.double().numpy())
    labels = model.part_labels.cpu()[torch.as_tensor(nn)]
    S, Rres = cfg.input_size, cfg.resolution
    cam = input_camera(S, S)
    photo = render_scan(placed, labels, cam, S, supersample=cfg.supersample)
    image, mask = photo.rgb[0], photo.alpha[0]
    view = type("PlacedScanMesh", (), {"vertices": verts, "body": gt_out})()
    tcams, levels = build_cycle_cameras(view, model, cfg.views_for(split),
                                        rng if split == "train" else None, Rres,
                                        cfg.elevation_jitter, cfg.eval_elevation)
    targets = render_scan(placed, labels, tcams, Rres, supersample=cfg.supersample)
    fit_record: dict = {}
    params = fit_noise(model, body["smpl_pose"], body["shape"], orient, t, s * body["scale"],
                       rng, cfg, fit_record)
    mi = model_inputs(model, image, mask, cam, params, cfg)
    meta = {"name": f"{split}-{record.id}", "split": split, "index": index, "scan": record.id,
            "mesh": str(record.mesh), "fit_file": str(record.fit), "yaw_deg": yaw,
            "scale": s, "transl": np.round(t, 5).tolist(), "notes": notes, "fit": fit_record,
            "levels": list(LEVELS), "body_model": model.name}
    return pack_sample(mi, image, mask, targets, tcams, levels, meta)


# ----------------------------------------------------------------------------------------
# the dataset
# ----------------------------------------------------------------------------------------
def _split_of(record: ScanRecord, split_ids: dict[str, set[str]] | None) -> str:
    if split_ids is not None:
        for name, ids in split_ids.items():
            if record.id in ids:
                return name
        return "unused"
    if record.split is not None:
        return record.split
    # no split given: a fixed 1-in-10 held-out test set by a hash of the id
    return "test" if zlib.crc32(record.id.encode()) % 10 == 0 else "train"


class ScanDataset(torch.utils.data.Dataset):
    """Scans of one split as training samples (the :class:`SyntheticHumans` sample dict).

    root/layout: the data (module docs); split: "train" or "test" ("hard" reads the test
    split): from ``ROOT/{split}.txt`` (one id per line) when present, else the layout's
    split folders (2K2K), else a fixed hash of the id (1 in 10 held out); targets: views
    per level picked at random (None: all); smpl: the SMPL model source (SMPLBody's
    ``source``) or a ready BodyModel; cache_dir: where rendered samples are kept."""

    def __init__(self, root, layout: str = "thuman2", split: str = "train",
                 targets: tuple[int, int, int] | None = (4, 2, 2), *, smpl=None,
                 cache_dir=None, cfg: SynthDataConfig | None = None, seed: int = 0,
                 gender: str = "neutral"):
        self.root = Path(root)
        self.layout = layout
        self.split = "test" if split == "hard" else split
        self.targets = None if targets is None else tuple(int(t) for t in targets)
        self.cfg = cfg or SynthDataConfig()
        self.seed = int(seed)
        split_ids = None
        lists = {n: self.root / f"{n}.txt" for n in ("train", "test")}
        if any(p.is_file() for p in lists.values()):
            split_ids = {n: {ln.strip() for ln in p.read_text().splitlines() if ln.strip()}
                         for n, p in lists.items() if p.is_file()}
        self.records = [r for r in find_scans(self.root, layout)
                        if _split_of(r, split_ids) == self.split]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else \
            self.root / ".humansplat_cache" / layout
        self._smpl = smpl
        self._gender = gender
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from ..prior.body import BodyModel, SMPLBody

            self._model = self._smpl if isinstance(self._smpl, BodyModel) else \
                SMPLBody(self._smpl, gender=self._gender)
        return self._model

    def __len__(self) -> int:
        return len(self.records)

    def _cache_path(self, rec: ScanRecord) -> Path:
        c = self.cfg
        key = zlib.crc32(json.dumps([c.to_json(), self.seed, str(rec.mesh)]).encode())
        return self.cache_dir / self.split / f"{rec.id}-{key:08x}.npz"

    def raw(self, i: int) -> dict[str, np.ndarray]:
        """The stored arrays of sample ``i`` (rendered and cached on first use)."""
        from ..io.paths import atomic_path

        rec = self.records[i]
        path = self._cache_path(rec)
        if path.is_file():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        with torch.no_grad():
            arrays = scan_sample(rec, self.model, self.cfg, index=i, split=self.split,
                                 seed=self.seed)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        return arrays

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        sample = decode_sample(self.raw(i % len(self)))
        if self.targets is not None:
            sample = pick_targets(sample, self.targets)
        return sample
