"""What the Gradio app (``app.py``) needs besides its layout: settings from the environment,
the inputs and their ranges, photo validation, private per-session folders and the files
published from them, the gate in front of the queue, the run that streams a reconstruction's
outputs as they become ready, and the views of a finished result (the person animated, the
splat by body part). Nothing here imports Gradio, so all of it is testable and usable by
other front ends."""

from .result_views import (MOTION_CHOICES, PART_VIEW_CHOICES, animate_result, check_motion,
                           check_part_view, estimate_animation_gpu_seconds, part_view)
from .runner import (Failed, Finished, Preview, ProgressUpdate, RunOptions, SplatReady,
                     estimate_gpu_seconds, run_events, summary_markdown)
from .gate import QueueGate, Rule, install_gate
from .sessions import SessionStore
from .settings import AppSettings, load_pipeline
from .validation import PhotoCheck, check_photo, load_photo

__all__ = ["AppSettings", "load_pipeline", "SessionStore", "PhotoCheck", "check_photo",
           "load_photo", "RunOptions", "ProgressUpdate", "Preview", "SplatReady", "Finished",
           "Failed", "run_events", "estimate_gpu_seconds", "summary_markdown", "MOTION_CHOICES",
           "PART_VIEW_CHOICES", "animate_result", "part_view", "check_motion",
           "check_part_view", "estimate_animation_gpu_seconds", "QueueGate", "Rule",
           "install_gate"]
