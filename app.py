"""HumanSplat web demo (Gradio Blocks; the Hugging Face Space entry point).

    python app.py                      # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME/PORT)

Layout and wiring only: the model lives in ``humansplat.pipeline``; validation, session folders,
the streaming run and the GPU-time estimate in ``humansplat.webapp``. Settings come from
environment variables (README, "Web demo"). Endpoints for API callers: ``/reconstruct``
(plain file paths: .ply, .splat, .mp4, views.png, meta.json), then, in the same session,
``/animate`` (an .mp4 of that result moving), ``/part_view`` (a .splat by body part) and
``/export`` (a rigged, textured .glb of the person).
"""

from __future__ import annotations

import spaces  # noqa: I001 - first: on ZeroGPU it must patch CUDA before torch is imported
from spaces.config import Config as SpacesConfig

import atexit
import logging
import random
import shutil
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from humansplat.errors import HumanSplatError, InvalidImageError
from humansplat.logs import configure as configure_logging
from humansplat.webapp import (MOTION_CHOICES, PART_VIEW_CHOICES, AppSettings, Failed,
                               Finished, PhotoCheck, Preview, ProgressUpdate, RunOptions,
                               SessionStore, SplatReady, animate_result, check_motion,
                               check_photo,
                               check_part_view, estimate_animation_gpu_seconds,
                               estimate_gpu_seconds, load_photo, load_pipeline, part_view,
                               run_events, summary_markdown)
from humansplat.webapp import inputs as I
from humansplat.webapp.avatar_export import (EXPORT_POSES, check_export_pose,
                                             estimate_export_gpu_seconds, export_result)
from humansplat.webapp.gate import Rule, install_gate
from humansplat.webapp.memory import limit_malloc_arenas, returning_memory

# our own log lines only; third-party ones with --verbose or HUMANSPLAT_LOG_LEVEL=debug
configure_logging("--verbose" in sys.argv[1:])
log = logging.getLogger("humansplat.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*")
                  if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
MAX_SEED = I.MAX_SEED

limit_malloc_arenas()  # before any worker thread: RSS stays flat over many runs
SETTINGS = AppSettings.from_env()
HEAVY, LIGHT, LIGHT_LIMIT = "device", "files", 2  # concurrency groups: device work, part views
ON_ZERO_GPU = SpacesConfig.zero_gpu
PIPE, NOTICES = load_pipeline(SETTINGS, on_zero_gpu=ON_ZERO_GPU)
ON_CPU = PIPE.device.type == "cpu" and not ON_ZERO_GPU
USES_DIFFUSION = PIPE.config.view_synthesizer == "sv3d"
DEFAULT_STEPS = int(getattr(PIPE.synthesizer, "default_steps", 50) or 50)
LIMITS = PhotoCheck(max_bytes=SETTINGS.max_upload_mb * 2**20,
                    max_megapixels=SETTINGS.max_megapixels)
# Runs write into private folders next to Gradio's file cache (never served); each file handed
# to a caller is published inside the cache under a random folder of its own (a hard link).
_UPLOADS = Path(get_upload_folder())
_UPLOADS.mkdir(parents=True, exist_ok=True)
_WORK = Path(tempfile.mkdtemp(prefix="humansplat-work-", dir=_UPLOADS.parent))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
SESSIONS = SessionStore(_UPLOADS / "humansplat-sessions", work_root=_WORK, upload_root=_UPLOADS,
                        ttl_s=SETTINGS.session_ttl_s)
SESSIONS.protect(EXAMPLES)
if ON_CPU:
    log.info("no GPU on this host: running the offline CPU path (%s)", PIPE)


def _photo_path(photo_input: gr.Image):
    """A ``preprocess`` for the photo input that hands over the uploaded file's path without
    opening it: our own loader reads and checks it (in the validator and the run), so a broken
    or fake file gets a readable message instead of the imaging library's. Gradio's own checks
    (the file must be an upload of this server) still run before this."""
    default = photo_input.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return default(payload)

    return preprocess


# --------------------------------------------------------------------------------------------
# the device part: only plain data (numpy photo, options, a folder name) crosses into it
# --------------------------------------------------------------------------------------------

def _gpu_seconds(photo, options: RunOptions, out_dir: str) -> int:
    return estimate_gpu_seconds(options, synthesizer=PIPE.config.view_synthesizer,
                                default_steps=DEFAULT_STEPS)


