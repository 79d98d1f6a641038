"""The ``humansplat`` command line.

The error policy (humansplat.errors): a :class:`~humansplat.errors.HumanSplatError` is the
user's to fix - one line on stderr, exit 2 (``--debug`` shows the traceback); anything else is
a bug - the traceback, exit 1. In a batch, a photo's HumanSplatError is reported on its line
and the other photos go on."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from .errors import ConfigError, HumanSplatError, MissingWeightsError, OutputFolderError
from .logs import configure as configure_logging

EXIT_BAD_INPUT = 2  # the user's to fix (a HumanSplatError)
EXIT_BUG = 1  # anything else: a traceback


def _cmd_render(args: argparse.Namespace) -> int:
    """Re-render a saved .ply from chosen orbit views into PNGs (and optionally a video)."""
    import numpy as np
    import torch
    from PIL import Image

    from .cameras import orbit_cameras
    from .io import load_ply, save_orbit_video
    from .io.video import orbit_framing
    from .render import rasterize

    g = load_ply(args.ply)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.input_camera:
        _render_input_view(g, Path(args.input_camera), out)
    target, radius = orbit_framing(g)
    radius = args.radius or radius
    az = [float(a) for a in args.azimuths]
    cams = orbit_cameras(az, args.elevation, radius, target=target,
                         width=args.size, height=args.size)
    bg = torch.ones(len(cams), 3)
    with torch.no_grad():
        img, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities,
                              g.colors if g.sh is None else g.sh, cams.viewmats, cams.Ks,
                              args.size, args.size, backgrounds=bg, sh_degree=g.sh_degree)
    for a, im in zip(az, img):
        path = out / f"view_az{a:05.1f}.png"
        Image.fromarray((im.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
        print(path)
    if args.video:
        path = save_orbit_video(g, out / "orbit.mp4", size=args.size)
        print(path)
    return 0


def _render_input_view(g, meta_path: Path, out: Path) -> None:
    """Render ``g`` at the input camera recorded in a reconstruction's meta.json: the colour
    image and its alpha (silhouette) as PNGs."""
    import json

    import numpy as np
    import torch
    from PIL import Image

    from .render import rasterize

    try:
        cam = json.loads(meta_path.read_text())["camera"]
        vm = torch.tensor(cam["viewmat"], dtype=torch.float32).reshape(1, 4, 4)
        K = torch.tensor(cam["K"], dtype=torch.float32).reshape(1, 3, 3)
        w, h = (int(v) for v in cam["image_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{meta_path} holds no usable input camera ({err})") from None
    with torch.no_grad():
        img, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities,
                                  g.colors if g.sh is None else g.sh, vm, K, w, h,
                                  backgrounds=torch.ones(1, 3), sh_degree=g.sh_degree)
    for name, im in (("input_view.png", img[0]), ("input_view_alpha.png", alpha[0, ..., 0])):
        path = out / name
        Image.fromarray((im.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
        print(path)


def _cmd_prior(args: argparse.Namespace) -> int:
    """``reconstruct --prior-only`` with a crop size: the same pipeline (without a model),
    the same folder layout, meta.json schema and atomic saving."""
    run = argparse.Namespace(**vars(args))
    run.prior_only, run.crop_size = True, args.size
    for name, value in (("checkpoint", None), ("revision", None), ("token", None),
                        ("seed", 0), ("steps", None), ("guidance", None), ("device", None),
                        ("dtype", None), ("batch_size", 1), ("video_size", 256),
                        ("no_progress", True)):
        setattr(run, name, value)
    return _cmd_reconstruct(run)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _expand_images(items: list[str]) -> list[str]:
    """Folders become their image files (sorted, not recursive); anything else is kept as
    given, so a missing file fails on its own line later."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            out.extend(found if found else [item])  # an empty folder fails as one item
        else:
            out.append(item)
    return out


