"""The training loop: a few steps of a micro model prove learning, resume and EMA."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from humansplat.config import get_preset
from humansplat.errors import ConfigError
from humansplat.train.config import TrainConfig, load_train_config
from humansplat.train.ema import EMA
from humansplat.train.trainer import Trainer, batch_indices, lr_lambda, param_groups
from toy_humans import ToyHumans

MICRO = {"body_anchor": True, "color_skip": True}


def _cfg(out, steps, **run):
    return TrainConfig.from_dict({
        "model": {"preset": "micro", "overrides": MICRO},
        "loss": {"perceptual": "none", "lambda_p": 0.0, "lambda_part": 0.1},
        "optim": {"lr": 3e-3, "warmup_steps": 2, "batch_size": 2, "ema_decay": 0.9},
        "run": {"output_dir": str(out), "max_steps": steps, "save_every": 3, "log_every": 1,
                "sample_every": 1000, "seed": 1, **run},
    })


@pytest.fixture(scope="module")
def toy():
    return ToyHumans(get_preset("micro", **MICRO), n=4)


def _train(cfg, toy, **kw):
    return Trainer(cfg, dataset=toy, sample_dataset=toy, log=lambda m: None,
                   progress=False).train(**kw)


def test_loop_learns_and_writes_outputs(tmp_path, toy):
    res = _train(_cfg(tmp_path, 24), toy)
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))
    first = sum(r["loss"] for r in rows[:4]) / 4
    last = sum(r["loss"] for r in rows[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert all(math.isfinite(r["grad_norm"]) for r in rows)
    assert res.steps == 24 and (res.model_dir / "model.safetensors").is_file()
    assert (tmp_path / "loss.png").is_file()
    assert list((tmp_path / "samples").glob("step-*.png"))
    # at most keep_checkpoints complete checkpoints, no temporary folders left
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-0000021", "step-0000024"]


def test_resume_reproduces_an_uninterrupted_run(tmp_path, toy):
    straight = _train(_cfg(tmp_path / "a", 6), toy)
    _train(_cfg(tmp_path / "b", 6), toy, until_step=3)  # "interrupted" after step 3
    resumed = _train(_cfg(tmp_path / "b", 6), toy)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    wa = load_file(straight.model_dir / "model.safetensors")
    wb = load_file(resumed.model_dir / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:  # EMA weights: model, optimizer, scheduler, EMA and data order all resumed
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=k)


def test_fine_tuning_starts_from_the_given_weights(tmp_path, toy):
    first = _train(_cfg(tmp_path / "a", 24), toy)
    cfg = _cfg(tmp_path / "b", 2)
    cfg.model.init_from = str(first.model_dir)
    _train(cfg, toy)
    scratch = _train(_cfg(tmp_path / "c", 2), toy)
    rows = {k: [json.loads(x) for x in (tmp_path / k / "log.jsonl").read_text().splitlines()]
            for k in "abc"}
    # the fine-tune's first step is where the first run ended, far below a fresh start
    assert rows["b"][0]["loss"] < 0.8 * rows["c"][0]["loss"], rows
    assert scratch.steps == 2
    other = _cfg(tmp_path / "d", 1)
    other.model.overrides = {**MICRO, "color_skip": False}
    other.model.init_from = str(first.model_dir)
    with pytest.raises(ConfigError, match="color_skip"):
        _train(other, toy)


def test_time_budget_stops_with_a_checkpoint(tmp_path, toy):
    res = _train(_cfg(tmp_path, 50), toy, max_minutes=0.0)
    assert res.steps == 1
    assert (tmp_path / "checkpoints" / "step-0000001" / "trainer_state.json").is_file()


def test_ema_math_and_state():
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 2)
    ema = EMA(m, decay=0.5)
    w0 = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)  # warm-up decay min(0.5, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], 0.1 * w0 + 0.9 * (w0 + 1))
    with ema.applied(m):
        torch.testing.assert_close(m.weight, 0.1 * w0 + 0.9 * (w0 + 1))
    torch.testing.assert_close(m.weight, w0 + 1)  # live weights restored
    ema2 = EMA(torch.nn.Linear(3, 2), decay=0.5)
    ema2.load_state_dict(ema.state_dict())
    assert ema2.num_updates == 1
    torch.testing.assert_close(ema2.shadow["weight"], ema.shadow["weight"])


def test_no_weight_decay_on_norms_and_biases():
    from humansplat.model import LatentReconstructionTransformer

    model = LatentReconstructionTransformer(get_preset("micro"))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    nd = {names[id(p)] for p in no_decay["params"]}
    assert any("norm" in n for n in nd) and any(n.endswith("bias") for n in nd)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05


def test_schedule_warmup_then_cosine():
    lrs = [lr_lambda(s, 10, 110, 0.1) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.55)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_data_order_covers_each_epoch_and_splits_processes(world):
    n, batch = 12, 2
    seen = []
    for step in range(n // (batch * world)):
        for rank in range(world):
            seen += batch_indices(n, batch, step, 0, 1, seed=5, rank=rank, world=world)
    assert sorted(seen) == list(range(n))  # one epoch: every sample exactly once
    assert batch_indices(n, batch, 3, 0, 1, 5) == batch_indices(n, batch, 3, 0, 1, 5)


def test_config_overrides_and_errors(tmp_path):
    cfg = load_train_config("configs/tiny.yaml", ["model.overrides.k_win=1",
                                                  "loss.use_hierarchical=false"])
    assert cfg.model.build().k_win == 1 and not cfg.loss.use_hierarchical
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "nope.yaml")


def test_every_loss_weight_is_settable_from_yaml(tmp_path):
    from humansplat.prior.parts import PART_NAMES
    from humansplat.train.losses import LossConfig

    y = tmp_path / "c.yaml"
    y.write_text("loss:\n  level_weights: [1.0, 0.5, 2.0]\n  part_weights: {head: 4.0}\n"
                 "  min_crop_pixels: 8\n")
    lc = load_train_config(y).loss.loss_config()
    assert lc.level_weights == (1.0, 0.5, 2.0) and lc.min_crop_pixels == 8
    want = list(LossConfig.part_weights)
    want[PART_NAMES.index("head")] = 4.0
    assert lc.part_weights == tuple(want)  # by name, over the paper's defaults
    lc = load_train_config(None, [f"loss.part_weights={[0.5] * len(PART_NAMES)}"]).loss
    assert lc.loss_config().part_weights == (0.5,) * len(PART_NAMES)
    for bad in ("loss.level_weights=[1, 1]", "loss.part_weights={tail: 1}",
                "loss.part_weights=[-1]"):
        with pytest.raises(ConfigError, match="weights"):
            load_train_config(None, [bad])


def test_background_workers_load_the_same_batches(toy):
    """data.num_workers > 0 loads in background processes, in the loop's order."""
    from humansplat.train.trainer import micro_batches

    def first(workers):
        cfg = _cfg("unused", 3, )
        cfg.data.num_workers = workers
        it = micro_batches(toy, cfg, start=1)
        return [next(it) for _ in range(2)]

    for a, b in zip(first(0), first(2)):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert torch.equal(a[k], b[k]), k