@spaces.GPU(duration=_gpu_seconds)
def reconstruct_on_device(photo, options: RunOptions, out_dir: str):
    yield from run_events(PIPE, photo, options, out_dir)


def _animation_seconds(result_dir: str, motion: str) -> int:
    return estimate_animation_gpu_seconds(SETTINGS.video_size)


@spaces.GPU(duration=_animation_seconds)
def animate_on_device(result_dir: str, motion: str) -> str:
    # the fitted body's model is the pipeline's (on the device); the splat is read from files
    return animate_result(result_dir, motion, body_model=PIPE.body_model,
                          size=SETTINGS.video_size)


def _export_seconds(result_dir: str, pose: str) -> int:
    return estimate_export_gpu_seconds()


@spaces.GPU(duration=_export_seconds)
def export_on_device(result_dir: str, pose: str) -> str:
    return export_result(result_dir, pose, body_model=PIPE.body_model)


# --------------------------------------------------------------------------------------------
# checks before queueing (types and ranges were checked on the raw JSON by the gate, see below)
# --------------------------------------------------------------------------------------------

def _photo_message(photo, request: gr.Request) -> str | None:
    """None when the photo can be used; it is then copied into the session's own folder, and
    the run reads that copy. A refused photo stays claimed by this session: it goes when the
    session ends, unless another session uses the same file."""
    if photo is None:
        return check_photo(None)
    try:
        own = SESSIONS.adopt_upload(request.session_hash, photo)
        load_photo(own, LIMITS)
    except (ValueError, InvalidImageError) as err:
        return str(err)
    return None


def _verdicts(messages) -> list:
    return [gr.validate(m is None, m or "") for m in messages]


def validate_ui(photo, seed, randomize, foreground_ratio, remove_background, num_steps, guidance,
                request: gr.Request):
    return _verdicts([_photo_message(photo, request)] + [None] * 6)


def validate_api(image, seed, foreground_ratio, remove_background, num_steps, guidance,
                 request: gr.Request):
    return _verdicts([_photo_message(image, request)] + [None] * 5)


# --------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------

def _prepare(photo, seed, foreground_ratio, remove_background, num_steps, guidance,
             request: gr.Request):
    try:
        loaded = load_photo(SESSIONS.adopt_upload(request.session_hash, photo), LIMITS)
    except (ValueError, InvalidImageError) as err:
        raise gr.Error(str(err), title="This photo cannot be used") from None
    options = RunOptions(seed=int(seed), foreground_ratio=float(foreground_ratio),
                         remove_background=bool(remove_background),
                         num_steps=int(num_steps) if USES_DIFFUSION else None,
                         guidance=float(guidance) if USES_DIFFUSION else None,
                         video_size=SETTINGS.video_size)
    return loaded, options


def _publisher(request: gr.Request):
    """Maps the session's private files to the public paths handed to the caller."""
    def publish(path):
        return SESSIONS.publish(request.session_hash, path)

    return publish


def _fail(event: Failed):
    title = "This photo cannot be used" if event.user_error else "Reconstruction failed"
    raise gr.Error(event.message, title=title, print_exception=False)


def reconstruct_ui(photo, seed, randomize, foreground_ratio, remove_background, num_steps,
                   guidance, request: gr.Request, progress=gr.Progress()):
    seed = random.randint(0, MAX_SEED) if randomize else int(seed)
    loaded, options = _prepare(photo, seed, foreground_ratio, remove_background, num_steps,
                               guidance, request)
    pub = _publisher(request)
    yield {seed_in: seed, body_out: None, views_out: None, latents_out: None, video_out: None,
           model_out: None, ply_btn: gr.DownloadButton(value=None, interactive=False),
           splat_btn: gr.DownloadButton(value=None, interactive=False), files_out: None,
           summary_out: "", part_in: gr.Radio(value="photo", interactive=False),
           animate_btn: gr.Button(interactive=False), animation_out: None}
    with returning_memory(), SESSIONS.run(request.session_hash) as run_dir, \
            closing(reconstruct_on_device(loaded, options, str(run_dir))) as events:
        for event in events:
            if isinstance(event, ProgressUpdate):
                progress(event.fraction, desc=event.message)
                yield gr.skip()
            elif isinstance(event, Preview):
                yield {body_out: pub(event.body), views_out: pub(event.views),
                       latents_out: pub(event.latents)}
            elif isinstance(event, SplatReady):  # Finished too
                f = {k: pub(v) for k, v in event.files.items()}
                # the viewer loads the compact .splat; the .ply download is the full file
                out = {model_out: f["splat"], summary_out: summary_markdown(event.meta),
                       ply_btn: gr.DownloadButton(value=f["ply"], interactive=True),
                       splat_btn: gr.DownloadButton(value=f["splat"], interactive=True),
                       part_in: gr.Radio(interactive=True),
                       animate_btn: gr.Button(interactive=True)}
                if isinstance(event, Finished):
                    out.update({video_out: f["video"], files_out: list(f.values())})
                yield out
            elif isinstance(event, Failed):
                if event.cancelled:
                    return
                _fail(event)


