"""What the Gradio app (``app.py``) needs besides its layout: settings from the environment,
photo validation, per-session output folders, and the run that streams a reconstruction's
outputs as they become ready. Nothing here imports Gradio, so all of it is testable and usable
by other front ends."""

from .runner import (Failed, Finished, Preview, ProgressUpdate, RunOptions, SplatReady,
                     estimate_gpu_seconds, run_events, summary_markdown)
from .sessions import SessionStore
from .settings import AppSettings, load_pipeline
from .validation import PhotoCheck, check_photo, load_photo

__all__ = ["AppSettings", "load_pipeline", "SessionStore", "PhotoCheck", "check_photo",
           "load_photo", "RunOptions", "ProgressUpdate", "Preview", "SplatReady", "Finished",
           "Failed", "run_events", "estimate_gpu_seconds", "summary_markdown"]