def test_a_non_finite_loss_skips_the_whole_step_and_keeps_the_data_order(tmp_path, toy,
                                                                          monkeypatch):
    """A NaN loss at the first micro-batch of a step: the step is skipped (on every process,
    after they agree), its other micro-batches are drained, and the next step reads exactly
    the micro-batches it would have read without the NaN."""
    import humansplat.train.trainer as tr

    loaded, used = [], []
    real_collate, real_loss = tr.collate_samples, tr.training_loss

    def collate(samples):
        loaded.append(real_collate(samples))
        return loaded[-1]

    def loss_fn(renders, batch, *a, **k):
        loss, terms = real_loss(renders, batch, *a, **k)
        used.append(next(i for i, b in enumerate(loaded) if b is batch))
        return (loss * float("nan") if len(used) == 1 else loss), terms

    monkeypatch.setattr(tr, "collate_samples", collate)
    monkeypatch.setattr(tr, "training_loss", loss_fn)
    cfg = _cfg(tmp_path, 3)
    cfg.optim.grad_accum = 2
    log: list[str] = []
    res = Trainer(cfg, dataset=toy, sample_dataset=toy, log=log.append, progress=False).train()
    assert res.steps == 3 and any("non-finite loss" in m for m in log)
    # micro-batch 1 (step 0's second) was drained unused; steps 1 and 2 read their own
    assert used == [0, 2, 3, 4, 5]


def test_photo_sheet_samples_are_drawn_reproducibly_and_train(tmp_path, toy):
    """loss.photo_sheet: that share of micro-batches is rendered as the app ships the splat
    (train.photo_sheet), the same ones again when a run resumes."""
    from humansplat.train.trainer import _sheet_draw

    cfg = _cfg(tmp_path / "a", 6)
    cfg.loss.photo_sheet = 0.75
    draws = [_sheet_draw(cfg, s, 0) for s in range(2000)]
    assert draws == [_sheet_draw(cfg, s, 0) for s in range(2000)]
    assert 0.72 < sum(draws) / len(draws) < 0.78
    straight = _train(cfg, toy)
    cfg_b = _cfg(tmp_path / "b", 6)
    cfg_b.loss.photo_sheet = 0.75
    _train(cfg_b, toy, until_step=3)
    resumed = _train(cfg_b, toy)
    wa = load_file(straight.model_dir / "model.safetensors")
    wb = load_file(resumed.model_dir / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6, msg=k)
    rows = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows)
