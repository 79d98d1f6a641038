"""The trainer: one script for one CPU, one GPU or many GPUs/nodes (``accelerate launch``).

AdamW (0.9, 0.95), weight decay except on norms and biases, linear warm-up then cosine decay,
gradient clipping, EMA weights, mixed precision and gradient checkpointing on GPU, resumable
checkpoints (``accelerate`` state + EMA + step), a progress bar, ``log.jsonl`` with every
logged step, ``loss.png`` curves and rendered sample grids under ``samples/``.

Output folder layout::

    config.json              the TrainConfig that ran
    checkpoints/step-XXXXXXX accelerate state (model, optimizer, scheduler, RNG, EMA) + step
    log.jsonl, loss.png      losses, lr, seconds per step
    samples/step-XXXXXXX.png prediction vs ground truth on fixed samples (EMA weights)
    model/                   the EMA weights, save_pretrained layout (config.json + safetensors)

Data order is a pure function of (seed, step), so a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..model import LatentReconstructionTransformer
from .average import config_difference, load_model
from .config import TrainConfig
from .ema import EMA
from .photo_sheet import with_photo_sheet
from .step import collate_samples, model_kwargs, render_views, training_loss

__all__ = ["Trainer", "TrainResult", "build_dataset", "lr_lambda", "param_groups",
           "batch_indices"]


def build_dataset(cfg: TrainConfig, split: str, *, targets=None, extra_roots: bool = False):
    """The configured dataset for ``split`` (targets: views per level, None = all);
    ``extra_roots``: with ``cfg.data.extra_roots``' same split appended (the training set)."""
    if cfg.data.kind == "synthetic":
        from .dataset import SyntheticHumans

        roots = [cfg.data.root, *(cfg.data.extra_roots if extra_roots else ())]
        sets = [SyntheticHumans(r, split=split, targets=targets) for r in roots]
        return sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets)
    if cfg.data.extra_roots:
        raise ConfigError("data.extra_roots is for synthetic data; give scans one root")
    from .dataset import SynthDataConfig
    from .scans import ScanDataset

    m = cfg.model.build()  # scans are rendered at the model's sizes (cached per setting)
    data_cfg = SynthDataConfig(preset=cfg.model.preset, resolution=m.image_size,
                               input_size=2 * m.image_size)
    return ScanDataset(cfg.data.root, layout=cfg.data.scan_layout, split=split, targets=targets,
                       cfg=data_cfg)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay on weight matrices only: norms, biases and other 1-D parameters get none."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up from 0 to 1 over ``warmup`` steps, then cosine to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    prog = min(1.0, (step - warmup) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * prog))


def batch_indices(n: int, batch: int, step: int, micro: int, grad_accum: int, seed: int,
                  rank: int = 0, world: int = 1) -> list[int]:
    """The dataset indices of one micro-batch of one process: epochs are seeded permutations
    of ``range(n)``; global micro-batch g takes ``batch * world`` consecutive entries and
    process ``rank`` its slice."""
    per_global = batch * world
    g = step * grad_accum + micro
    start = g * per_global + rank * batch
    out = []
    for pos in range(start, start + batch):
        epoch, k = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perm[k]))
    return out


class StepBatches(torch.utils.data.Sampler):
    """The index lists of the micro-batches of steps ``start..total-1`` of one process, in
    the order the loop consumes them (:func:`batch_indices`): a DataLoader's batch sampler,
    so ``data.num_workers`` background workers load and collate them ahead of the loop."""

    def __init__(self, n: int, batch: int, start: int, total: int, grad_accum: int, seed: int,
                 rank: int = 0, world: int = 1):
        self.args = (n, batch, start, total, grad_accum, seed, rank, world)

    def __iter__(self):
        n, batch, start, total, grad_accum, seed, rank, world = self.args
        for step in range(start, total):
            for micro in range(grad_accum):
                yield batch_indices(n, batch, step, micro, grad_accum, seed, rank, world)

    def __len__(self) -> int:
        n, batch, start, total, grad_accum, *_ = self.args
        return max(0, total - start) * grad_accum


