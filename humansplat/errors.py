"""User-facing errors. Each says what is wrong, where we looked and how to fix it.

The one error policy: a :class:`HumanSplatError` is the user's to fix (a bad photo, a missing
checkpoint, a setting out of range) - the CLI prints its first line and exits 2, the app shows
it as a message. Anything else is a bug - the CLI prints the traceback and exits 1, the app
logs the traceback and shows a generic message. So code that detects bad *user input* raises
one of these; a plain ValueError/OSError from deep inside means our code is wrong.

They also subclass ValueError / FileNotFoundError / OSError so generic callers still catch
them."""


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


class InvalidFileError(HumanSplatError, ValueError):
    """An input file (a splat, a mesh, a result folder's metadata) is unreadable or not in the
    expected format."""


class MissingFileError(InvalidFileError, FileNotFoundError):
    """An input file does not exist."""


class OutputFolderError(HumanSplatError, OSError):
    """The output folder cannot be created or written."""
