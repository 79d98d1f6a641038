"""``humansplat train``, ``humansplat average`` and ``humansplat eval`` (registered into the main
CLI)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError

__all__ = ["register"]


def _cmd_train(args) -> int:
    from .train.config import load_train_config
    from .train.trainer import Trainer

    overrides = list(args.set or [])
    if args.output:
        overrides.append(f"run.output_dir={args.output}")
    if args.max_steps is not None:
        overrides.append(f"run.max_steps={args.max_steps}")
    cfg = load_train_config(args.config, overrides)
    res = Trainer(cfg, progress=not args.quiet).train(max_minutes=args.max_minutes)
    print(json.dumps({"steps": res.steps, "final_loss": res.final_loss,
                      "model": str(res.model_dir), "seconds": round(res.seconds, 1),
                      "resumed_from": res.resumed_from}))
    return 0


def _cmd_eval(args) -> int:
    from .eval.evaluate import EvalConfig, evaluate
    from .pipeline.config import parse_setting

    ckpts = {}
    for item in args.checkpoint or []:
        name, _, path = item.partition("=")
        if not path:
            raise ConfigError(f"--checkpoint expects NAME=PATH, got {item!r}")
        ckpts[name] = path
    cfg = EvalConfig(root=args.data, split=args.split, checkpoints=ckpts,
                     baselines=tuple() if args.no_baselines else ("prior-mesh",
                                                                   "prior-gaussians"),
                     max_subjects=args.max_subjects, perceptual=args.perceptual,
                     faithful=not args.no_faithful, supersample=args.supersample,
                     pipeline_overrides=dict(parse_setting(kv) for kv in args.set),
                     output_dir=args.output)
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"eval {args.split}", dynamic_ncols=True)

    def progress(done, total, stage):
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(stage)
            bar.refresh()

    evaluate(cfg, progress=progress)
    if bar is not None:
        bar.close()
    sys.stdout.write((Path(args.output) / "results.md").read_text())
    return 0


def _cmd_average(args) -> int:
    from .train.average import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.output, args.weights)
    print(json.dumps({"model": str(out), "sources": args.checkpoints,
                      "weights": json.loads((out / "average.json").read_text())["weights"]}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train the reconstruction transformer (resumes from the "
                       "output folder's last checkpoint); multi-GPU: `accelerate launch -m "
                       "humansplat.cli train ...`")
    t.add_argument("--config", help="YAML/JSON training config (configs/*.yaml)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set model.overrides.k_win=1")
    t.add_argument("-o", "--output", help="output folder (run.output_dir)")
    t.add_argument("--max-steps", type=int, help="run.max_steps")
    t.add_argument("--max-minutes", type=float,
                   help="stop (checkpointed) after this much wall time; rerun to resume")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    a = sub.add_parser("average", help="average the weights of checkpoints fine-tuned from one "
                       "start (a model soup) into a new model folder")
    a.add_argument("checkpoints", nargs="+", help="model folders or Hub ids, one config")
    a.add_argument("-o", "--output", required=True, help="the new model folder")
    a.add_argument("--weights", type=float, nargs="+", help="one per checkpoint (default equal)")
    a.set_defaults(func=_cmd_average)

    e = sub.add_parser("eval", help="novel-view PSNR/SSIM/perceptual on a held-out split, "
                       "prior-only baselines and checkpoints in one run")
    e.add_argument("--data", default="data/synth", help="dataset root")
    e.add_argument("--split", default="test", help="test | hard")
    e.add_argument("--checkpoint", action="append", metavar="NAME=PATH",
                   help="a model folder to evaluate (repeat for ablations)")
    e.add_argument("--no-baselines", action="store_true", help="skip the prior-only rows")
    e.add_argument("--no-faithful", action="store_true",
                   help="skip the NAME+faithful rows (the splat the app ships per checkpoint)")
    e.add_argument("--max-subjects", type=int)
    e.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a pipeline.json field (JSON value, else text) for the NAME+faithful rows, "
                   "e.g. --set view_resolution=0")
    e.add_argument("--supersample", type=int, default=2,
                   help="render every method at this many times the targets' size and "
                   "average down, as the ground truth is (1: point-sampled)")
    e.add_argument("--perceptual", default="effnet-lite0",
                   help="effnet-lite0 | lpips-vgg | auto | none")
    e.add_argument("-o", "--output", default="eval", help="output folder")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)
