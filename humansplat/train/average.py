"""Weight averaging of fine-tuned checkpoints ("model soup"): runs fine-tuned from one set of
weights, averaged parameter by parameter, often beat each of them (Wortsman et al. 2022).

``average_checkpoints(["runs/a/model", "runs/b/model"], "runs/ab/model")`` writes a model folder
``from_pretrained`` and ``humansplat eval`` load like any other: ``config.json`` +
``model.safetensors``, the first source's ``pipeline.json`` when it has one (the shipped splat's
settings), and ``average.json`` naming the sources and their weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import ConfigError, OutputFolderError
from ..hub import resolve_source
from ..model.transformer import LatentReconstructionTransformer

__all__ = ["average_checkpoints", "config_difference", "load_model"]


def load_model(source: str) -> tuple[LatentReconstructionTransformer, Path]:
    """The model at ``source`` (a folder or Hub id) and the local folder it came from; a
    source that is neither raises :class:`MissingWeightsError` saying so."""
    folder = resolve_source(source).path
    with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints where it loads from
        model = LatentReconstructionTransformer.from_pretrained(str(folder))
    return model, folder


def config_difference(a: LatentReconstructionTransformer,
                      b: LatentReconstructionTransformer) -> list[str]:
    """The ``ModelConfig`` fields in which two models differ (empty: the same architecture)."""
    x, y = asdict(a.config), asdict(b.config)
    return sorted(k for k in x if x[k] != y.get(k))


def average_checkpoints(sources: Sequence[str], out: str | Path,
                        weights: Sequence[float] | None = None) -> Path:
    """Write the weighted mean of the models at ``sources`` (folders or Hub ids, one config)
    to the folder ``out``; ``weights`` (default equal) are normalised to sum to 1. Floating
    parameters are averaged in float64 and stored in their own dtype; other buffers must be
    equal in every source."""
    if len(sources) < 2:
        raise ConfigError("averaging needs at least two checkpoints")
    weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
    if (len(weights) != len(sources) or not all(math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0):
        raise ConfigError(f"need one non-negative weight per checkpoint, got {weights} for "
                          f"{len(sources)} checkpoints")
    total = sum(weights)
    weights = [w / total for w in weights]
    loaded = [load_model(s) for s in sources]
    models, folders = [m for m, _ in loaded], [f for _, f in loaded]
    out = Path(out)
    if any(out.resolve() == f.resolve() for f in folders):
        raise OutputFolderError(f"the output folder {str(out)!r} is one of the checkpoints "
                                "averaged; write the average to a new folder")
    for src, m in zip(sources[1:], models[1:]):
        diff = config_difference(models[0], m)
        if diff:
            raise ConfigError(f"{src!r} has another model config than {sources[0]!r} "
                              f"(differs in {diff})")
    states = [m.state_dict() for m in models]
    mean = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            acc = sum(w * s[name].double() for w, s in zip(weights, states))
            mean[name] = acc.to(first.dtype)
        else:
            if any(not torch.equal(first, s[name]) for s in states[1:]):
                raise ConfigError(f"buffer {name!r} differs between the checkpoints")
            mean[name] = first
    models[0].load_state_dict(mean)
    models[0].save_pretrained(out)
    pipeline_json = folders[0] / "pipeline.json"
    if pipeline_json.is_file():
        shutil.copy(pipeline_json, out / "pipeline.json")
    (out / "average.json").write_text(json.dumps(
        {"sources": [str(s) for s in sources], "weights": weights}, indent=2) + "\n")
    return out
