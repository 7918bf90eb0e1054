"""Reference baselines: what the station's images looked like when the model was trained.

A reference holds the aggregated histograms, every scalar statistic of every frame it was
built from (in order, so the charts can be calibrated on the batch means), the mean
luminance grid, and the embedding's mean, principal components and novelty thresholds.
It is saved as one ``.npz`` file (no pickles) and identified by the SHA-256 of its content.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from engine.core.errors import StationError
from engine.monitoring.stats import SCALARS, FrameStats

FORMAT = "inspection-station-reference/1"
EMBED_COMPONENTS = 16


class ReferenceError(StationError, ValueError):
    """A reference cannot be built or loaded; one sentence."""


@dataclass
class EmbeddingModel:
    """Principal components of the reference embeddings, and how far reference frames lie from them."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D), orthonormal rows
    variances: np.ndarray  # (k,)
    projected: np.ndarray  # (N, k): the reference frames in the component space
    t2_limit: float  # 99.9 % quantile of Hotelling's T^2 of held-out reference frames
    spe_limit: float  # 99.9 % quantile of their squared residual
    bandwidth: float  # Gaussian kernel width for MMD (median pairwise distance)

    @staticmethod
    def _pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = min(EMBED_COMPONENTS, vt.shape[0], x.shape[1])
        return mean, vt[:k], (s[:k] ** 2) / max(1, len(x) - 1) + 1e-12

    @staticmethod
    def _scores(x: np.ndarray, mean: np.ndarray, comps: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, ...]:
        xc = x - mean
        z = xc @ comps.T
        return ((z * z) / var).sum(1), ((xc - z @ comps) ** 2).sum(1)

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> EmbeddingModel:
        x = np.asarray(embeddings, np.float64)
        if x.ndim != 2 or len(x) < 10:
            raise ReferenceError("an embedding model needs at least 10 embeddings")
        # Limits from held-out halves: a frame the components were not fitted on lies further out.
        half = len(x) // 2
        held: list[tuple[np.ndarray, np.ndarray]] = []
        for fit_part, test_part in ((x[:half], x[half:]), (x[half:], x[:half])):
            held.append(cls._scores(test_part, *cls._pca(fit_part)))
        t2_held = np.concatenate([h[0] for h in held])
        spe_held = np.concatenate([h[1] for h in held])
        mean, comps, var = cls._pca(x)
        z = (x - mean) @ comps.T
        sub = z[:: max(1, len(z) // 300)]
        d = np.sqrt(np.maximum(0, (sub * sub).sum(1)[:, None] + (sub * sub).sum(1)[None] - 2 * sub @ sub.T))
        bw = float(np.median(d[d > 0])) if np.any(d > 0) else 1.0
        return cls(mean, comps, var, z, float(np.quantile(t2_held, 0.999)),
                   float(np.quantile(spe_held, 0.999)) + 1e-12, bw)

    def novelty(self, embedding: np.ndarray) -> float:
        """How unlike the reference a frame is: 1.0 is the reference's own 99.9 % quantile."""
        xc = np.asarray(embedding, np.float64) - self.mean
        z = xc @ self.components.T
        t2 = float(((z * z) / self.variances).sum())
        spe = float(((xc - z @ self.components) ** 2).sum())
        return max(t2 / self.t2_limit, spe / self.spe_limit)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.asarray(embeddings, np.float64) - self.mean) @ self.components.T


@dataclass
class Reference:
    hist: np.ndarray  # (4, 256) pixel counts summed over the reference frames: luma, b, g, r
    scalars: dict[str, np.ndarray]  # each statistic, per frame, in order
    grid: np.ndarray  # (8, 8) mean luminance grid
    meta: dict[str, Any] = field(default_factory=dict)
    embedding: EmbeddingModel | None = None
    id: str = ""
    grids: np.ndarray | None = None  # (N, 8, 8): every frame's grid, in order (for the uniformity drift)
    cell_medians: np.ndarray | None = None  # (N, 8, 8): every frame's cell medians, in order (static-pattern drift)

    @property
    def frames(self) -> int:
        return len(next(iter(self.scalars.values())))

    # -------------------------------------------------------------- building

    @classmethod
    def build(cls, stats: Iterable[tuple[FrameStats, np.ndarray | None]], meta: dict[str, Any],
              progress: Callable[[int], None] | None = None) -> Reference:
        hist = np.zeros((4, 256), np.int64)
        grid = np.zeros((8, 8), np.float64)
        grids: list[np.ndarray] = []
        medians: list[np.ndarray] = []
        cols: dict[str, list[float]] = {k: [] for k in SCALARS}
        embeds: list[np.ndarray] = []
        n = 0
        for st, emb in stats:
            hist += st.hist
            grid += st.grid
            grids.append(st.grid.astype(np.float32))
            if st.cell_median is not None:
                medians.append(st.cell_median.astype(np.float32))
            for k in SCALARS:
                cols[k].append(st.scalars[k])
            if emb is not None:
                embeds.append(np.asarray(emb, np.float32).ravel())
            n += 1
            if progress:
                progress(n)
        if n < 50:
            raise ReferenceError(f"a reference needs at least 50 frames, got {n}")
        meta = {**meta, "format": FORMAT, "frames": n, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime())}
        model = EmbeddingModel.fit(np.stack(embeds)) if len(embeds) >= 10 else None
        meta["embedding_dim"] = int(embeds[0].size) if embeds else 0
        ref = cls(hist, {k: np.asarray(v, np.float64) for k, v in cols.items()}, grid / n, meta, model,
                  grids=np.stack(grids), cell_medians=np.stack(medians) if len(medians) == n else None)
        ref.id = ref.content_hash()
        return ref

    # -------------------------------------------------------------- files

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {"hist": self.hist, "grid": self.grid}
        if self.grids is not None:
            arrays["grids"] = self.grids
        if self.cell_medians is not None:
            arrays["cell_medians"] = self.cell_medians
        for k, v in self.scalars.items():
            arrays[f"scalar.{k}"] = v
        if self.embedding is not None:
            e = self.embedding
            arrays.update({"emb.mean": e.mean, "emb.components": e.components, "emb.variances": e.variances,
                           "emb.projected": e.projected,
                           "emb.limits": np.array([e.t2_limit, e.spe_limit, e.bandwidth])})
        return arrays

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({k: v for k, v in self.meta.items() if k != "created_utc"}, sort_keys=True).encode())
        for name, arr in sorted(self._arrays().items()):
            a = np.ascontiguousarray(arr)
            h.update(name.encode())
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays = self._arrays()
        arrays["meta"] = np.frombuffer(json.dumps({**self.meta, "id": self.id}).encode(), np.uint8)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Reference:
        path = Path(path)
        if not path.is_file():
            raise ReferenceError(f"reference file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ReferenceError(f"{path} is not a reference file ({e})") from None
        try:
            meta = json.loads(bytes(arrays.pop("meta")).decode())
            if meta.get("format") != FORMAT:
                raise ReferenceError(f"{path} is a reference of an unknown format {meta.get('format')!r}")
            scalars = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("scalar.")}
            missing = sorted(set(SCALARS) - set(scalars))
            if missing:
                raise ReferenceError(f"{path} lacks the statistic {missing[0]!r}")
            emb = None
            if "emb.mean" in arrays:
                t2, spe, bw = (float(v) for v in arrays["emb.limits"])
                emb = EmbeddingModel(arrays["emb.mean"], arrays["emb.components"], arrays["emb.variances"],
                                     arrays["emb.projected"], t2, spe, bw)
            stored_id = meta.pop("id", "")
            ref = cls(arrays["hist"], scalars, arrays["grid"], meta, emb, grids=arrays.get("grids"),
                      cell_medians=arrays.get("cell_medians"))
        except (KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ReferenceError(f"{path} is not a complete reference file (missing {e})") from None
        ref.id = ref.content_hash()
        if stored_id and stored_id != ref.id:
            raise ReferenceError(f"{path} has been altered: its content no longer matches its id")
        return ref


def dumps_summary(ref: Reference) -> str:
    buf = io.StringIO()
    buf.write(f"reference {ref.id[:16]}  frames {ref.frames}  source {ref.meta.get('source', '?')}\n")
    for k, v in ref.scalars.items():
        buf.write(f"  {k:<14} mean {v.mean():10.4f}  sd {v.std():9.4f}\n")
    return buf.getvalue()