def reconstruct_api(image, seed=I.SEED.default, foreground_ratio=I.FOREGROUND_RATIO.default,
                    remove_background=I.REMOVE_BACKGROUND.default,
                    num_steps=I.NUM_STEPS.default, guidance=I.GUIDANCE.default,
                    request: gr.Request = None, progress=gr.Progress()):
    """Reconstruct a 3D Gaussian splat of the person in a photo.

    Args:
        image: a photo of one person (JPEG, PNG or WebP, within the server's size limits),
            uploaded by this client.
        seed: random seed (same seed, same result): {seed}.
        foreground_ratio: share of the crop the person fills: {foreground_ratio}.
        remove_background: composite the person on white before reconstruction: true or
            false.
        num_steps: diffusion steps (used only when the SV3D view synthesizer is active):
            {num_steps}.
        guidance: maximum classifier-free guidance (SV3D only): {guidance}.

    Returns:
        Paths of gaussians.ply (INRIA 3DGS layout, y-down), gaussians.splat, orbit.mp4 (360
        degree turntable), views.png (the 4 generated views) and meta.json (camera, crop box,
        settings, timings).
    """
    loaded, options = _prepare(image, seed, foreground_ratio, remove_background, num_steps,
                               guidance, request)
    pub = _publisher(request)
    with returning_memory(), SESSIONS.run(request.session_hash) as run_dir, \
            closing(reconstruct_on_device(loaded, options, str(run_dir))) as events:
        for event in events:
            if isinstance(event, ProgressUpdate):
                progress(event.fraction, desc=event.message)
            elif isinstance(event, Finished):
                f = event.files
                return tuple(pub(f[k]) for k in ("ply", "splat", "video", "views", "meta"))
            elif isinstance(event, Failed):
                _fail(event)
    raise gr.Error("The run ended without a result.")


# one range per setting: the API description quotes the same ranges the gate checks
reconstruct_api.__doc__ = reconstruct_api.__doc__.format(
    **{p.name: p.range_text for p in (I.SEED, I.FOREGROUND_RATIO, I.NUM_STEPS, I.GUIDANCE)})

NO_RESULT = ("There is no reconstruction in this session yet: reconstruct a photo first "
             "(API callers: call /reconstruct with the same client before this).")


def _on_latest_result(request: gr.Request, work, what: str):
    """Run ``work(result_dir)`` on the session's latest complete result (chosen by the server
    from the calling session, never from the call's data), its folder kept alive meanwhile;
    returns the published output. A readable error when there is none or the work fails."""
    with returning_memory(), SESSIONS.use(request.session_hash):
        result = SESSIONS.latest_result(request.session_hash)
        if result is None:
            raise gr.Error(NO_RESULT, title=f"Nothing to {what}", print_exception=False)
        try:
            return SESSIONS.publish(request.session_hash, work(str(result)))
        except HumanSplatError as err:  # the visitor's to fix (e.g. no such part here)
            raise gr.Error(str(err), title=f"Cannot {what} this", print_exception=False) \
                from None
        except Exception:  # noqa: BLE001 - reported without internals
            log.exception("%s failed", what)
            raise gr.Error(f"Could not {what} this reconstruction because of an internal "
                           "error (it is in the server log).", title=f"Cannot {what} this",
                           print_exception=False) from None


def animate(motion, request: gr.Request):
    """Animate the person of this session's latest reconstruction.

    Call /reconstruct first with the same client (its session): the Gaussians are bound to
    the fitted body and reposed frame by frame.

    Args:
        motion: walk, wave, turn (a full turn on the spot) or apose (a turntable of the
            person in the canonical pose).

    Returns:
        Path of an MP4 (H.264) of the person moving, seen from one fixed camera.
    """
    return _on_latest_result(request, lambda result: animate_on_device(result, motion),
                             "animate")


