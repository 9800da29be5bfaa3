"""Every error faceops raises on purpose.

Each says what was wrong and, where it can, which file and what to do about
it. They all derive from ``FaceopsError`` so a caller (the CLI, a batch job)
can catch faceops' own complaints per file and carry on, without swallowing
real bugs.
"""


class FaceopsError(Exception):
    """Base class of every error faceops raises deliberately."""


class ImageReadError(FaceopsError, OSError):
    """An image file is missing, empty, not an image, or of an unsupported kind; the message names the file."""


class VideoOpenError(FaceopsError, OSError):
    """A video file (or stream) cannot be opened or yields no frame; the message names it."""


class NoFaceError(FaceopsError):
    """An operation needed a face and the detector found none (e.g. alignment of a photo with no face)."""


class ModelConfigError(FaceopsError, ValueError):
    """A model or pack is unknown, or its manifest entry lacks what the pipeline needs to run it."""
