"""Package a training run as the bundled pipeline checkpoint, with a model card whose figures
come from `humansplat eval` result files (nothing typed by hand).

    python scripts/ship_checkpoint.py --run runs/tiny --eval runs/eval_test/results.json \
        --eval runs/eval_hard/results.json [--ablations runs/ablations/seed1/eval/results.json] \
        -o humansplat/checkpoints/humansplat-tiny

Same weights, new evaluation figures (the pipeline's settings changed, not the model): only
the card's split tables and "Full-body differences" are rewritten, the rest kept as it is:

    python scripts/ship_checkpoint.py --rescore humansplat/checkpoints/humansplat-tiny/README.md \
        --eval benchmarks/results/eval_sil_test.json --eval benchmarks/results/eval_sil_hard.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def _table(res: dict) -> list[str]:
    pk = res["perceptual"]
    lines = [f"| method | PSNR (dB) | SSIM | {pk} (lower is better) | PSNR upper body | "
             "PSNR face |", "|---|---|---|---|---|---|"]
    for name in res["methods"]:
        s = res["summary"][name]

        def g(level, key, fmt):
            v = s.get(level, {}).get(key)
            return "-" if v is None else fmt.format(v)
        lines.append(f"| {name} | {g('full_body', 'psnr', '{:.2f}')} | "
                     f"{g('full_body', 'ssim', '{:.4f}')} | {g('full_body', pk, '{:.4f}')} | "
                     f"{g('upper_body', 'psnr', '{:.2f}')} | {g('face', 'psnr', '{:.2f}')} |")
    return lines


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _findings(res: dict, model: str, who: str = "") -> list[str]:
    """Plain statements of which baseline the model beats on which metric (full body)."""
    pk = res["perceptual"]
    me = res["summary"][model]["full_body"]
    out = []
    for base in ("prior-gaussians", "prior-mesh"):
        if base not in res["summary"]:
            continue
        b = res["summary"][base]["full_body"]
        wins = [f"PSNR {me['psnr'] - b['psnr']:+.2f} dB" + (" (better)" if me["psnr"] > b["psnr"]
                                                          else " (worse)"),
                f"SSIM {me['ssim'] - b['ssim']:+.4f}" + (" (better)" if me["ssim"] > b["ssim"]
                                                       else " (worse)"),
                f"{pk} {me[pk] - b[pk]:+.4f}" + (" (better)" if me[pk] < b[pk] else " (worse)")]
        out.append(f"- {who + ' ' if who else ''}vs `{base}` on `{res['split']}`: "
                   + ", ".join(wins) + ".")
    return out


def _extra_data(roots: list[str]) -> str:
    """The card's sentence on ``data.extra_roots`` (more people, other seeds), or ""."""
    if not roots:
        return ""
    parts, names = [], []
    for root in roots:
        info = json.loads((Path(root) / "train" / "info.json").read_text())
        names.append(f"data/{Path(root).name}")
        parts.append(f"{info['count']} more from seed {info['seed']} (`humansplat data synth "
                     f"--out {names[-1]} --train {info['count']} --test 0 --hard 0 --seed "
                     f"{info['seed']}`)")
    return (" This run also trained on " + "; ".join(parts) + ": the same generator, other "
            f"people (`data.extra_roots: [{', '.join(names)}]`).")


def _threads(cfg: dict) -> str:
    n = int((cfg.get("run") or {}).get("threads") or 1)
    return "1 torch thread" if n == 1 else f"{n} torch threads"


