"""Group faces by person: DBSCAN on cosine distance, in NumPy.

Given the embeddings of every face found in a set of photos, faces of one
person should end up in one group without knowing in advance how many people
there are. DBSCAN (Ester, Kriegel, Sander, Xu, KDD 1996) does exactly that:

* the **distance** of two faces is ``1 - cosine similarity``;
* two faces are **neighbours** when their distance is at most ``eps``; we use
  ``eps = 1 - threshold`` with the recognition model's same-person threshold,
  so "neighbours" means "the recogniser would call them the same person";
* a face with at least ``min_samples`` neighbours (itself included) is a
  **core** face; a cluster is everything reachable from a core face through
  chains of core faces (plus the non-core faces next to them);
* faces reachable from no core face are **noise** (label -1).

With ``min_samples=1`` (the default here) every face is a core face: clusters
are the connected components of the neighbour graph, and a person seen once
forms a cluster of one. Larger ``min_samples`` makes a cluster need that
many mutually close faces and leaves stragglers as noise.

``cluster_faces`` runs on a (N, D) array; ``cluster_photos`` detects and
embeds the faces of a list of photos first (the ``faceops cluster`` command).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceops.recognition import l2_normalize, threshold_for

log = logging.getLogger(__name__)

NOISE = -1


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
    """(N, N) matrix of ``1 - cosine similarity`` between the rows of ``embeddings``."""
    unit = l2_normalize(embeddings)
    return np.clip(1.0 - unit @ unit.T, 0.0, 2.0)


def dbscan(distances: np.ndarray, eps: float, min_samples: int = 1) -> np.ndarray:
    """DBSCAN labels (0, 1, ... in order of discovery; -1 = noise) from a precomputed distance matrix.

    Follows the original paper: visit points in index order; an unvisited
    core point starts a new cluster, grown breadth-first through the
    neighbourhoods of the core points it reaches.
    """
    distances = np.asarray(distances)
    n = distances.shape[0]
    if distances.shape != (n, n):
        raise ValueError(f"dbscan needs a square distance matrix, got shape {distances.shape}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    neighbours = [np.flatnonzero(row <= eps) for row in distances]  # includes the point itself
    is_core = np.array([len(nb) >= min_samples for nb in neighbours], dtype=bool)
    labels = np.full(n, NOISE, dtype=np.int64)
    cluster = 0
    for start in range(n):
        if labels[start] != NOISE or not is_core[start]:
            continue
        labels[start] = cluster
        queue = deque([start])
        while queue:
            point = queue.popleft()
            if not is_core[point]:
                continue  # a border point joins the cluster but does not extend it
            for other in neighbours[point]:
                if labels[other] == NOISE:
                    labels[other] = cluster
                    queue.append(other)
        cluster += 1
    return labels


def cluster_faces(embeddings: np.ndarray, model: str | None = None, eps: float | None = None,
                  min_samples: int = 1) -> np.ndarray:
    """Person labels for (N, D) face embeddings; ``eps`` defaults to ``1 - threshold`` of ``model``."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"cluster_faces needs an (N, D) array of embeddings, got shape {embeddings.shape}")
    if eps is None:
        if model is None:
            raise ValueError("cluster_faces needs model= (whose threshold sets eps) or eps=")
        eps = 1.0 - threshold_for(model)
    if len(embeddings) == 0:
        return np.zeros(0, dtype=np.int64)
    return dbscan(cosine_distances(embeddings), eps, min_samples)


@dataclass
class FaceRecord:
    """One face found while clustering photos: which photo, which box, and its person label."""

    path: Path
    index: int  # face number within its photo
    bbox: np.ndarray
    det_score: float
    embedding: np.ndarray
    label: int = NOISE

    def to_dict(self) -> dict:
        return {"path": str(self.path), "face": self.index, "bbox": np.round(self.bbox.astype(float), 1).tolist(),
                "det_score": round(self.det_score, 4)}


@dataclass
class ClusterReport:
    """The result of ``cluster_photos``: faces with labels, plus photos without faces or unreadable."""

    model: str
    eps: float
    faces: list[FaceRecord]
    photos_without_faces: list[Path]
    unreadable: dict[Path, str]

    def groups(self) -> dict[str, list[FaceRecord]]:
        """``person_1``, ``person_2``... (largest group first) -> its faces; noise faces under ``unassigned``."""
        by_label: dict[int, list[FaceRecord]] = {}
        for record in self.faces:
            by_label.setdefault(record.label, []).append(record)
        noise = by_label.pop(NOISE, [])
        ordered = sorted(by_label.values(), key=lambda records: (-len(records), str(records[0].path)))
        named = {f"person_{i + 1}": records for i, records in enumerate(ordered)}
        if noise:
            named["unassigned"] = noise
        return named

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "eps": round(self.eps, 4),
            "num_faces": len(self.faces),
            "num_people": sum(1 for name in self.groups() if name != "unassigned"),
            "groups": {name: [r.to_dict() for r in records] for name, records in self.groups().items()},
            "photos_without_faces": [str(p) for p in self.photos_without_faces],
            "unreadable": {str(p): reason for p, reason in self.unreadable.items()},
        }


def cluster_photos(paths, app, eps: float | None = None, min_samples: int = 1, progress: bool = False) -> ClusterReport:
    """Detect and embed every face of the photos at ``paths`` with ``app``, then cluster them.

    ``app`` is a FaceAnalysis with the 'recognition' module. Unreadable
    photos are reported (not raised); ``progress`` shows a tqdm bar.
    """
    from tqdm import tqdm

    from faceops.errors import ImageReadError
    from faceops.image_io import read_image

    records: list[FaceRecord] = []
    no_faces: list[Path] = []
    unreadable: dict[Path, str] = {}
    model = None
    for path in tqdm(list(paths), desc="faces", unit="photo", disable=not progress):
        path = Path(path)
        try:
            img = read_image(path)
        except ImageReadError as exc:
            log.warning("skipping %s", exc)
            unreadable[path] = str(exc)
            continue
        faces = app.get(img)
        if not faces:
            no_faces.append(path)
        for index, face in enumerate(faces):
            if face.embedding is None:
                raise ValueError("clustering needs embeddings: the FaceAnalysis must include the 'recognition' module")
            model = model or face.embedding_model
            records.append(FaceRecord(path, index, face.bbox, face.det_score, face.embedding))
    if model is None:
        model = app.models["recognition"].model
    eps = 1.0 - threshold_for(model) if eps is None else float(eps)
    if records:
        labels = cluster_faces(np.stack([r.embedding for r in records]), eps=eps, min_samples=min_samples)
        for record, label in zip(records, labels):
            record.label = int(label)
    return ClusterReport(model, eps, records, no_faces, unreadable)
