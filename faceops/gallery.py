"""A gallery of known people: enroll faces, identify new ones, take attendance.

Identification is recognition against many: a new face's embedding is
compared (cosine similarity) with every enrolled embedding, each person
scores the best similarity among their embeddings, and the best person is
the answer if that score reaches the recognition model's threshold
(``faceops.recognition.THRESHOLDS``); otherwise the face is unknown.

Enrolling several photos of one person (different days, poses, lighting)
helps: a new photo then only has to resemble one of them.

A gallery belongs to one recognition model: embeddings of another model live
in an unrelated space, so mixing them is refused (when enrolling, searching
and loading). It is saved as a ``.npz`` file holding the names, the
embeddings (unit length, one row each) and the model name::

    app = FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "recognition"])
    gallery = Gallery("w600k_mbf")
    gallery.enroll_photo("alice", read_image("alice1.jpg"), app)
    gallery.save("class.npz")
    present, absent, unknown = attendance(Gallery.load("class.npz"), read_image("class.jpg"), app)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceops.errors import FaceopsError, NoFaceError
from faceops.face import Face
from faceops.recognition import EmbeddingMismatchError, check_model, l2_normalize, threshold_for

log = logging.getLogger(__name__)

GALLERY_FORMAT_VERSION = 1


class GalleryFileError(FaceopsError, OSError):
    """A gallery file is missing, unreadable, or not a faceops gallery; the message names it."""


@dataclass(frozen=True)
class Match:
    """One candidate of a search: a person, their best similarity, and whether it reaches the threshold."""

    name: str
    similarity: float
    same: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "similarity": round(self.similarity, 4), "same": self.same}


@dataclass
class AttendanceResult:
    """``present``: name -> (similarity, Face); ``absent``: names nobody matched; ``unknown_faces``: unmatched faces."""

    present: dict[str, tuple[float, Face]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    unknown_faces: list[Face] = field(default_factory=list)

    def __iter__(self):
        """Unpacks as ``present, absent, unknown_faces = attendance(...)``."""
        return iter((self.present, self.absent, self.unknown_faces))


def largest_face(faces: list[Face]) -> Face:
    """The face with the largest box (the subject of a portrait)."""
    return max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))


def _embedding_of(face: Face, model: str) -> np.ndarray:
    if face.embedding is None:
        raise ValueError("the face has no embedding: the FaceAnalysis needs the 'recognition' module")
    if face.embedding_model != model:
        raise EmbeddingMismatchError(f"the face was embedded by {face.embedding_model!r} but the gallery holds "
                                     f"{model!r} embeddings; use a FaceAnalysis whose pack recognises with {model!r}")
    return np.asarray(face.embedding)


class Gallery:
    """Named unit embeddings of one recognition ``model`` (several per person allowed)."""

    def __init__(self, model: str = "w600k_mbf", threshold: float | None = None):
        self.model = check_model(model)
        self.threshold = threshold_for(model) if threshold is None else float(threshold)
        self.names: list[str] = []
        self._embeddings: list[np.ndarray] = []

    # -- building -------------------------------------------------------------------------

    def enroll(self, name: str, embedding) -> None:
        """Add one embedding (a vector, or a Face embedded by this gallery's model) for person ``name``."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a person's name must be a non-empty string, got {name!r}")
        vector = _embedding_of(embedding, self.model) if isinstance(embedding, Face) else np.asarray(embedding)
        if self._embeddings and vector.size != self._embeddings[0].size:
            raise EmbeddingMismatchError(f"embedding of length {vector.size} does not fit this gallery's "
                                         f"{self._embeddings[0].size}-D {self.model} embeddings")
        self.names.append(name.strip())
        self._embeddings.append(l2_normalize(vector.ravel())[0])

    def enroll_photo(self, name: str, img_bgr: np.ndarray, app) -> Face:
        """Enroll the largest face of a photo (``app``: a FaceAnalysis with recognition); returns that face."""
        faces = app.get(img_bgr)
        if not faces:
            raise NoFaceError(f"no face found in the photo to enroll for {name!r}")
        if len(faces) > 1:
            log.info("enrolling %s: %d faces in the photo, using the largest", name, len(faces))
        face = largest_face(faces)
        self.enroll(name, face)
        return face

    # -- querying -------------------------------------------------------------------------

    @property
    def embeddings(self) -> np.ndarray:
        """(N, D) unit rows, one per enrolled embedding (row i belongs to ``names[i]``)."""
        if not self._embeddings:
            return np.zeros((0, 0))
        return np.stack(self._embeddings)

    @property
    def people(self) -> list[str]:
        """Enrolled names, each once, in enrolment order."""
        return list(dict.fromkeys(self.names))

    def __len__(self) -> int:
        return len(self.people)

    def similarities(self, embedding) -> dict[str, float]:
        """name -> the best cosine similarity of ``embedding`` to that person's enrolled embeddings."""
        vector = _embedding_of(embedding, self.model) if isinstance(embedding, Face) else np.asarray(embedding)
        if not self._embeddings:
            return {}
        if vector.size != self._embeddings[0].size:
            raise EmbeddingMismatchError(f"a {vector.size}-D embedding cannot be searched in a gallery of "
                                         f"{self._embeddings[0].size}-D {self.model} embeddings")
        scores = self.embeddings @ l2_normalize(vector.ravel())[0]
        best: dict[str, float] = {}
        for name, score in zip(self.names, scores):
            best[name] = max(best.get(name, -1.0), float(score))
        return best

    def search(self, embedding, top_k: int = 1) -> list[Match]:
        """The ``top_k`` most similar people, best first, each with the threshold decision."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        ranked = sorted(self.similarities(embedding).items(), key=lambda item: -item[1])[:top_k]
        return [Match(name, score, score >= self.threshold) for name, score in ranked]

    def identify(self, embedding) -> Match | None:
        """The best match if it reaches the threshold, else ``None`` (an unknown face)."""
        matches = self.search(embedding, top_k=1)
        return matches[0] if matches and matches[0].same else None

    # -- files ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the gallery to ``path`` (.npz; the suffix is added if missing)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        # The threshold is not stored: a loaded gallery uses the model's documented one (or the caller's).
        np.savez(path, names=np.array(self.names, dtype=str), embeddings=self.embeddings.astype(np.float32),
                 model=np.array(self.model), format_version=np.array(GALLERY_FORMAT_VERSION))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | None = None, threshold: float | None = None) -> "Gallery":
        """Read a gallery saved by ``save``; with ``model``, refuse one made by another recognition model.

        ``threshold`` overrides the model's documented one.
        """
        path = Path(path)
        if not path.is_file():
            raise GalleryFileError(f"{path}: no such gallery file (create one with `faceops enroll`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                names = [str(n) for n in data["names"]]
                embeddings = np.asarray(data["embeddings"], dtype=np.float64)
                stored_model = str(data["model"])
        except (OSError, ValueError, KeyError) as exc:
            raise GalleryFileError(f"{path}: not a faceops gallery file ({exc})") from exc
        if model is not None and stored_model != model:
            raise EmbeddingMismatchError(f"{path} holds {stored_model} embeddings, but faces are being recognised "
                                         f"with {model}; re-enroll with {model} or recognise with {stored_model}")
        gallery = cls(stored_model, threshold=threshold)  # also refuses an unknown model name
        if len(names) != len(embeddings):
            raise GalleryFileError(f"{path}: {len(names)} names but {len(embeddings)} embeddings")
        for name, vector in zip(names, embeddings):
            gallery.enroll(name, vector)
        return gallery

    def __repr__(self) -> str:
        return (f"Gallery({self.model!r}, {len(self)} people, {len(self.names)} embeddings, "
                f"threshold={self.threshold})")


def attendance(gallery: Gallery, class_photo: np.ndarray, app) -> AttendanceResult:
    """Who of ``gallery`` is in ``class_photo``: ``(present, absent, unknown_faces)``.

    Every face of the photo (found by ``app``, a FaceAnalysis with
    recognition) is compared with every person. Matches are assigned
    greedily, most similar pair first, so a person is present at most once
    and a face counts for at most one person; pairs below the gallery's
    threshold are never assigned. Faces left over are unknown; people left
    over are absent.
    """
    faces = app.get(class_photo)
    result = AttendanceResult()
    pairs = []
    for index, face in enumerate(faces):
        pairs += [(score, index, name) for name, score in gallery.similarities(face).items()]
    matched_faces: set[int] = set()
    for score, index, name in sorted(pairs, key=lambda p: -p[0]):
        if score < gallery.threshold:
            break
        if name in result.present or index in matched_faces:
            continue
        result.present[name] = (score, faces[index])
        matched_faces.add(index)
    result.absent = [name for name in gallery.people if name not in result.present]
    result.unknown_faces = [face for index, face in enumerate(faces) if index not in matched_faces]
    return result
