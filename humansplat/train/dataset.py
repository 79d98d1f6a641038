"""Synthetic training data on disk: generation (sharded, resumable, with a progress bar) and
the :class:`SyntheticHumans` torch Dataset that reads it.

Each subject (:mod:`humansplat.data.synthetic_humans`) becomes one sample:

- the input "photo": the dressed subject rendered into ``prior.fit.input_camera(S, S)``
  (S = 256), placed like a preprocessed crop;
- the model inputs computed once, exactly as the app computes them: the GT body with
  fitting noise (a :class:`~humansplat.prior.fit.BodyFit`), the projection synthesizer's 4
  orthogonal views of the photo at the model's resolution, then
  :func:`humansplat.model.inputs.assemble_inputs` with the ``tiny`` preset;
- targets: the paper's three hierarchical camera cycles (full body, upper body, face) around
  the subject, RGB / mask / 24-part maps at R = 128.

Layout: ``ROOT/{split}/shard-XXXXX.npz`` (``shard_size`` subjects each; members
``sNN.<field>``), written atomically, so a shard that exists is complete; generation skips
those and resumes. ``ROOT/{split}/info.json`` records the settings; resuming with other
settings is refused. Splits: ``train``, ``test`` (held out: seeds from another stream) and
``hard`` (mostly skirts and dresses, challenging poses).

Stored dtypes: images uint8, masks uint8 (coverage x 255), parts int8 (-1 background),
body vertices float16, cameras float32. :class:`SyntheticHumans` returns the float tensors
of the training-sample contract (``/tmp/hs/contract.md``; see its docstring).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, MissingFileError

__all__ = [
    "SynthDataConfig",
    "SyntheticHumans",
    "collate_samples",
    "generate_subject",
    "generate_split",
    "generate",
    "list_shards",
    "decode_sample",
    "build_cycle_cameras",
    "noisy_body_params",
    "fit_noise",
    "model_inputs",
    "pack_sample",
    "pick_targets",
    "LEVELS",
    "register",
    "save_preview",
]

from .step import collate_samples  # noqa: E402,F401 (one collate for dataset and trainer)

LEVELS = ("full_body", "upper_body", "face")
SPLITS = ("train", "test", "hard")
_FORMAT = 1


@dataclass
class SynthDataConfig:
    """Settings of a generated data set (stored in ``info.json``).

    resolution: target views (R); input_size: the photo (S); preset: the model preset whose
    inputs are assembled; train_views / eval_views: views per level (full, upper, face) of
    train subjects and of test/hard subjects; shard_size: subjects per shard; supersample:
    samples per pixel side; elevation_jitter: (lo, hi) degrees of train cameras' elevation;
    eval_elevation: elevation of the test/hard cameras; fit noise: std of the "fitted"
    body's errors (pose radians, shape, translation metres, relative scale, yaw degrees);
    clothing: the ``prior.clothing.ClothingConfig`` overrides the model's body is grown with
    (None: the naked body, as in data sets made before clothing existed)."""

    resolution: int = 128
    input_size: int = 256
    preset: str = "tiny"
    train_views: tuple[int, int, int] = (8, 4, 4)
    eval_views: tuple[int, int, int] = (16, 8, 8)
    shard_size: int = 16
    supersample: int = 2
    elevation_jitter: tuple[float, float] = (-10.0, 25.0)
    eval_elevation: float = 0.0
    # ~2-4 cm mean vertex error: a good single-image fit
    noise_pose: float = 0.02
    noise_shape: float = 0.03
    noise_transl: float = 0.01
    noise_scale: float = 0.015
    noise_yaw_deg: float = 2.0
    clothing: dict | None = field(default_factory=dict)
    format: int = _FORMAT

    def views_for(self, split: str) -> tuple[int, int, int]:
        return tuple(self.train_views if split == "train" else self.eval_views)

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> "SynthDataConfig":
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()
                 if k in cls.__dataclass_fields__}
        known.setdefault("clothing", None)  # older data sets: the naked body
        return cls(**known)


# ----------------------------------------------------------------------------------------
# cameras and fitting noise
# ----------------------------------------------------------------------------------------
def build_cycle_cameras(mesh, model, views: Sequence[int], rng: np.random.Generator | None,
                        width: int, elevation_jitter=(-10.0, 25.0),
                        eval_elevation: float = 0.0):
    """The three hierarchical cycles around a placed subject mesh: (Cameras, levels [T]).

    Targets: full body = the dressed bbox centre, upper body = the chest (spine2 joint),
    face = the middle of the eyes and ears; radii from ``cameras.hierarchical_cycles`` with
    the body's height (full body: the larger of height and horizontal extent, so raised
    arms and wide skirts stay in frame). With ``rng`` (training): a random azimuth offset
    per level, +-jitter per view and random elevations; without: evenly spaced azimuths
    from 0 at ``eval_elevation`` (the many-angle evaluation protocol)."""
    from ..cameras import Cameras, hierarchical_cycles, orbit_cameras
    from ..prior.parts import KEYPOINT_NAMES, PART_NAMES

    v = mesh.vertices.double()
    lo, hi = v.min(0).values, v.max(0).values
    centre = (0.5 * (lo + hi)).tolist()
    height = float(hi[1] - lo[1])
    extent = max(height, float((hi[0] - lo[0])), float(hi[2] - lo[2]))
    body = mesh.body
    model_joints = body.joints[0].double()
    kp = body.keypoints[0].double()
    # the body's own standing size (pose-independent) for the upper-body and face framing
    rest = body.rest_vertices[0]
    scale = float((body.bone_transforms[0, 0, :3, :3].double().det()).abs() ** (1 / 3))
    stature = float(rest[:, 1].max() - rest[:, 1].min()) * scale
    chest_j = model_joints[int(model.smpl_joints[PART_NAMES.index("spine2")])]
    face_ids = [KEYPOINT_NAMES.index(n) for n in ("left_eye", "right_eye", "left_ear",
                                                  "right_ear")]
    head = kp[face_ids].mean(0)
    cycles = hierarchical_cycles(centre, stature, chest=chest_j.tolist(), head=head.tolist())
    full = hierarchical_cycles(centre, extent)[0]
    cycles[0] = full
    cams, levels = [], []
    for lvl, (cyc, n) in enumerate(zip(cycles, views)):
        if n <= 0:
            continue
        if rng is not None:
            off = rng.uniform(0, 360.0 / n)
            az = off + np.arange(n) * 360.0 / n + rng.uniform(-0.15, 0.15, n) * 360.0 / n
            el = rng.uniform(*elevation_jitter, n)
        else:
            az = np.arange(n) * 360.0 / n
            el = np.full(n, eval_elevation)
        cams.append(orbit_cameras(az.tolist(), el.tolist(), cyc.radius, target=cyc.target,
                                  fovy_deg=cyc.fovy_deg, width=width, height=width))
        levels += [lvl] * n
    return Cameras.cat(cams), torch.tensor(levels, dtype=torch.long)


def fit_noise(model, smpl_pose, shape, global_orient, transl, scale,
              rng: np.random.Generator, cfg: SynthDataConfig,
              record: dict | None = None) -> dict:
    """A body's forward arguments with fitting noise (what a good fitter returns): SMPL-joint
    pose [24,3] (+ N(0, noise_pose) on every non-root joint), shape (+ N(0, noise_shape),
    clipped to the model's bounds), global orientation [3,3] (turned by N(0, noise_yaw_deg)
    about +y), translation [3] (+ N(0, noise_transl)), scale (x 1 + N(0, noise_scale)).
    ``record`` (a dict) receives the noisy values as JSON-able lists."""
    from ..geometry import axis_angle_to_matrix
    from ..prior.parts import NUM_PARTS

    dt = model.dtype
    pose = np.asarray(smpl_pose, np.float64).copy()
    pose[1:] += rng.normal(0, cfg.noise_pose, (NUM_PARTS - 1, 3))
    shape = np.asarray(shape, np.float64)
    shape = shape + rng.normal(0, cfg.noise_shape, shape.shape)
    if model.shape_bounds is not None:
        lo, hi = (b.double().numpy() for b in model.shape_bounds)
        shape = np.clip(shape, lo, hi)
    dyaw = rng.normal(0, cfg.noise_yaw_deg)
    R = axis_angle_to_matrix(torch.tensor([0.0, math.radians(dyaw), 0.0], dtype=torch.float64))
    orient = R @ torch.as_tensor(np.asarray(global_orient), dtype=torch.float64)
    transl = np.asarray(transl, np.float64) + rng.normal(0, cfg.noise_transl, 3)
    scale = float(scale) * (1 + rng.normal(0, cfg.noise_scale))
    if record is not None:
        record.update({"smpl_pose": np.round(pose, 5).tolist(),
                       "shape": np.round(shape, 5).tolist(),
                       "global_orient": np.round(orient.numpy(), 6).tolist(),
                       "transl": np.round(transl, 5).tolist(), "scale": round(scale, 5)})
    return {"body_pose": model.body_pose_from_smpl(torch.as_tensor(pose, dtype=dt)[None]),
            "shape": torch.as_tensor(shape, dtype=dt)[None],
            "global_orient": orient.to(dt)[None],
            "transl": torch.as_tensor(transl, dtype=dt)[None],
            "scale": torch.tensor([scale], dtype=dt)}


def noisy_body_params(subject, rng: np.random.Generator, cfg: SynthDataConfig,
                      record: dict | None = None) -> dict:
    """A synthetic subject's GT body with fitting noise (:func:`fit_noise`)."""
    from ..geometry import axis_angle_to_matrix

    yaw = axis_angle_to_matrix(torch.tensor([0.0, math.radians(subject.yaw_deg), 0.0],
                                            dtype=torch.float64))
    return fit_noise(subject.model, subject.smpl_pose, subject.shape, yaw, subject.transl,
                     subject.scale, rng, cfg, record)