def _unique_names(images: list[str]) -> list[str]:
    """One output folder name per image: the file's stem, numbered when stems repeat."""
    seen: dict[str, int] = {}
    names = []
    for image in images:
        stem = Path(image).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written there (one clear error if not)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".humansplat-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputFolderError(f"cannot write to the output folder {folder}: "
                                f"{err.strerror or err}") from None


def _distributed():
    """(process index, process count, device) under ``accelerate launch``/torchrun with
    more than one process, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    state = PartialState()  # sets up the process group and picks cuda:LOCAL_RANK
    if state.num_processes > 1:
        return state.process_index, state.num_processes, state.device
    # CPU processes (torchrun, accelerate without a CPU backend) get no process group; the
    # shards need none (no communication), so the launcher's RANK/WORLD_SIZE decide
    return (int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]), state.device)


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    """Reconstruct each photo into OUT/<photo name>/ with the pipeline (see module docs)."""
    from tqdm.auto import tqdm

    from .pipeline import STAGES, HumanSplatPipeline, PipelineConfig
    from .reconstruction import silhouette_iou_at_input

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.video_size < 16:
        raise ConfigError(f"--video-size must be >= 16, got {args.video_size}")
    out_root = Path(args.output)
    images = _expand_images(args.images)
    names = _unique_names(images)
    jobs = list(zip(range(1, len(images) + 1), images, names))
    tag, device = "", args.device
    dist = _distributed()
    if dist is not None:  # each process takes every n-th photo
        rank, world, dist_device = dist
        jobs = jobs[rank::world]
        device = device or dist_device
        tag = f"[process {rank}/{world}] "
    _check_writable(out_root)
    if args.prior_only:
        crop = getattr(args, "crop_size", None)
        pipe = HumanSplatPipeline.prior_only(
            PipelineConfig() if crop is None else PipelineConfig(crop_size=crop),
            device=device, dtype=args.dtype)
    else:
        pipe = HumanSplatPipeline.from_pretrained(args.checkpoint, revision=args.revision,
                                                  device=device, dtype=args.dtype,
                                                  token=args.token)
    n = len(images)
    failed = 0
    bar = tqdm(total=len(jobs) * len(STAGES), unit="stage", disable=args.no_progress,
               file=sys.stderr, dynamic_ncols=True, leave=False)
    say = (lambda msg: tqdm.write(msg, file=sys.stdout)) if not args.no_progress else print

    def fail(i: int, image: str, err: HumanSplatError) -> None:
        nonlocal failed
        failed += 1
        msg = _one_line(err)
        if msg.startswith(f"{image}: "):  # the loader names the file already
            msg = msg[len(image) + 2:]
        line = f"{tag}[{i}/{n}] {image}: error: {msg}"
        if args.no_progress:
            print(line, file=sys.stderr)
        else:
            tqdm.write(line, file=sys.stderr)

    for start in range(0, len(jobs), args.batch_size):
        chunk = jobs[start:start + args.batch_size]
        prepared = []
        for k, (i, image, name) in enumerate(chunk):
            base = (start + k) * len(STAGES)

            def progress(done, total, stage, base=base, image=image):
                bar.n = base + min(done, total)
                bar.set_postfix_str(f"{Path(image).name}: {stage}", refresh=False)
                bar.refresh()
            try:
                t0 = time.perf_counter()
                p = pipe.prepare(image, seed=args.seed, foreground_ratio=args.foreground_ratio,
                                 remove_background=not args.keep_background,
                                 num_steps=args.steps, guidance=args.guidance,
                                 progress=progress)
                prepared.append((i, image, name, p, t0, base))
            except HumanSplatError as err:  # the user's: reported per image, the rest go on
                if args.debug:
                    raise
                fail(i, image, err)
                bar.n = base + len(STAGES)
                bar.refresh()
        if not prepared:
            continue
        try:
            recs = pipe.finish([job[3] for job in prepared])
        except HumanSplatError as err:
            if args.debug:
                raise
            for i, image, *_ in prepared:
                fail(i, image, err)
            continue
        for (i, image, name, _, t0, base), rec in zip(prepared, recs):
            bar.n = max(bar.n, base + len(STAGES))
            bar.set_postfix_str(f"{Path(image).name}: saving", refresh=True)
            try:
                rec.timings["total"] = time.perf_counter() - t0
                rec.meta["timings_s"] = dict(rec.timings)
                paths = rec.save(out_root / name, video=not args.no_video,
                                 video_size=args.video_size)
                iou = silhouette_iou_at_input(rec.gaussians, rec.fit.viewmat, rec.fit.K,
                                              rec.fit.image_size, rec.mask)
            except HumanSplatError as err:
                if args.debug:
                    raise
                fail(i, image, err)
                continue
            fit_iou = rec.meta["fit"].get("silhouette_iou")
            say(f"{tag}[{i}/{n}] {image}: {len(rec.gaussians)} Gaussians, "
                f"input-view IoU {iou:.2f}, fit IoU "
                f"{fit_iou if fit_iou is None else round(fit_iou, 2)}, "
                f"{time.perf_counter() - t0:.1f} s -> {paths['meta'].parent}")
    bar.close()
    if failed:
        print(f"{tag}{failed} of {len(jobs)} photo(s) failed", file=sys.stderr)
    return EXIT_BAD_INPUT if failed else 0


def _cmd_push(args: argparse.Namespace) -> int:
    """Upload a pipeline checkpoint (save_pretrained layout + model card) to the Hub."""
    from .pipeline import HumanSplatPipeline

    pipe = HumanSplatPipeline.from_pretrained(args.checkpoint, device="cpu")
    info = pipe.push_to_hub(args.repo, token=args.token, private=args.private or None,
                            revision=args.revision, commit_message=args.message)
    url = getattr(info, "commit_url", None) or getattr(info, "pr_url", None) or info
    print(f"pushed {pipe.source.id if pipe.source else 'pipeline'} to {args.repo}: {url}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    """Fetch a pipeline checkpoint from the Hub (safetensors/json/md only) and check it."""
    from .hub import download
    from .pipeline import MODEL_FILES, PIPELINE_CONFIG_NAME, PipelineConfig

    folder = download(args.repo, revision=args.revision, token=args.token,
                      local_dir=args.local_dir)
    cfg = folder / PIPELINE_CONFIG_NAME
    if cfg.is_file():
        PipelineConfig.read(cfg)  # parses and validates
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if not cfg.is_file() and missing:
        raise MissingWeightsError(f"{args.repo} downloaded to {folder} but holds neither "
                                  f"{PIPELINE_CONFIG_NAME} nor {' + '.join(MODEL_FILES)}")
    print(folder)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humansplat", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--verbose", action="store_true", help="also show third-party libraries' "
                   "log lines and warnings (same as HUMANSPLAT_LOG_LEVEL=debug)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="re-render a saved Gaussian .ply from orbit views")
    r.add_argument("ply")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--azimuths", nargs="+", default=["0", "90", "180", "270"],
                   help="orbit azimuths in degrees (0 = the person's front)")
    r.add_argument("--elevation", type=float, default=0.0)
    r.add_argument("--radius", type=float, default=None, help="default: fit the splat")
    r.add_argument("--size", type=int, default=512)
    r.add_argument("--video", action="store_true", help="also write a 360-degree orbit.mp4")
    r.add_argument("--input-camera", metavar="META_JSON", default=None,
                   help="also render at the input camera of a reconstruction's meta.json "
                   "(input_view.png and its alpha, input_view_alpha.png)")
    r.set_defaults(func=_cmd_render)

    pr = sub.add_parser("prior", help="prior-only reconstruction: fitted, textured body as "
                        "Gaussians (no learned model; the baseline the transformer must beat)")
    pr.add_argument("images", nargs="+")
    pr.add_argument("-o", "--output", required=True, help="output folder (one subfolder per photo)")
    pr.add_argument("--size", type=int, default=512, help="crop resolution")
    pr.add_argument("--foreground-ratio", type=float, default=None,
                    help="share of the crop the person fills (default: the pipeline's)")
    pr.add_argument("--keep-background", action="store_true")
    pr.add_argument("--no-video", action="store_true")
    pr.set_defaults(func=_cmd_prior)

    rc = sub.add_parser("reconstruct", help="reconstruct photos into Gaussian splats with the "
                        "full pipeline (body prior, view synthesis, reconstruction model)")
    rc.add_argument("images", nargs="+", help="photos, or folders of photos")
    rc.add_argument("-o", "--output", required=True,
                    help="output folder (one subfolder per photo; complete when it holds "
                    "meta.json)")
    rc.add_argument("--checkpoint", default=None, help="pipeline folder or Hub repo id "
                    "(default: $HUMANSPLAT_CHECKPOINT or the bundled humansplat-tiny)")
    rc.add_argument("--revision", default=None, help="Hub revision of --checkpoint")
    rc.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / hf auth login)")
    rc.add_argument("--seed", type=int, default=0)
    rc.add_argument("--foreground-ratio", type=float, default=None,
                    help="share of the crop the person fills (default: the checkpoint's)")
    rc.add_argument("--keep-background", action="store_true")
    rc.add_argument("--steps", type=int, default=None, help="diffusion steps (SV3D only)")
    rc.add_argument("--guidance", type=float, default=None, help="max CFG scale (SV3D only)")
    rc.add_argument("--prior-only", action="store_true",
                    help="no learned model: the fitted body textured from the photo (baseline)")
    rc.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
    rc.add_argument("--dtype", default=None, choices=["fp32", "fp16", "bf16"],
                    help="CUDA mixed precision (default: bf16 where supported, else fp16)")
    rc.add_argument("--batch-size", type=int, default=1,
                    help="photos per reconstruction-model forward")
    rc.add_argument("--no-video", action="store_true")
    rc.add_argument("--video-size", type=int, default=256, help="turntable size in px")
    rc.add_argument("--no-progress", action="store_true", help="no progress bar")
    rc.set_defaults(func=_cmd_reconstruct)

    pu = sub.add_parser("push", help="upload a pipeline checkpoint to the Hugging Face Hub")
    pu.add_argument("--repo", required=True, help="owner/name")
    pu.add_argument("--checkpoint", default=None, help="folder or repo to push (default: the "
                    "bundled checkpoint)")
    pu.add_argument("--revision", default=None, help="branch to push to (created if needed)")
    pu.add_argument("--private", action="store_true")
    pu.add_argument("--token", default=None)
    pu.add_argument("--message", default="Upload HumanSplat pipeline", help="commit message")
    pu.set_defaults(func=_cmd_push)

    dl = sub.add_parser("download", help="fetch a pipeline checkpoint from the Hub "
                        "(safetensors only) into the HF cache or --local-dir")
    dl.add_argument("--repo", required=True, help="owner/name")
    dl.add_argument("--revision", default=None)
    dl.add_argument("--local-dir", default=None)
    dl.add_argument("--token", default=None)
    dl.set_defaults(func=_cmd_download)

    from .cli_train import register as register_train

    register_train(sub)  # train, eval
    from .extras import register as register_extras

    register_extras(sub)  # animate, parts, compact, export
    from .train.dataset import register as register_data

    register_data(sub)  # data synth, data preview
    return p


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.verbose)  # before the commands import mediapipe & co.
        from .runtime import fix_threads

        fix_threads()  # once, before any run ($HUMANSPLAT_THREADS)
        return args.func(args)
    except HumanSplatError as err:
        if args.debug:
            raise
        print(f"humansplat {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - a bug: the whole traceback, for the report
        traceback.print_exc()
        print(f"humansplat {args.command}: internal error (a bug in humansplat; the traceback "
              "above says where)", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