def _sheet_draw(cfg: TrainConfig, step: int, micro: int) -> bool:
    """Whether this micro-batch is rendered with the photo sheet (``loss.photo_sheet``): a
    draw seeded by the run's seed and the step, so a resumed run draws the same."""
    g = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + step * 101 + micro)
    return float(torch.rand((), generator=g)) < cfg.loss.photo_sheet


def micro_batches(data, cfg: TrainConfig, start: int, rank: int = 0, world: int = 1):
    """An iterator of collated micro-batches from step ``start`` on, loaded by
    ``cfg.data.num_workers`` background workers (0: in the loop's process)."""
    workers = int(cfg.data.num_workers)
    sampler = StepBatches(len(data), cfg.optim.batch_size, start, cfg.run.max_steps,
                          cfg.optim.grad_accum, cfg.run.seed, rank, world)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate_samples,
                                         num_workers=workers,
                                         prefetch_factor=2 if workers else None)
    return iter(loader)


@dataclass
class TrainResult:
    steps: int
    final_loss: float | None
    output_dir: Path
    model_dir: Path
    seconds: float
    resumed_from: int | None


def init_weights(model: LatentReconstructionTransformer, source: str) -> None:
    """Load the weights of the model at ``source`` (folder or Hub id) into ``model``; their
    configs must match (a ConfigError names the differing fields)."""
    src, _ = load_model(source)
    diff = config_difference(src, model)
    if diff:
        raise ConfigError(f"model.init_from {source!r} has another model config "
                          f"(differs in {diff})")
    model.load_state_dict(src.state_dict())