def _body_fit(model, params: dict, cam, size: int):
    from ..prior.fit import BodyFit

    with torch.no_grad():
        out = model(**params)
    return BodyFit(vertices=out.vertices[0], faces=model.faces, joints=out.joints[0],
                   keypoints=out.keypoints[0], part_labels=model.part_labels,
                   params={"body_pose": params["body_pose"][0], "shape": params["shape"][0],
                           "global_orient": params["global_orient"][0],
                           "transl": params["transl"][0], "scale": params["scale"][0]},
                   viewmat=cam.viewmats[0], K=cam.Ks[0], image_size=(size, size),
                   diagnostics={"synthetic": True})


# ----------------------------------------------------------------------------------------
# one subject
# ----------------------------------------------------------------------------------------
_SYNTH = {}


def _synthesizer(model, resolution: int):
    key = (id(model), resolution)
    if key not in _SYNTH:
        from ..synth.projection import ProjectionSynthesizer

        _SYNTH[key] = ProjectionSynthesizer(model, resolution=resolution)
    return _SYNTH[key]


def _u8(x: Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def generate_subject(split: str, index: int, seed: int,
                     cfg: SynthDataConfig | None = None) -> dict[str, np.ndarray]:
    """Generate subject ``index`` of ``split`` (deterministic from ``seed``): a dict of numpy
    arrays in the stored dtypes (see the module docs)."""
    from ..prior.fit import input_camera
    from ..data.subject_render import render_subject
    from ..data.synthetic_humans import sample_subject, subject_seed

    cfg = cfg or SynthDataConfig()
    sseed = subject_seed(seed, split, index)
    t0 = time.perf_counter()
    subject = sample_subject(sseed, hard=(split == "hard"), input_size=cfg.input_size)
    model = subject.model
    mesh = subject.mesh()
    rng = np.random.default_rng([sseed, 1])
    S, R = cfg.input_size, cfg.resolution
    cam = input_camera(S, S)
    photo = render_subject(mesh, cam, S, supersample=cfg.supersample)
    image, mask = photo.rgb[0], photo.alpha[0]
    train = split == "train"
    tcams, levels = build_cycle_cameras(mesh, model, cfg.views_for(split), rng if train else None,
                                        R, cfg.elevation_jitter, cfg.eval_elevation)
    targets = render_subject(mesh, tcams, R, supersample=cfg.supersample)
    t1 = time.perf_counter()
    fit_record: dict = {}
    params = noisy_body_params(subject, rng, cfg, fit_record)
    mi = model_inputs(model, image, mask, cam, params, cfg)
    t2 = time.perf_counter()
    meta = {"name": f"{split}-{index:05d}", "split": split, "index": index,
            "subject_seed": sseed, **subject.describe(),
            "smpl_pose": np.round(subject.smpl_pose, 5).tolist(),
            "fit": fit_record, "levels": list(LEVELS),
            "seconds": {"render": round(t1 - t0, 3), "inputs": round(t2 - t1, 3)}}
    return pack_sample(mi, image, mask, targets, tcams, levels, meta)


def model_inputs(model, image: Tensor, mask: Tensor, cam, params: dict,
                 cfg: SynthDataConfig):
    """The model inputs, as the app builds them from a photo and a fitted body: the body
    (forward arguments ``params``) as a BodyFit, the projection synthesizer's 4 orthogonal
    views of the photo (image [3,S,S], mask [1,S,S], input camera ``cam``), then
    ``assemble_inputs`` with the configured preset. Returns ModelInputs."""
    from ..config import get_preset
    from ..front import front_half

    fit = _body_fit(model, params, cam, int(image.shape[-1]))
    preset = get_preset(cfg.preset)
    return front_half(image, mask, fit, _synthesizer(model, preset.image_size), preset,
                      clothing=cfg.clothing).inputs


def pack_sample(mi, image: Tensor, mask: Tensor, targets, tcams, levels: Tensor,
                meta: dict) -> dict[str, np.ndarray]:
    """One subject's arrays in the stored dtypes (module docs)."""
    return {
        "views": _u8(mi.views),
        "viewmats": mi.viewmats.float().numpy(),
        "Ks": mi.Ks.float().numpy(),
        "body_vertices": mi.body_vertices.numpy().astype(np.float16),
        "target_rgb": _u8(targets.rgb),
        "target_mask": _u8(targets.alpha[:, 0]),
        "target_parts": targets.parts.to(torch.int8).numpy(),
        "target_viewmats": tcams.viewmats.float().numpy(),
        "target_Ks": tcams.Ks.float().numpy(),
        "target_levels": levels.to(torch.int8).numpy(),
        "input_image": _u8(image),
        "input_mask": _u8(mask[0]),
        "meta": np.array(json.dumps(meta)),
    }


def decode_sample(raw: dict[str, np.ndarray]) -> dict:
    """Stored arrays of one subject -> the float/int64 tensors of the sample contract."""
    f = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float() / 255.0  # noqa: E731
    meta = json.loads(str(raw["meta"]))
    return {
        "views": f(raw["views"]),
        "viewmats": torch.from_numpy(raw["viewmats"]).float(),
        "Ks": torch.from_numpy(raw["Ks"]).float(),
        "body_vertices": torch.from_numpy(raw["body_vertices"].astype(np.float32)),
        "target_rgb": f(raw["target_rgb"]),
        "target_mask": f(raw["target_mask"])[:, None],
        "target_parts": torch.from_numpy(raw["target_parts"].astype(np.int64)),
        "target_viewmats": torch.from_numpy(raw["target_viewmats"]).float(),
        "target_Ks": torch.from_numpy(raw["target_Ks"]).float(),
        "target_levels": torch.from_numpy(raw["target_levels"].astype(np.int64)),
        "input_image": f(raw["input_image"]),
        "input_mask": f(raw["input_mask"])[None],
        "subject": meta["name"],
    }


# ----------------------------------------------------------------------------------------
# shards
# ----------------------------------------------------------------------------------------
def shard_path(root, split: str, shard: int) -> Path:
    return Path(root) / split / f"shard-{shard:05d}.npz"


def list_shards(root, split: str) -> list[Path]:
    """The complete shards of a split (written atomically: every listed file is whole)."""
    d = Path(root) / split
    return sorted(d.glob("shard-[0-9][0-9][0-9][0-9][0-9].npz")) if d.is_dir() else []


def _write_shard(path: Path, subjects: list[dict[str, np.ndarray]]) -> None:
    from ..io.paths import atomic_path

    arrays = {f"s{k:02d}.{name}": a for k, s in enumerate(subjects) for name, a in s.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _shard_count(raw_keys: Sequence[str]) -> int:
    return len({k.split(".", 1)[0] for k in raw_keys})


def _check_info(root: Path, split: str, cfg: SynthDataConfig, seed: int, count: int) -> None:
    info_path = root / split / "info.json"
    info = {"config": cfg.to_json(), "seed": int(seed), "split": split}
    if info_path.exists():
        old = json.loads(info_path.read_text())
        if old.get("config") != info["config"] or old.get("seed") != info["seed"]:
            raise ConfigError(
                f"{info_path} was generated with other settings ({old.get('config')}, seed "
                f"{old.get('seed')}); delete {root / split} or use another --out")
    from ..io.paths import atomic_path

    info["count"] = max(int(count), int(json.loads(info_path.read_text()).get("count", 0))
                        if info_path.exists() else 0)
    with atomic_path(info_path) as tmp:
        tmp.write_text(json.dumps(info, indent=1))


def _shard_job(args) -> tuple[int, int, float]:
    root, split, shard, lo, hi, seed, cfg_json = args
    torch.set_num_threads(1)
    cfg = SynthDataConfig.from_json(cfg_json)
    t0 = time.perf_counter()
    subjects = [generate_subject(split, i, seed, cfg) for i in range(lo, hi)]
    _write_shard(shard_path(root, split, shard), subjects)
    return shard, hi - lo, time.perf_counter() - t0


def generate_split(root, split: str, count: int, seed: int = 0,
                   cfg: SynthDataConfig | None = None, *, workers: int = 1,
                   progress: bool | Callable[[int, int, float], None] = True,
                   log: Callable[[str], None] | None = None) -> list[Path]:
    """Generate ``count`` subjects of ``split`` under ``root`` (resumable: complete shards are
    skipped). ``progress``: True for a tqdm bar, or a callback(done, total, seconds per
    subject). Returns the split's shards."""
    cfg = cfg or SynthDataConfig()
    root = Path(root)
    if count <= 0:
        return list_shards(root, split)
    _check_info(root, split, cfg, seed, count)
    n_shards = math.ceil(count / cfg.shard_size)
    jobs = []
    done = 0
    for s in range(n_shards):
        lo, hi = s * cfg.shard_size, min((s + 1) * cfg.shard_size, count)
        p = shard_path(root, split, s)
        if p.exists():
            with np.load(p) as z:
                have = _shard_count(z.files)
            if have == hi - lo:
                done += have
                continue
            p.unlink()  # a smaller last shard of an earlier, shorter run: regenerate
        jobs.append((str(root), split, s, lo, hi, int(seed), cfg.to_json()))
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, initial=done, desc=f"synth {split}", unit="subject",
                   dynamic_ncols=True, mininterval=5.0)
    say = log or (lambda s: None)
    say(f"{split}: {count} subjects, {done} already done, {len(jobs)} shards to write")
    t_start = time.perf_counter()
    made = 0

    def report(shard: int, n: int, secs: float) -> None:
        nonlocal made, done
        made += n
        done += n
        per = secs / max(n, 1)
        if bar is not None:
            bar.update(n)
            bar.set_postfix(s_per_subject=f"{per:.2f}")
        elif callable(progress):
            progress(done, count, per)
        say(f"{split}: shard {shard:05d} ({n} subjects, {per:.2f} s/subject); {done}/{count}, "
            f"{(time.perf_counter() - t_start) / max(made, 1):.2f} s/subject overall")

    if workers <= 1:
        for job in jobs:
            report(*_shard_job(job))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            for res in ex.map(_shard_job, jobs):
                report(*res)
    if bar is not None:
        bar.close()
    return list_shards(root, split)


def generate(root, counts: dict[str, int], seed: int = 0, cfg: SynthDataConfig | None = None,
             *, workers: int = 1, progress=True, log=None) -> dict[str, list[Path]]:
    """Generate several splits in order (e.g. test, hard, then train)."""
    return {split: generate_split(root, split, n, seed, cfg, workers=workers,
                                  progress=progress, log=log) for split, n in counts.items()}


# ----------------------------------------------------------------------------------------
# the dataset
# ----------------------------------------------------------------------------------------
class SyntheticHumans(torch.utils.data.Dataset):
    """Generated subjects of one split as training samples.

    ``targets=(nf, nu, nface)`` picks that many random stored views per level (full body,
    upper body, face) for each sample (training); None returns all stored views in cycle
    order (evaluation). The complete shards are listed at construction, so training can
    start while generation continues (make a new instance to see new shards).

    ``__getitem__`` returns CPU tensors: views float32 [5,3,128,128] (index 0 = the photo),
    viewmats [5,4,4], Ks [5,3,3], body_vertices [L,3] (the "fitted" body the model is given:
    clothed, ``prior.clothing``, unless info.json's clothing is null), target_rgb
    [T,3,R,R] on white, target_mask [T,1,R,R], target_parts int64 [T,R,R] (-1 background),
    target_viewmats [T,4,4], target_Ks [T,3,3], target_levels int64 [T] (0 full body,
    1 upper body, 2 face), input_image [3,S,S], input_mask [1,S,S], subject str."""

    def __init__(self, root, split: str = "train", targets: tuple[int, int, int] | None = (4, 2, 2),
                 *, seed: int | None = None):
        self.root = Path(root)
        self.split = split
        self.targets = None if targets is None else tuple(int(t) for t in targets)
        self.seed = seed
        self.shards = list_shards(self.root, split)
        self.index: list[tuple[int, int]] = []
        for si, p in enumerate(self.shards):
            with np.load(p) as z:
                n = _shard_count(z.files)
            self.index += [(si, k) for k in range(n)]
        self._calls = 0

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, i: int) -> dict[str, np.ndarray]:
        """The stored arrays of sample ``i``."""
        si, k = self.index[i]
        prefix = f"s{k:02d}."
        with np.load(self.shards[si]) as z:
            return {name[len(prefix):]: z[name] for name in z.files if name.startswith(prefix)}

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        sample = decode_sample(self.raw(i % len(self)))
        if self.targets is not None:
            sample = self._pick(sample, i)
        return sample

    def _pick(self, sample: dict, i: int) -> dict:
        g = None
        if self.seed is not None:
            self._calls += 1
            g = torch.Generator().manual_seed(hash((self.seed, i, self._calls)) % (2 ** 63))
        return pick_targets(sample, self.targets, g)