def export_avatar(pose, request: gr.Request):
    """A rigged, textured 3D model (binary glTF) of this session's latest reconstruction.

    Call /reconstruct first with the same client (its session). The mesh wraps the splat,
    its colours are baked from it, and it carries the fitted body's skeleton, skinning
    weights and the walk, wave and turn motions as animations (Blender, Unity, the web).

    Args:
        pose: the pose the mesh is stored in: input (as in the photo, lined up with the
            splat), apose or tpose.

    Returns:
        Path of a .glb file.
    """
    return _on_latest_result(request, lambda result: export_on_device(result, pose), "export")


def export_avatar_ui(pose, request: gr.Request):
    path = export_avatar(pose, request)
    return path, gr.DownloadButton(value=path, interactive=True)


def show_part_view(part, request: gr.Request):
    """The splat of this session's latest reconstruction coloured by body part.

    Call /reconstruct first with the same client (its session).

    Args:
        part: "all" (every Gaussian, coloured by its body part), a group (head, hands, arms,
            left_arm_full, right_arm_full, torso, upper_body, lower_body, legs, feet: only
            those Gaussians), a single part name (e.g. left_hand), or "photo" (the splat in
            its own colours).

    Returns:
        Path of a compact .splat (32 bytes a Gaussian, y-down, sorted for web viewers).
    """
    return _on_latest_result(request, lambda result: part_view(result, part),
                             "show the parts of")


# one input: Gradio reads a single gr.validate (a list is taken as valid)
def validate_motion(motion):
    return _verdicts([check_motion(motion)])[0]


def validate_part(part):
    return _verdicts([check_part_view(part)])[0]


def validate_pose(pose):
    return _verdicts([check_export_pose(pose)])[0]


def remember_photo(photo, request: gr.Request):
    # the session claims what this page received: no other session's clean-up deletes it,
    # and this session's deletes it when it ends (unless another session uses it)
    SESSIONS.claim_upload(request.session_hash, photo)


def open_session(request: gr.Request):
    SESSIONS.open(request.session_hash)


def close_session(request: gr.Request):
    SESSIONS.close(request.session_hash)


# --------------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------------

HEADER = """# HumanSplat: one photo in, a 3D Gaussian-splat human out
Upload a photo of one person (or pick an example) and press **Reconstruct**. The app finds the
person, fits a 3D body model, generates 4 views around them and predicts 3D Gaussians from all
of it ([paper](https://arxiv.org/abs/2406.12459)).
Outputs appear as each stage finishes."""

PRIVACY = f"""**Privacy.** Your photo and its results are kept only for your session: they are
deleted when you close this page (API sessions: when the client closes, or after
{SETTINGS.session_ttl_s // 60} minutes without activity). Each file's link is random and gives
that one file only. Nothing is stored for training. Please
upload only photos you have the right to use. Example photos: public domain (NASA) and CC0
(see `examples/README.md`)."""


def _notices() -> str:
    lines = list(NOTICES)
    if ON_CPU:
        lines.append("Running on **CPU** (no GPU on this host): the offline path is used and a "
                     "reconstruction takes some seconds; diffusion-based view synthesis needs "
                     "a GPU.")
    return "\n\n".join(f"> {line}" for line in lines)


def _slider(p: I.NumberInput, **kw) -> gr.Slider:
    """A slider over the setting's one range (the gate and the API docs use the same)."""
    kw.setdefault("value", p.default)
    return gr.Slider(p.lo, p.hi, step=p.step, label=p.label, **kw)


def _checkbox(p: I.SwitchInput) -> gr.Checkbox:
    return gr.Checkbox(p.default, label=p.label)


# the checkpoint's default, inside the one range the app takes
_DEFAULT_FG = min(max(PIPE.config.foreground_ratio, I.FOREGROUND_RATIO.lo),
                  I.FOREGROUND_RATIO.hi)
_DEFAULT_STEPS = min(max(DEFAULT_STEPS, I.NUM_STEPS.lo), I.NUM_STEPS.hi)

