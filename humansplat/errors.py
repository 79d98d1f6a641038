"""User-facing errors. Each says what is wrong, where we looked and how to fix it.

They subclass ValueError / FileNotFoundError so generic callers still catch them; the CLI and
the app print ``str(err)`` as a one-line message (no traceback for the user)."""


class HumanSplatError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidImageError(HumanSplatError, ValueError):
    """The input is not a usable image (not an image, corrupt, too small or too large)."""


class NoPersonError(HumanSplatError, ValueError):
    """No person was found in the photo."""


class MissingWeightsError(HumanSplatError, FileNotFoundError):
    """A checkpoint, model file or licensed asset could not be found or downloaded."""


class ConfigError(HumanSplatError, ValueError):
    """Inputs do not match what a model/config supports."""
