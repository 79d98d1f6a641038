"""The app's input settings, each with one range: the sliders are built from it, the checks
before queueing use it, and the API docs and README quote it.

Values are taken exactly as sent: an API caller's JSON must carry the type a parameter takes
(``true``/``false`` for a switch, a whole number for the seed, a number for a ratio); nothing
is converted ("false" is not a boolean, 1.5 is not a seed). Each refusal is one line naming the
parameter, without server paths or framework internals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..prior.preprocess import FOREGROUND_RATIO as _FG_DEFAULT
from ..prior.preprocess import FOREGROUND_RATIO_RANGE as _FG_RANGE

__all__ = ["NumberInput", "SwitchInput", "TextInput", "PhotoInput", "SEED", "FOREGROUND_RATIO",
           "REMOVE_BACKGROUND", "RANDOMIZE", "NUM_STEPS", "GUIDANCE", "MOTION", "PART", "POSE",
           "IMAGE", "RECONSTRUCT_API", "RECONSTRUCT_UI", "check_inputs", "MAX_SEED"]

MAX_SEED = 2**31 - 1


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class NumberInput:
    """A number from ``lo`` to ``hi`` (both included); ``integer``: whole numbers only."""

    name: str
    label: str
    lo: float
    hi: float
    default: float
    step: float
    integer: bool = False

    @property
    def range_text(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} from {_fmt(self.lo)} to {_fmt(self.hi)}"

    def check(self, value: Any) -> str | None:
        # bool is an int in Python, but true/false is not a number in JSON
        ok_type = isinstance(value, int) and not isinstance(value, bool)
        if not self.integer:
            ok_type = ok_type or (isinstance(value, float) and math.isfinite(value))
        if not ok_type or not self.lo <= value <= self.hi:
            return f"{self.name} must be {self.range_text}; got {_shown(value)}."
        return None


@dataclass(frozen=True)
class SwitchInput:
    name: str
    label: str
    default: bool

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return None
        return f"{self.name} must be true or false (a JSON boolean); got {_shown(value)}."


@dataclass(frozen=True)
class TextInput:
    """A short string; what it may say is checked by its own validator (motions, parts)."""

    name: str
    max_len: int = 64

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and len(value) <= self.max_len:
            return None
        return f"{self.name} must be a short string; got {_shown(value)}."


@dataclass(frozen=True)
class PhotoInput:
    """A file the caller uploaded (``POST /gradio_api/upload``); where it may come from is
    decided by the session store (:meth:`SessionStore.upload_problem`)."""

    name: str = "image"

    def check(self, value: Any) -> str | None:
        if value is None:
            return f"{self.name}: please upload a photo of a person first (or pick an example)."
        if not isinstance(value, dict) or not isinstance(value.get("path"), str) \
                or not value["path"]:
            return (f"{self.name} must be a file uploaded to this server (POST "
                    "/gradio_api/upload, or gradio_client.handle_file).")
        return None


def _shown(value: Any) -> str:
    """The value as the caller sent it, briefly (a string in quotes, so "false" is visibly one)."""
    if isinstance(value, str):
        s = value if len(value) <= 24 else value[:21] + "..."
        return f"the string {s!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "nothing (null)"
    return f"a {type(value).__name__}"


#: the settings of one reconstruction (their ranges are also the README's)
SEED = NumberInput("seed", "Seed", 0, MAX_SEED, 0, 1, integer=True)
# one default and one range, defined where the crop uses them
FOREGROUND_RATIO = NumberInput("foreground_ratio", "Foreground ratio", *_FG_RANGE, _FG_DEFAULT, 0.01)
REMOVE_BACKGROUND = SwitchInput("remove_background", "Remove background", True)
RANDOMIZE = SwitchInput("randomize_seed", "Randomize seed", False)
NUM_STEPS = NumberInput("num_steps", "Diffusion steps (SV3D)", 1, 200, 50, 1, integer=True)
GUIDANCE = NumberInput("guidance", "Max guidance (SV3D, triangular CFG)", 1.0, 10.0, 2.5, 0.1)
IMAGE = PhotoInput("image")
MOTION = TextInput("motion")
PART = TextInput("part")
POSE = TextInput("pose")

#: the inputs of each endpoint, in order
RECONSTRUCT_API = (IMAGE, SEED, FOREGROUND_RATIO, REMOVE_BACKGROUND, NUM_STEPS, GUIDANCE)
RECONSTRUCT_UI = (IMAGE, SEED, RANDOMIZE, FOREGROUND_RATIO, REMOVE_BACKGROUND, NUM_STEPS,
                  GUIDANCE)


def check_inputs(spec, data) -> list[str | None]:
    """One message (or None) per input of ``spec`` for the JSON values ``data``; a wrong number
    of values is one message, on the first input."""
    names = ", ".join(p.name for p in spec)
    if not isinstance(data, list) or len(data) != len(spec):
        got = len(data) if isinstance(data, list) else 0
        return [f"this endpoint takes {len(spec)} input(s), in this order: {names}; "
                f"got {got}."] + [None] * (len(spec) - 1)
    return [p.check(v) for p, v in zip(spec, data)]