with gr.Blocks(title="HumanSplat", delete_cache=(600, SETTINGS.session_ttl_s)) as demo:
    gr.Markdown(HEADER)
    if _notices():
        gr.Markdown(_notices(), elem_id="notice")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            photo_in = gr.Image(label="Photo of a person", type="filepath", image_mode=None,
                                sources=["upload", "clipboard", "webcam"], height=360,
                                elem_id="photo")
            # per instance: a gr.Image subclass would make Gradio write an app.pyi stub here
            photo_in.preprocess = _photo_path(photo_in)
            with gr.Row():
                run_btn = gr.Button("Reconstruct", variant="primary", elem_id="run", scale=3)
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
            with gr.Accordion("Advanced options", open=False):
                with gr.Row():
                    seed_in = _slider(I.SEED)
                    randomize_in = _checkbox(I.RANDOMIZE)
                fg_in = _slider(I.FOREGROUND_RATIO, value=_DEFAULT_FG,
                                info="how much of the crop the person fills")
                bg_in = _checkbox(I.REMOVE_BACKGROUND)
                with gr.Group(visible=USES_DIFFUSION):
                    steps_in = _slider(I.NUM_STEPS, value=_DEFAULT_STEPS)
                    guidance_in = _slider(I.GUIDANCE)
            if EXAMPLES:
                gr.Examples([[str(p)] for p in EXAMPLES], inputs=[photo_in], label="Examples",
                            examples_per_page=12)
            gr.Markdown(PRIVACY, elem_id="privacy")
        with gr.Column(scale=3, min_width=420):
            with gr.Row():
                body_out = gr.Image(label="Fitted body", type="filepath", interactive=False,
                                    height=260, elem_id="body")
                video_out = gr.Video(label="Turntable", autoplay=True, loop=True,
                                     interactive=False, height=260, elem_id="turntable")
            with gr.Tabs():
                with gr.Tab("Generated views"):
                    views_out = gr.Image(label="Generated views (front, left, back, right)",
                                         type="filepath", interactive=False, height=200)
                with gr.Tab("Multi-view latents"):
                    latents_out = gr.Image(label="Multi-view latents (input view first)",
                                           type="filepath", interactive=False, height=200)
                with gr.Tab("Animate", elem_id="animate-tab"):
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=2, min_width=200):
                            motion_in = gr.Radio(list(MOTION_CHOICES), value="walk",
                                                 label="Motion", elem_id="motion")
                            animate_btn = gr.Button("Animate", interactive=False,
                                                    elem_id="animate")
                        animation_out = gr.Video(label="The reconstruction, reposed",
                                                 autoplay=True, loop=True, interactive=False,
                                                 height=260, elem_id="animation", scale=3)
                with gr.Tab("Avatar (.glb)", elem_id="avatar-tab"):
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=2, min_width=200):
                            pose_in = gr.Radio(list(EXPORT_POSES), value="input",
                                               label="Pose of the mesh", elem_id="pose")
                            avatar_btn = gr.Button("Make avatar", elem_id="make-avatar")
                            glb_btn = gr.DownloadButton("Download avatar (.glb)",
                                                        interactive=False, elem_id="glb")
                        avatar_out = gr.Model3D(label="Rigged, textured avatar (walking)",
                                                height=300, interactive=False,
                                                elem_id="avatar-viewer", scale=3)
            model_out = gr.Model3D(label="3D Gaussians (drag to orbit)", height=420,
                                   interactive=False, elem_id="viewer")
            part_in = gr.Radio(list(PART_VIEW_CHOICES), value="photo", label="Show in the viewer",
                               info="the splat in its own colours, coloured by body part, or "
                                    "one group of parts only", interactive=False,
                               elem_id="part-view")
            with gr.Row():
                ply_btn = gr.DownloadButton("Download .ply", interactive=False, elem_id="ply")
                splat_btn = gr.DownloadButton("Download .splat", interactive=False,
                                              elem_id="splat")
            with gr.Accordion("Settings and timings", open=True):
                summary_out = gr.Markdown(elem_id="summary")
            with gr.Accordion("All files", open=False):
                files_out = gr.File(label="All files", file_count="multiple",
                                    interactive=False)

    # API-only endpoint: the same inputs, plain file outputs (never shown)
    with gr.Row(visible=False):
        api_outputs = [gr.File(label=name) for name in
                       ("gaussians.ply", "gaussians.splat", "orbit.mp4", "views.png",
                        "meta.json")]
        api_btn = gr.Button(visible=False)
        motion_api_in = gr.Textbox(value="walk", label="motion")
        animation_api_out = gr.File(label="animation.mp4")
        animate_api_btn = gr.Button(visible=False)
        part_api_in = gr.Textbox(value="all", label="part")
        part_api_out = gr.File(label="parts.splat")
        part_api_btn = gr.Button(visible=False)
        pose_api_in = gr.Textbox(value="input", label="pose")
        avatar_api_out = gr.File(label="avatar.glb")
        export_api_btn = gr.Button(visible=False)

    ui_inputs = [photo_in, seed_in, randomize_in, fg_in, bg_in, steps_in, guidance_in]
    ui_outputs = [seed_in, body_out, views_out, latents_out, video_out, model_out, ply_btn,
                  splat_btn, files_out, summary_out, part_in, animate_btn, animation_out]
    run_event = run_btn.click(reconstruct_ui, ui_inputs, ui_outputs, validator=validate_ui,
                              concurrency_id=HEAVY, api_visibility="private")
    stop_btn.click(None, cancels=[run_event], api_visibility="private")
    api_event = api_btn.click(reconstruct_api,
                              [photo_in, seed_in, fg_in, bg_in, steps_in, guidance_in],
                              api_outputs, validator=validate_api, api_name="reconstruct",
                              concurrency_id=HEAVY)
    # animations are device work like reconstructions (one concurrency group, one queue
    # limit); part views are file conversions (about 0.1 s) with their own group, never
    # counted against the queue limit, so they never wait behind a reconstruction
    animate_ui_event = animate_btn.click(animate, [motion_in], [animation_out],
                                         validator=validate_motion, api_name="animate_ui",
                                         concurrency_id=HEAVY, api_visibility="private")
    animate_event = animate_api_btn.click(animate, [motion_api_in], [animation_api_out],
                                          validator=validate_motion, api_name="animate",
                                          concurrency_id=HEAVY)
    part_ui_event = part_in.input(show_part_view, [part_in], [model_out],
                                  validator=validate_part, api_name="part_view_ui",
                                  concurrency_id=LIGHT, concurrency_limit=LIGHT_LIMIT,
                                  api_visibility="private")
    part_event = part_api_btn.click(show_part_view, [part_api_in], [part_api_out],
                                    validator=validate_part, api_name="part_view",
                                    concurrency_id=LIGHT, concurrency_limit=LIGHT_LIMIT)
    # exports render the splat and bake a texture: device work, like animations
    export_ui_event = avatar_btn.click(export_avatar_ui, [pose_in], [avatar_out, glb_btn],
                                       validator=validate_pose, api_name="export_ui",
                                       concurrency_id=HEAVY, api_visibility="private")
    export_event = export_api_btn.click(export_avatar, [pose_api_in], [avatar_api_out],
                                        validator=validate_pose, api_name="export",
                                        concurrency_id=HEAVY)
    photo_in.change(remember_photo, [photo_in], None, queue=False, show_progress="hidden",
                    api_visibility="private")
    demo.load(open_session, api_visibility="private")
    demo.unload(close_session)

