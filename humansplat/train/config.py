"""Training configuration as data: a YAML/JSON file, ``--set section.key=value`` overrides.

    model:   preset + overrides of humansplat.config.ModelConfig; init_from: weights to start from
    data:    which dataset (synthetic shards or scans), its root, views per level
    loss:    humansplat.train.losses.LossConfig fields (every weight: lambda_m, lambda_p, the
             paper's per-level lambda_i ``level_weights`` [3] and per-part lambda_j
             ``part_weights``, a list of 24 or {part name: weight} over the defaults) + the
             part-label term + perceptual backend
    optim:   AdamW, warm-up + cosine schedule, clipping, batch, EMA
    run:     output folder, step budget, checkpoint/log/sample cadence, precision, seed

The same file trains the CPU ``tiny`` model and (with ``model.preset: paper``, ``data.kind:
scans`` and ``run.mixed_precision: bf16``) the paper model on GPUs via ``accelerate launch``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..config import ModelConfig, get_preset
from ..errors import ConfigError
from .losses import LossConfig

__all__ = ["TrainConfig", "ModelSection", "DataSection", "LossSection", "OptimSection",
           "RunSection", "load_train_config"]


@dataclass
class ModelSection:
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    # a model folder or Hub id whose weights start the run (fine-tuning); its config must be
    # the one built here. A resumed run loads its own checkpoint instead.
    init_from: str | None = None

    def build(self) -> ModelConfig:
        return get_preset(self.preset, **self.overrides)


@dataclass
class DataSection:
    kind: str = "synthetic"  # "synthetic" (humansplat.train.dataset) or "scans"
    root: str = "data/synth"
    # more generated datasets whose ``train_split`` joins the training set (another seed's
    # people: more training signal without regenerating the first); evaluation uses ``root``
    extra_roots: tuple[str, ...] = ()
    train_split: str = "train"
    eval_split: str = "test"
    targets: tuple[int, int, int] = (4, 2, 2)  # views per level: full body, upper body, face
    num_workers: int = 0
    scan_layout: str = "thuman2"  # for kind == "scans"


@dataclass
class LossSection:
    lambda_m: float = 1.0
    lambda_p: float = 1.0
    use_reconstruction: bool = True
    use_hierarchical: bool = True
    perceptual_in_lh: bool = True
    crop_size: int = 64
    min_crop_pixels: int = 16
    level_weights: tuple[float, ...] | None = None  # lambda_i; None = LossConfig's
    part_weights: tuple[float, ...] | dict[str, float] | None = None  # lambda_j; see above
    lambda_part: float = 0.1  # ours: cross-entropy of the rendered part probabilities
    perceptual: str = "effnet-lite0"  # "effnet-lite0" | "lpips-vgg" | "auto" | "none"
    # the share of samples rendered as the app ships them: the photo's pixels in front, the
    # input view's Gaussians at least photo_sheet_push metres behind them (train.photo_sheet)
    photo_sheet: float = 0.0
    photo_sheet_push: float = 0.02

    def loss_config(self) -> LossConfig:
        from ..prior.parts import PART_NAMES

        kw: dict[str, Any] = {}
        if self.level_weights is not None:
            kw["level_weights"] = tuple(float(w) for w in self.level_weights)
        if isinstance(self.part_weights, dict):  # by name, over the paper's defaults
            unknown = sorted(set(self.part_weights) - set(PART_NAMES))
            if unknown:
                raise ConfigError(f"loss.part_weights: unknown part(s) {unknown}; parts: "
                                  f"{', '.join(PART_NAMES)}")
            base = dict(zip(PART_NAMES, LossConfig.part_weights))
            base.update({k: float(v) for k, v in self.part_weights.items()})
            kw["part_weights"] = tuple(base[n] for n in PART_NAMES)
        elif self.part_weights is not None:
            kw["part_weights"] = tuple(float(w) for w in self.part_weights)
        return LossConfig(lambda_m=self.lambda_m, lambda_p=self.lambda_p,
                          use_reconstruction=self.use_reconstruction,
                          use_hierarchical=self.use_hierarchical,
                          perceptual_in_lh=self.perceptual_in_lh, crop_size=self.crop_size,
                          min_crop_pixels=self.min_crop_pixels, **kw)


@dataclass
class OptimSection:
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05  # not on norms and biases
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.05  # cosine ends at lr * this
    grad_clip: float = 1.0
    batch_size: int = 8  # per process
    grad_accum: int = 1
    ema_decay: float = 0.999


@dataclass
class RunSection:
    output_dir: str = "runs/tiny"
    max_steps: int = 100_000
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    sample_every: int = 500
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (CUDA only; CPU always runs fp32)
    seed: int = 0
    threads: int | None = None  # torch intra-op threads on CPU (None: leave as is)


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        self.model.build()  # validates the model config
        self.loss.loss_config()
        if self.data.kind not in ("synthetic", "scans"):
            raise ConfigError(f"data.kind must be 'synthetic' or 'scans', got {self.data.kind!r}")
        if self.run.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"run.mixed_precision must be no|bf16|fp16, "
                              f"got {self.run.mixed_precision!r}")
        if self.optim.batch_size < 1 or self.optim.grad_accum < 1:
            raise ConfigError("optim.batch_size and optim.grad_accum must be >= 1")
        if not 0 <= self.optim.ema_decay < 1:
            raise ConfigError(f"optim.ema_decay must be in [0,1), got {self.optim.ema_decay}")
        if not 0.0 <= float(self.loss.photo_sheet) <= 1.0:
            raise ConfigError(f"loss.photo_sheet must be a share in [0, 1], got "
                              f"{self.loss.photo_sheet!r}")
        if not float(self.loss.photo_sheet_push) >= 0.0:
            raise ConfigError(f"loss.photo_sheet_push must be >= 0 metres, got "
                              f"{self.loss.photo_sheet_push!r}")
        if len(self.data.targets) != 3 or min(self.data.targets) < 0 or \
                sum(self.data.targets) < 1:
            raise ConfigError(f"data.targets must be 3 counts (full, upper, face) with a "
                              f"positive sum, got {self.data.targets}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        sections = {"model": ModelSection, "data": DataSection, "loss": LossSection,
                    "optim": OptimSection, "run": RunSection}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"unknown config section(s) {sorted(unknown)}; "
                              f"known: {sorted(sections)}")
        built = {}
        for name, klass in sections.items():
            values = dict(data.get(name) or {})
            known = {f.name for f in fields(klass)}
            bad = set(values) - known
            if bad:
                raise ConfigError(f"unknown key(s) {sorted(bad)} in section {name!r}; "
                                  f"known: {sorted(known)}")
            for k in ("targets", "betas", "level_weights", "extra_roots"):
                if isinstance(values.get(k), list):
                    values[k] = tuple(values[k])
            if isinstance(values.get("extra_roots"), str):  # one root, not its characters
                values["extra_roots"] = (values["extra_roots"],)
            if isinstance(values.get("part_weights"), list):
                values["part_weights"] = tuple(values["part_weights"])
            built[name] = klass(**values)
        return cls(**built)


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.overrides.k_win=1"]`` -> nested dict updates."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ConfigError(f"--set key must name a section: section.key, got {key!r}")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = _parse_value(value)
    return data


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None
                      ) -> TrainConfig:
    """Read a YAML or JSON training config (None: all defaults) and apply ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config not found: {p}")
        text = p.read_text()
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    return TrainConfig.from_dict(apply_overrides(data, overrides or []))


def replace_section(cfg: TrainConfig, section: str, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with one section's fields changed (validated)."""
    return replace(cfg, **{section: replace(getattr(cfg, section), **changes)})