def pick_targets(sample: dict, targets: Sequence[int], generator=None) -> dict:
    """Keep ``targets[l]`` random views of each level l (all the sample's target_* fields);
    with fewer stored views than asked, views repeat."""
    levels = sample["target_levels"]
    chosen = []
    for lvl, n in enumerate(targets):
        if n <= 0:
            continue
        idx = (levels == lvl).nonzero().squeeze(1)
        if idx.numel() == 0:
            raise ValueError(f"{sample['subject']} has no views of level {LEVELS[lvl]}")
        if n <= idx.numel():
            pick = idx[torch.randperm(idx.numel(), generator=generator)[:n]]
        else:
            pick = idx[torch.randint(idx.numel(), (n,), generator=generator)]
        chosen.append(pick)
    sel = torch.cat(chosen)
    for k in ("target_rgb", "target_mask", "target_parts", "target_viewmats", "target_Ks",
              "target_levels"):
        sample[k] = sample[k][sel]
    return sample


def save_preview(root, path, *, splits: Sequence[str] = ("train", "test", "hard"),
                 n: int = 12, targets_per_level: int = 2) -> Path:
    """A PNG grid of ``n`` stored subjects (taken round-robin from ``splits``), one row
    each: the 5 model input views (photo first), ``targets_per_level`` targets per level,
    and the part maps of the first target of each level."""
    from PIL import Image

    from ..prior.parts import PART_COLORS

    sets = [SyntheticHumans(root, s, targets=None) for s in splits]
    sets = [d for d in sets if len(d)]
    if not sets:
        raise MissingFileError(f"no generated shards under {root}")
    palette = torch.tensor(list(PART_COLORS) + [(255, 255, 255)], dtype=torch.float32) / 255
    rows = []
    for k in range(n):
        d = sets[k % len(sets)]
        j = (k // len(sets)) * max(1, len(d) // max(1, n // len(sets))) % len(d)
        s = d[j]
        tiles = list(s["views"])
        lv = s["target_levels"]
        parts = []
        for lvl in range(len(LEVELS)):
            idx = (lv == lvl).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            step = max(1, idx.numel() // targets_per_level)
            for i in idx[::step][:targets_per_level]:
                tiles.append(s["target_rgb"][i])
            parts.append(palette[s["target_parts"][idx[0]]].permute(2, 0, 1))  # -1 -> white
        rows.append(torch.cat(tiles + parts, 2))
    grid = torch.cat(rows, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------------------
# CLI: humansplat data synth
# ----------------------------------------------------------------------------------------
def _cmd_synth(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    clothing = None
    if not args.naked_body:
        try:
            clothing = json.loads(args.clothing)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--clothing must be a JSON object, got {args.clothing!r}: {e}")
        if not isinstance(clothing, dict):
            raise ConfigError(f"--clothing must be a JSON object, got {args.clothing!r}")
        from ..prior.clothing import ClothingConfig

        ClothingConfig.from_dict(clothing)  # unknown or ill-typed settings fail here
    cfg = SynthDataConfig(resolution=args.resolution, input_size=args.input_size,
                          shard_size=args.shard_size, clothing=clothing)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    counts = {"test": args.test, "hard": args.hard, "train": args.train}
    t0 = time.perf_counter()
    shards = generate(root, counts, args.seed, cfg, workers=args.workers,
                      progress=not args.no_progress, log=log)
    total = sum(len(v) for v in shards.values())
    log(f"done: {total} shards in {root} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    path = save_preview(args.out, args.png or Path(args.out) / "preview.png", n=args.n)
    print(path)
    return 0


def register(subparsers) -> None:
    """Add ``data synth`` to the ``humansplat`` command line."""
    d = subparsers.add_parser("data", help="generate training data")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synth", help="generate synthetic dressed people (sharded, resumable)")
    s.add_argument("--out", default="data/synth", help="output folder (default data/synth)")
    s.add_argument("--train", type=int, default=800, help="training subjects")
    s.add_argument("--test", type=int, default=48, help="held-out test subjects")
    s.add_argument("--hard", type=int, default=32, help="hard subjects (skirts, dresses, poses)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=1, help="processes (1 thread each)")
    s.add_argument("--resolution", type=int, default=128, help="target views, px")
    s.add_argument("--input-size", type=int, default=256, help="input photo, px")
    s.add_argument("--shard-size", type=int, default=16)
    s.add_argument("--naked-body", action="store_true",
                   help="give the model the naked fitted body, not the clothed one "
                        "(humansplat.prior.clothing; an ablation)")
    s.add_argument("--clothing", default="{}", metavar="JSON",
                   help="ClothingConfig settings the model's body is grown with, as the "
                        "pipeline's pipeline.json 'clothing' (default {}: the defaults)")
    s.add_argument("--no-progress", action="store_true", help="log lines only, no bar")
    s.set_defaults(func=_cmd_synth)
    pv = dsub.add_parser("preview", help="save a PNG grid of generated subjects")
    pv.add_argument("--out", default="data/synth", help="data folder (default data/synth)")
    pv.add_argument("--png", default=None, help="default: OUT/preview.png")
    pv.add_argument("-n", type=int, default=12, help="subjects (rows)")
    pv.set_defaults(func=_cmd_preview)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m humansplat.train.dataset")
    sub = p.add_subparsers(dest="command", required=True)
    register(sub)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