def card(run: Path, evals: list[dict], ablations: dict | None, steps: int,
         hours: float, config_path: str = "configs/tiny.yaml", earlier: str = "") -> str:
    cfg = json.loads((run / "config.json").read_text())
    data_info = json.loads((Path(cfg["data"]["root"]) / "train" / "info.json").read_text())
    d = data_info["config"]
    o, lo = cfg["optim"], cfg["loss"]
    lines = [
        "# HumanSplat `tiny` (bundled, CPU-trained)", "",
        "The default reconstruction transformer of the `humansplat` package: pixel space, the "
        "input photo plus 4 orthogonal views from the offline projection synthesizer, 128 px, "
        "20,480 pixel-aligned Gaussians with a body-part label each, body-anchored depth "
        "(`ModelConfig.body_anchor`). It was trained so the app and the CLI run offline on a "
        "CPU. The same trainer runs on GPUs and on scans (`configs/paper.yaml`; the SV3D-latent "
        "scan data step of the paper preset is not implemented yet).", "",
        "## Training data", "",
        f"{data_info['count']} synthetic dressed people (seed {data_info['seed']}): Anny bodies "
        "of varied gender, age (teens up), weight, muscle, height and proportions, in natural "
        "and some challenging poses, dressed procedurally (shirts, t-shirts, jackets, trousers, "
        "shorts, loose skirts and dresses, hair volumes, shoes; solid, striped, checked and "
        "printed fabrics; skin tones light to dark). Per subject: the input photo "
        f"({d['input_size']} px, person filling {0.85:.0%} of the crop), the model's 5 input "
        f"views ({d['resolution']} px), and {sum(d['train_views'])} target views in 3 "
        f"hierarchical camera cycles (full body / upper body / face: {d['train_views']}) with "
        "RGB, mask and 24-part label maps. The body given to the model is the true body with "
        f"fitting noise (pose {d['noise_pose']} rad per joint, shape {d['noise_shape']}, "
        f"translation {d['noise_transl']} m, scale {d['noise_scale']:.1%}, yaw "
        f"{d['noise_yaw_deg']} deg)" + (
            "" if d.get("clothing") is None else
            ", grown to the photo's silhouette by `humansplat.prior.clothing` (settings: "
            f"{d['clothing'] or 'the defaults'}), as the pipeline does") +
        ". Regenerate: `humansplat data synth --out data/synth "
        f"--train {data_info['count']} --test 48 --hard 32 --seed {data_info['seed']}`." +
        _extra_data(cfg["data"].get("extra_roots") or []), "",
        "## Training", "",
    ]
    if cfg["model"].get("init_from"):
        lines += [f"Fine-tuned from earlier weights (`model.init_from`: "
                  f"`{cfg['model']['init_from']}`). {earlier}".strip(), ""]
    lines += [
        f"`humansplat train --config {config_path}` ({steps} steps, batch {o['batch_size']}"
        f", {sum(cfg['data']['targets'])} target views per sample {tuple(cfg['data']['targets'])}"
        f"), AdamW ({o['betas'][0]}, {o['betas'][1]}), lr {o['lr']} with {o['warmup_steps']} "
        f"warm-up steps then cosine, weight decay {o['weight_decay']} except norms and biases, "
        f"clip {o['grad_clip']}, EMA {o['ema_decay']} (these are the EMA weights). Loss: "
        f"L_Rec (MSE + mask MSE x {lo['lambda_m']} + {lo['perceptual']} perceptual x "
        f"{lo['lambda_p']}) + L_H (per part and camera level, head/hands/arms x2; MSE only on "
        f"CPU) + {lo['lambda_part']} x part cross-entropy" + (
            f"; {lo['photo_sheet']:.0%} of the samples rendered as the app ships the splat, "
            "the input view's Gaussians behind a sheet of the photo's pixels and the other "
            "views carved by its mask (`loss.photo_sheet`, `humansplat/train/photo_sheet.py`)"
            if lo.get("photo_sheet") else "") + f". Hardware: {_cpu()} "
        f"CPU, 2 cores shared with other jobs, {_threads(cfg)}, {hours:.1f} h wall time.",
        "",
    ]
    notes = run / "NOTES.txt"
    if notes.is_file():
        lines += ["Changes during the run: " + "; ".join(
            x.strip() for x in notes.read_text().splitlines() if x.strip()) + ".", ""]
    lines += [
        "## Evaluation", "",
        "`humansplat eval`: held-out subjects never seen in training, scored on every stored "
        "view around each (16 full-body azimuths at elevation 0, plus the upper-body and face "
        "cycles), white background, 128 px; every method rendered at twice that and "
        "averaged down, as the ground truth is. `prior-mesh` is the structure prior alone (the "
        "fitted body the model is given, textured from the photo by the projection "
        "synthesizer, rendered as a mesh), `prior-gaussians` the same as Gaussians (what "
        "`humansplat prior` exports); the model's row is its own Gaussians, and "
        "`NAME+faithful` the splat the app ships from them (`humansplat.refine`, the "
        "pipeline's CPU settings: the photo's own Gaussians, the generated back view's, the "
        "model's carved by the photo's mask and moved behind what it shows under their "
        "footprints and narrowed where they cross its silhouette, its input view's kept "
        "behind the photo's).", "",
    ]
    for res in evals:
        lines += [f"Split `{res['split']}` ({res['subjects']} subjects):", ""] + _table(res) + [""]
    model_name = [m for m in evals[0]["methods"] if not m.startswith("prior-")][0]
    lines += ["Full-body differences (the model minus the baseline):", ""]
    for res in evals:
        lines += _findings(res, model_name)
        if f"{model_name}+faithful" in res["summary"]:
            lines += _findings(res, f"{model_name}+faithful", "the shipped splat")
    lines += [""]
    if ablations is not None:
        first = Path(next(iter(ablations["checkpoints"].values()))).parent
        acfg = json.loads((first / "config.json").read_text())
        lines += ["### Ablations (each trained from scratch for "
                  f"{acfg['run']['max_steps']} steps, mask weight {acfg['loss']['lambda_m']}, "
                  f"otherwise as above; split `{ablations['split']}`)", ""] + _table(ablations) + [
                  "", "`full` = human prior on, K_win 2, L_H on; `no_human_prior` removes the "
                  "body tokens, the inter-attention and the body anchors."]
    lines += [
        "## Limitations", "",
        "- Trained only on synthetic people: real photos (real cloth, hair, lighting, "
        "backgrounds) are out of its training distribution; expect blur and colour bleeding "
        "at 128 px and on loose clothing.",
        "- It trusts the fitted body: the app's single-photo fit errs more than the training "
        "noise on unusual poses, and Gaussians start on that body.",
        "- No view-dependent colour (RGB per Gaussian), 128 px views, one person per photo.", "",
        "Code: MIT. Body model assets: Anny (CC0). Training data: generated, no personal data.",
    ]
    return "\n".join(lines) + "\n"