# Gradio's own max_size is not held under a burst and counts light calls too: the gate holds
# the limit for device work, checks every call's JSON exactly as sent (types, ranges, photo
# provenance) and keeps framework internals out of refusals (humansplat/webapp/gate.py).
# api_open=False: no direct /run/ route around the queue and its checks.
demo.queue(max_size=None, default_concurrency_limit=SETTINGS.concurrency, api_open=False)
GATE = install_gate(demo, {
    run_event["id"]: Rule(I.RECONSTRUCT_UI, heavy=True),
    api_event["id"]: Rule(I.RECONSTRUCT_API, heavy=True),
    animate_ui_event["id"]: Rule((I.MOTION,), heavy=True),
    animate_event["id"]: Rule((I.MOTION,), heavy=True),
    part_ui_event["id"]: Rule((I.PART,)),
    part_event["id"]: Rule((I.PART,)),
    export_ui_event["id"]: Rule((I.POSE,), heavy=True),
    export_event["id"]: Rule((I.POSE,), heavy=True),
}, SESSIONS, size=SETTINGS.queue_size, heavy_concurrency_id=HEAVY)

if __name__ == "__main__":
    if SETTINGS.mcp_server:
        import importlib.util

        if importlib.util.find_spec("mcp") is None:
            raise SystemExit("HUMANSPLAT_MCP=1 needs the MCP extra: pip install 'gradio[mcp]'")
    demo.launch(max_file_size=SETTINGS.max_file_size, allowed_paths=[],
                mcp_server=SETTINGS.mcp_server, theme=gr.themes.Soft())