class Trainer:
    """``Trainer(cfg).train()``. ``dataset`` / ``sample_dataset`` override the configured ones
    (tests); ``log`` receives one-line status messages."""

    def __init__(self, cfg: TrainConfig, *, dataset=None, sample_dataset=None,
                 log: Callable[[str], None] = print, progress: bool = True):
        self.cfg = cfg
        self.log = log
        self.progress = progress
        self._dataset = dataset
        self._sample_dataset = sample_dataset
        self.out = Path(cfg.run.output_dir)

    # -- pieces ---------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator

        mp = self.cfg.run.mixed_precision if torch.cuda.is_available() else "no"
        return Accelerator(mixed_precision=mp)

    def _checkpoints(self) -> list[Path]:
        d = self.out / "checkpoints"
        if not d.is_dir():
            return []
        done = [p for p in d.iterdir() if (p / "trainer_state.json").is_file()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def _save(self, acc, step: int, losses: list[float]) -> None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            d = self.out / "checkpoints" / f"step-{step:07d}"
            tmp = d.with_name(d.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            acc.save_state(str(tmp))
            (tmp / "trainer_state.json").write_text(json.dumps(
                {"step": step, "last_losses": losses[-20:]}))
            shutil.rmtree(d, ignore_errors=True)
            tmp.rename(d)  # complete checkpoints only ever appear whole
            for old in self._checkpoints()[:-self.cfg.run.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def _export(self, model: LatentReconstructionTransformer, ema: EMA) -> Path:
        dest = self.out / "model"
        with ema.applied(model):
            model.save_pretrained(str(dest))
        return dest

    def _sample_grid(self, model, ema: EMA, samples: list[dict], step: int, device) -> None:
        from ..io.video import save_image_grid

        if not samples:
            return
        batch = collate_samples(samples)
        with ema.applied(model), torch.no_grad():
            model.eval()
            out = model(**model_kwargs(batch, device))
            r = render_views(out, batch["target_viewmats"].to(device),
                             batch["target_Ks"].to(device), batch["target_rgb"].shape[-1],
                             with_parts=False)
            model.train()
        tiles = []
        for b in range(len(samples)):
            for t in range(min(4, r.rgb.shape[1])):
                tiles.append(batch["target_rgb"][b, t])
                tiles.append(r.rgb[b, t].detach().cpu().clamp(0, 1))
        imgs = [(x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8) for x in tiles]
        d = self.out / "samples"
        d.mkdir(parents=True, exist_ok=True)
        save_image_grid(imgs, d / f"step-{step:07d}.png", ncols=2 * min(4, r.rgb.shape[1]))

    def _plot(self) -> None:
        path = self.out / "log.jsonl"
        if not path.is_file():
            return
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in ("loss", "rec/mse", "h/total", "part_ce") if k in rows[-1]]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        steps = [r["step"] for r in rows]
        for k in keys:
            axes[0].plot(steps, [r.get(k, np.nan) for r in rows], label=k)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("step")
        axes[0].legend()
        axes[1].plot(steps, [r.get("psnr", np.nan) for r in rows], label="train PSNR (dB)")
        axes[1].set_xlabel("step")
        axes[1].legend()
        fig.tight_layout()
        fig.savefig(self.out / "loss.png", dpi=80)
        plt.close(fig)

    # -- the loop ---------------------------------------------------------------------------
    def train(self, max_minutes: float | None = None, until_step: int | None = None
              ) -> TrainResult:
        """Train until ``run.max_steps`` (or until ``max_minutes`` of wall time or step
        ``until_step``, then checkpoint and return: the next call resumes; the schedule always
        follows ``run.max_steps``)."""
        from accelerate.utils import set_seed

        from .perceptual import get_perceptual

        cfg = self.cfg
        if cfg.run.threads and not torch.cuda.is_available():
            torch.set_num_threads(cfg.run.threads)
        acc = self._accelerator()
        set_seed(cfg.run.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        if acc.is_main_process:
            cfg.save(self.out / "config.json")

        data = self._dataset if self._dataset is not None else build_dataset(
            cfg, cfg.data.train_split, targets=tuple(cfg.data.targets), extra_roots=True)
        if len(data) == 0:
            raise RuntimeError(f"the training set at {cfg.data.root!r} is empty: generate it "
                               "with `humansplat data synth` first")
        if cfg.data.extra_roots:
            self.log(f"training on {len(data)} samples from {1 + len(cfg.data.extra_roots)} roots")
        model = LatentReconstructionTransformer(cfg.model.build())
        if cfg.model.init_from:
            init_weights(model, cfg.model.init_from)
            self.log(f"weights from {cfg.model.init_from}")
        opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                betas=tuple(cfg.optim.betas))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(
            s, cfg.optim.warmup_steps, cfg.run.max_steps, cfg.optim.min_lr_ratio))
        model, opt, sched = acc.prepare(model, opt, sched)
        raw_model = acc.unwrap_model(model)
        ema = EMA(raw_model, cfg.optim.ema_decay)
        acc.register_for_checkpointing(ema)
        perceptual = None
        if cfg.loss.lambda_p > 0 and cfg.loss.perceptual != "none":
            perceptual = get_perceptual(cfg.loss.perceptual).to(acc.device)
        loss_cfg = cfg.loss.loss_config()

        start, resumed = 0, None
        ckpts = self._checkpoints()
        if ckpts:
            acc.load_state(str(ckpts[-1]))
            start = json.loads((ckpts[-1] / "trainer_state.json").read_text())["step"]
            resumed = start
            self.log(f"resumed from {ckpts[-1]} (step {start})")

        sample_src = self._sample_dataset
        if sample_src is None:  # fixed held-out samples; the training set if none exist yet
            sample_src = build_dataset(cfg, cfg.data.eval_split, targets=(4, 0, 0))
            if len(sample_src) == 0:
                sample_src = data
        samples = [sample_src[i] for i in range(min(2, len(sample_src)))]

        R = None
        t0 = time.perf_counter()
        losses: list[float] = []
        window: dict[str, list[float]] = {}
        bar = None
        if self.progress and acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.run.max_steps, initial=start, desc="train", dynamic_ncols=True)
        step = start
        skipped = 0
        batches = micro_batches(data, cfg, start, acc.process_index, acc.num_processes)
        model.train()
        while step < cfg.run.max_steps:
            ts = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            terms_step: dict[str, float] = {}
            ok = True
            for micro in range(cfg.optim.grad_accum):
                batch = next(batches)
                R = batch["target_rgb"].shape[-1]
                with acc.autocast():
                    out = model(**model_kwargs(batch, acc.device))
                if cfg.loss.photo_sheet > 0 and _sheet_draw(cfg, step, micro):
                    out = with_photo_sheet(out, batch, push=cfg.loss.photo_sheet_push)
                renders = render_views(out, batch["target_viewmats"].to(acc.device),
                                       batch["target_Ks"].to(acc.device), R,
                                       with_parts=cfg.loss.lambda_part > 0)
                loss, terms = training_loss(renders, batch, perceptual, loss_cfg,
                                            cfg.loss.lambda_part)
                # every process must agree before backward (DDP all-reduces there): one
                # process's non-finite loss makes all of them skip this step together
                bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=acc.device)
                if acc.num_processes > 1:
                    bad = acc.reduce(bad, reduction="sum")
                if float(bad) > 0:
                    ok = False
                    for _ in range(micro + 1, cfg.optim.grad_accum):
                        next(batches)  # the step's remaining micro-batches, unused
                    break
                acc.backward(loss / cfg.optim.grad_accum)
                for k, v in terms.items():
                    terms_step[k] = terms_step.get(k, 0.0) + float(v) / cfg.optim.grad_accum
            if not ok:
                skipped += 1
                self.log(f"step {step}: non-finite loss, batch skipped ({skipped} so far)")
                opt.zero_grad(set_to_none=True)
                if skipped > 20:
                    raise RuntimeError("more than 20 non-finite losses: stopping")
                step += 1
                continue
            gnorm = acc.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
            ema.update(raw_model)
            step += 1
            losses.append(terms_step["loss"])
            terms_step["grad_norm"] = float(gnorm)
            for k, v in terms_step.items():
                window.setdefault(k, []).append(v)
            sec = time.perf_counter() - ts
            window.setdefault("sec_per_step", []).append(sec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms_step['loss']:.4f}",
                                psnr=f"{terms_step.get('psnr', 0):.2f}", s=f"{sec:.2f}")
            if acc.is_main_process and (step % cfg.run.log_every == 0 or step == cfg.run.max_steps):
                row = {"step": step, "lr": sched.get_last_lr()[0],
                       **{k: float(np.mean(v)) for k, v in window.items()}}
                with open(self.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                window.clear()
            out_of_time = (max_minutes is not None and
                           (time.perf_counter() - t0) / 60 >= max_minutes) or \
                (until_step is not None and step >= until_step)
            if step % cfg.run.save_every == 0 or step == cfg.run.max_steps or out_of_time:
                self._save(acc, step, losses)
            if acc.is_main_process and (step % cfg.run.sample_every == 0
                                        or step == cfg.run.max_steps):
                self._sample_grid(raw_model, ema, samples, step, acc.device)
                self._plot()
            if out_of_time:
                self.log(f"stopping at step {step} (budget: {max_minutes} min, until step "
                         f"{until_step}); run again to resume")
                break
        if bar is not None:
            bar.close()
        model_dir = self.out / "model"
        if acc.is_main_process:
            model_dir = self._export(raw_model, ema)
            self._plot()
        acc.wait_for_everyone()
        return TrainResult(steps=step, final_loss=losses[-1] if losses else None,
                           output_dir=self.out, model_dir=model_dir,
                           seconds=time.perf_counter() - t0, resumed_from=resumed)