def rescore(card_path: str, evals: list[dict]) -> None:
    """Rewrite an existing card's evaluation tables and findings from ``evals`` in place."""
    path = Path(card_path)
    text = path.read_text()
    model = [m for m in evals[0]["methods"] if not m.startswith("prior-")][0]

    def between(t: str, head: str, body: str) -> str:  # replace the block after ``head``
        i = t.index(head) + len(head)
        return t[:i] + body + t[t.index("\n\n", i):]

    for res in evals:
        text = between(text, f"Split `{res['split']}` ({res['subjects']} subjects):\n\n",
                       "\n".join(_table(res)))
    lines = []
    for res in evals:
        lines += _findings(res, model)
        if f"{model}+faithful" in res["summary"]:
            lines += _findings(res, f"{model}+faithful", "the shipped splat")
    text = between(text, "Full-body differences (the model minus the baseline):\n\n",
                   "\n".join(lines))
    path.write_text(text)
    print(f"rescored {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rescore", metavar="CARD",
                    help="only rewrite this card's evaluation figures from --eval")
    ap.add_argument("--run")
    ap.add_argument("--eval", action="append", default=[])
    ap.add_argument("--ablations")
    ap.add_argument("--hours", type=float, help="training wall time")
    ap.add_argument("-o", "--out", default="humansplat/checkpoints/humansplat-tiny")
    ap.add_argument("--config", default="configs/tiny.yaml", help="the run's config, as cited")
    ap.add_argument("--earlier", default="", help="a sentence on the run fine-tuned from")
    args = ap.parse_args()
    if args.rescore:
        if not args.eval:
            ap.error("--rescore needs --eval files")
        rescore(args.rescore, [json.loads(Path(p).read_text()) for p in args.eval])
        return
    if args.run is None or args.hours is None:
        ap.error("--run and --hours are required (unless --rescore)")

    from humansplat.model import LatentReconstructionTransformer
    from humansplat.pipeline import HumanSplatPipeline, PipelineConfig

    run = Path(args.run)
    state = sorted((run / "checkpoints").glob("step-*"))[-1]
    steps = json.loads((state / "trainer_state.json").read_text())["step"]
    evals = [json.loads(Path(p).read_text()) for p in args.eval]
    abl = json.loads(Path(args.ablations).read_text()) if args.ablations else None
    text = card(run, evals, abl, steps, args.hours, args.config, args.earlier)
    model = LatentReconstructionTransformer.from_pretrained(str(run / "model"))
    data_cfg = json.loads((Path(json.loads((run / "config.json").read_text())["data"]["root"])
                           / "train" / "info.json").read_text())["config"]
    # the crop the body is fitted to = the training photos' size
    pipe = HumanSplatPipeline.from_components(PipelineConfig(crop_size=data_cfg["input_size"]),
                                              model=model, model_card=text)
    out = pipe.save_pretrained(args.out)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))


if __name__ == "__main__":
    main()
