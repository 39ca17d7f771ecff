"""K-means pretraining targets for one HuBERT iteration: the library of ``hubert-ecg cluster`` (the command's
arguments and ``main`` are :mod:`hubert_ecg_cli.cluster`).

HuBERT (Hsu et al., "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units",
2021) and HuBERT-ECG (Coppola et al., medRxiv doi 10.1101/2024.11.14.24317328) predict, for every masked frame, a
cluster id ("hidden unit"):

* iteration 1: k-means (K = 100 in the paper) of hand-made features of every frame; here 13 MFCCs with their
  deltas and delta-deltas (39 values, librosa) of the 100 Hz lead-concatenated input, computed on the model's frame
  grid (``config.inputs_to_logits_ratio`` samples between frames, ``config.num_frames(6000)`` frames per window: 64
  and 93 for the released feature encoder);
* iteration n > 1: k-means (500-1000 clusters in the paper) of the hidden states of one transformer layer of the
  previous iteration's model (layers 8-9 of the paper's models).

The command builds (or reuses) a window dataset (:mod:`hubert_ecg.training.window_dataset`), computes features of a random
sample of windows, fits k-means on them (scikit-learn ``MiniBatchKMeans``, or faiss when installed and asked
for), assigns every frame of every window to its nearest centroid and writes, in ``output_dir``:

* ``labels.npy``: int16/int32 (num_windows, 93) cluster ids, row i for row i of the window dataset (memory-mappable);
* ``kmeans.npz`` (``centroids`` (K, D) float32, ``mean`` / ``scale`` (D,) of the feature standardisation) and
  ``kmeans.json`` (features, K, layer, model, backend): the fitted k-means model;
* ``cluster_stats.json``: cluster sizes, used clusters, entropy / perplexity of the cluster distribution, inertia,
  and (with ``compare_labels_dir``) the normalised mutual information with the previous iteration's labels.

Under ``accelerate launch`` feature extraction and assignment are sharded across processes (contiguous window
ranges); process 0 fits k-means. The output directory must be on a file system that every process sees.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from transformers.utils import logging

from .window_dataset import (  # noqa: F401  (LABELS_FILE, LABELS_INFO_FILE, load_labels: re-exported)
    LABELS_FILE,
    LABELS_INFO_FILE,
    load_labels,
    build_windows_on_all_processes,
    distributed_on_cpu,
    is_window_dataset,
    iter_batches,
    load_window_dataset,
    shard_range,
)

logger = logging.get_logger(__name__)

__all__ = [
    "KMeansCodebook",
    "cluster_statistics",
    "fit_kmeans",
    "hidden_state_features",
    "load_labels",
    "mfcc_features",
    "run_clustering",
]

KMEANS_FILE = "kmeans.npz"
KMEANS_INFO_FILE = "kmeans.json"
STATS_FILE = "cluster_stats.json"



# ---------------------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------------------


def mfcc_features(
    input_values: np.ndarray,
    config=None,
    sampling_rate: int = 100,
    n_fft: int = 128,
    n_mfcc: int = 13,
    n_mels: int = 20,
) -> np.ndarray:
    """MFCCs with deltas and delta-deltas on the model's frame grid (iteration-1 features of HuBERT / HuBERT-ECG).

    The grid is the feature encoder's: hop ``config.inputs_to_logits_ratio`` samples, receptive field
    ``config.receptive_field`` samples, ``config.num_frames(samples)`` frames (64, 82 and 93 for 6000 samples with
    the released encoder). Frame ``t`` is the ``n_fft``-sample (1.28 s) Hann window centred on the centre of the
    receptive field of frame ``t``; the input is reflect-padded so that exactly ``num_frames`` frames come out.
    MFCCs: ``librosa.feature.mfcc`` (``n_mels`` mel bands between 0 Hz and the Nyquist frequency, DCT-II, 13
    coefficients); deltas: ``librosa.feature.delta`` (width 9).

    Args:
        input_values: float (windows, samples) model inputs, 6000 samples = 12 leads x 5 s at 100 Hz.
        config: the :class:`~hubert_ecg.HuBERTECGConfig` whose frame grid is used (default: the released one).
        sampling_rate: of ``input_values`` in Hz.

    Returns:
        float32 (windows, num_frames, 3 * n_mfcc), (windows, 93, 39) for 6000 samples and the released encoder.

    Raises:
        ValueError: if ``input_values`` is not 2-D, or ``librosa`` is not installed.
    """
    try:
        import librosa
    except ImportError as error:  # pragma: no cover - librosa is a dependency of the training extra
        raise ValueError("MFCC targets need librosa: pip install librosa") from error
    x = np.asarray(input_values, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"input_values must have shape (windows, samples), got {x.shape}")
    if config is None:
        from ..configuration import HuBERTECGConfig

        config = HuBERTECGConfig()
    hop_length = int(config.inputs_to_logits_ratio)
    num_frames = config.num_frames(x.shape[1])
    if num_frames < 1:
        raise ValueError(f"input_values have {x.shape[1]} samples, fewer than one frame ({config.receptive_field})")
    centre = config.receptive_field // 2  # of frame 0, in samples
    left = n_fft // 2 - centre
    right = max(0, (num_frames - 1) * hop_length + n_fft - left - x.shape[1])
    padded = np.pad(x, ((0, 0), (max(left, 0), right)), mode="reflect")
    mfcc = librosa.feature.mfcc(
        y=padded, sr=sampling_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, center=False,
        n_mels=n_mels, fmin=0.0, fmax=sampling_rate / 2,
    )[..., :num_frames]  # (windows, n_mfcc, frames)
    delta = librosa.feature.delta(mfcc, order=1, axis=-1)
    delta2 = librosa.feature.delta(mfcc, order=2, axis=-1)
    return np.concatenate([mfcc, delta, delta2], axis=1).transpose(0, 2, 1).astype(np.float32)


def hidden_state_features(model, input_values: np.ndarray, layer: int, device=None) -> np.ndarray:
    """Output of transformer layer ``layer`` (1-based) for every frame: later-iteration features (HuBERT).

    Args:
        model: a :class:`~hubert_ecg.HuBERTECGModel` (or a model with a ``hubert_ecg`` backbone) in eval mode.
        input_values: float (windows, 6000).
        layer: 1..num_hidden_layers; ``hidden_states[layer]`` of the backbone (no masking, no dropout).

    Returns:
        float32 (windows, frames, hidden_size).
    """
    import torch

    backbone = getattr(model, "hubert_ecg", model)
    with torch.no_grad():
        values = torch.from_numpy(np.asarray(input_values, dtype=np.float32)).to(device or backbone.device)
        out = backbone(values, output_hidden_states=True, return_dict=True)
    return out.hidden_states[layer].float().cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# k-means
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class KMeansCodebook:
    """A fitted k-means model: standardisation ``(x - mean) / scale`` followed by nearest-centroid assignment.

    Attributes:
        centroids: float32 (K, D) in standardised feature space.
        mean, scale: float32 (D,); zeros and ones when features are not standardised.
        info: what the features were (``features``, ``layer``, ``model``, ``backend``, ``inertia``...).
    """

    centroids: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardise features (..., D)."""
        return (np.asarray(features, dtype=np.float32) - self.mean) / self.scale

    def assign(self, features: np.ndarray, return_distances: bool = False):
        """Nearest centroid of every feature vector.

        Args:
            features: float (..., D) raw features.

        Returns:
            int64 labels (...,), and with ``return_distances`` the squared distances (...,) in standardised space.

        Raises:
            ValueError: if the feature dimension differs from the centroids'.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.shape[-1] != self.centroids.shape[1]:
            raise ValueError(
                f"features have dimension {features.shape[-1]}, the k-means model {self.centroids.shape[1]}"
            )
        x = self.transform(features)
        shape = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        c = self.centroids
        distances = (flat**2).sum(1, keepdims=True) - 2.0 * flat @ c.T + (c**2).sum(1)[None, :]
        labels = distances.argmin(1)
        if return_distances:
            best = np.maximum(distances[np.arange(len(flat)), labels], 0.0)
            return labels.reshape(shape), best.reshape(shape)
        return labels.reshape(shape)

    def save(self, directory: str | os.PathLike):
        """Write ``kmeans.npz`` (arrays) and ``kmeans.json`` (info) into ``directory``."""
        directory = Path(directory)
        np.savez(directory / KMEANS_FILE, centroids=self.centroids, mean=self.mean, scale=self.scale)
        (directory / KMEANS_INFO_FILE).write_text(json.dumps(self.info, indent=2))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "KMeansCodebook":
        """Read a codebook written by :meth:`save` (no pickle involved).

        Raises:
            ValueError: if ``directory`` has no ``kmeans.npz``.
        """
        directory = Path(directory)
        if not (directory / KMEANS_FILE).exists():
            raise ValueError(f"{directory} holds no {KMEANS_FILE}; run `hubert-ecg cluster` first")
        arrays = np.load(directory / KMEANS_FILE)
        info_path = directory / KMEANS_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(arrays["centroids"], arrays["mean"], arrays["scale"], info)


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "--backend faiss needs the faiss package: pip install 'hubert-ecg[faiss]' (faiss-cpu or faiss-gpu)"
        ) from error
    return faiss


def fit_kmeans(
    features: np.ndarray,
    num_clusters: int,
    standardize: bool = True,
    backend: str = "sklearn",
    seed: int = 0,
    batch_size: int = 10000,
    max_iter: int = 100,
    n_init: int = 3,
) -> KMeansCodebook:
    """Fit k-means on feature vectors.

    Args:
        features: float (frames, D).
        num_clusters: K.
        standardize: standardise each dimension to zero mean and unit variance first (for MFCCs).
        backend: ``"sklearn"`` (``MiniBatchKMeans``), ``"faiss"`` (``faiss.Kmeans``; ImportError without faiss) or
            ``"auto"`` (faiss when importable).

    Returns:
        :class:`KMeansCodebook` with ``info["inertia_per_frame"]`` (mean squared distance on the fit sample).

    Raises:
        ValueError: if there are fewer frames than clusters.
        ImportError: for ``backend="faiss"`` without faiss.
    """
    x = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, features.shape[-1])
    if len(x) < num_clusters:
        raise ValueError(f"k-means with {num_clusters} clusters needs at least as many frames, got {len(x)}")
    mean = x.mean(0) if standardize else np.zeros(x.shape[1], np.float32)
    scale = x.std(0) + 1e-6 if standardize else np.ones(x.shape[1], np.float32)
    z = np.ascontiguousarray((x - mean) / scale, dtype=np.float32)
    if backend == "auto":
        try:
            _faiss()
            backend = "faiss"
        except ImportError:
            backend = "sklearn"
    if backend == "faiss":
        faiss = _faiss()
        kmeans = faiss.Kmeans(z.shape[1], num_clusters, niter=max_iter, nredo=n_init, seed=seed, verbose=False)
        kmeans.train(z)
        centroids = np.asarray(kmeans.centroids, dtype=np.float32)
    else:
        from sklearn.cluster import MiniBatchKMeans

        kmeans = MiniBatchKMeans(
            n_clusters=num_clusters, batch_size=min(batch_size, len(z)), max_iter=max_iter, n_init=n_init,
            random_state=seed, compute_labels=False,
        )
        kmeans.fit(z)
        centroids = kmeans.cluster_centers_.astype(np.float32)
    codebook = KMeansCodebook(centroids, mean.astype(np.float32), scale.astype(np.float32))
    _, distances = codebook.assign(x, return_distances=True)
    codebook.info = {"backend": backend, "num_clusters": num_clusters, "fit_frames": len(x),
                     "feature_dim": int(x.shape[1]), "standardized": standardize,
                     "inertia_per_frame": float(distances.mean())}
    return codebook


def cluster_statistics(labels: np.ndarray, num_clusters: int) -> dict:
    """Statistics of a label array: how evenly the clusters are used.

    Args:
        labels: int (...) cluster ids in ``[0, num_clusters)``.

    Returns:
        dict with ``frames``, ``num_clusters``, ``used_clusters``, ``entropy_bits``, ``perplexity`` (2**entropy:
        the effective number of clusters), ``largest_cluster_fraction``, ``cluster_size_min/median/max`` and
        ``cluster_sizes`` (list of K counts).
    """
    counts = np.bincount(np.asarray(labels).reshape(-1).astype(np.int64), minlength=num_clusters)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    return {
        "frames": int(counts.sum()),
        "num_clusters": int(num_clusters),
        "used_clusters": int((counts > 0).sum()),
        "entropy_bits": entropy,
        "perplexity": float(2**entropy),
        "largest_cluster_fraction": float(p.max()),
        "cluster_size_min": int(counts.min()),
        "cluster_size_median": float(np.median(counts)),
        "cluster_size_max": int(counts.max()),
        "cluster_sizes": counts.tolist(),
    }


# ---------------------------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------------------------


def _feature_fn(args, device):
    """(callable input_values (n, 6000) -> features (n, frames, D), description dict)."""
    if args.features == "mfcc":
        from ..configuration import HuBERTECGConfig

        hop = int(HuBERTECGConfig().inputs_to_logits_ratio)  # the released frame grid, as every preset has
        return mfcc_features, {"features": "mfcc", "n_mfcc": 13, "deltas": 2, "frame_hop": hop}
    from ..modeling import HuBERTECGModel

    model = HuBERTECGModel.from_pretrained(args.model).to(device).eval()
    num_layers = model.config.num_hidden_layers
    layer = args.layer if args.layer is not None else min(9, num_layers)
    if not 1 <= layer <= num_layers:
        raise ValueError(f"--layer must lie in [1, {num_layers}] for {args.model}, got {layer}")
    return (lambda values: hidden_state_features(model, values, layer, device)), {
        "features": "hidden", "layer": layer, "model": args.model,
    }


def run_clustering(args) -> dict:
    """Run ``hubert-ecg cluster`` in this process (one of ``accelerate launch``'s processes, or alone). ``args``:
    the attributes of :class:`hubert_ecg_cli.cluster.ClusterArguments` (any dataclass with them).

    Returns:
        the cluster statistics written to ``cluster_stats.json`` (on every process).

    Raises:
        ValueError: for a missing window dataset without ``--data``, bad arguments, or labels that do not match.
    """
    from accelerate import PartialState

    state = PartialState(cpu=distributed_on_cpu())
    started = time.time()
    out = Path(args.output_dir)
    tmp = out / "tmp"
    if state.is_main_process:
        tmp.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()

    # 1. windows (sharded preprocessing)
    if not is_window_dataset(args.windows_dir):
        if not args.data:
            raise ValueError(f"--windows_dir {args.windows_dir} is not a window dataset yet; pass --data to build it")
        build_windows_on_all_processes(args.data, args.windows_dir, args.stride_seconds, args.exclude)
    dataset = load_window_dataset(args.windows_dir)
    feature_fn, description = _feature_fn(args, state.device)

    # 2. features of a random sample of windows, sharded; process 0 fits k-means
    codebook = _fit_codebook(args, state, dataset, feature_fn, description, out, tmp)

    # 3. assignment of every frame of every window, sharded
    frames, dtype = _assign_shard(args, state, dataset, codebook, feature_fn, tmp)

    # 4. merge, statistics
    if state.is_main_process:
        _merge_and_report(args, state.num_processes, len(dataset), frames, dtype, codebook, description, out, tmp,
                          started)
    state.wait_for_everyone()
    return json.loads((out / STATS_FILE).read_text())


def _fit_codebook(args, state, dataset, feature_fn, description, out: Path, tmp: Path) -> KMeansCodebook:
    """The k-means codebook fitted by process 0 on the features of a random sample of windows (sharded), as saved."""
    rank, world = state.process_index, state.num_processes
    num_windows = len(dataset)
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(num_windows, size=min(args.fit_windows, num_windows), replace=False))
    begin, end = shard_range(len(sample), world, rank)
    view = dataset.with_format("numpy", columns=["input_values"])
    chunks = []
    for offset in range(begin, end, args.batch_size):
        rows = sample[offset : min(offset + args.batch_size, end)]
        chunks.append(feature_fn(np.asarray(view[rows]["input_values"], dtype=np.float32)))
    dim = None if not chunks else chunks[0].shape[-1]
    np.save(tmp / f"fit-{rank:05d}.npy", np.concatenate(chunks).reshape(-1, dim) if chunks else np.zeros((0, 1), np.float32))
    state.wait_for_everyone()
    if state.is_main_process:
        parts = [np.load(tmp / f"fit-{r:05d}.npy") for r in range(world)]
        fit = np.concatenate([p for p in parts if len(p)])
        if len(fit) > args.max_fit_frames:
            fit = fit[np.sort(rng.choice(len(fit), size=args.max_fit_frames, replace=False))]
        logger.info(f"fitting k-means (K={args.num_clusters}) on {len(fit)} frames of dimension {fit.shape[1]}")
        t0 = time.time()
        codebook = fit_kmeans(
            fit, args.num_clusters, standardize=args.features == "mfcc", backend=args.backend, seed=args.seed,
            batch_size=args.kmeans_batch_size, max_iter=args.kmeans_max_iter, n_init=args.kmeans_n_init,
        )
        codebook.info.update(description, fit_windows=int(len(sample)), fit_seconds=time.time() - t0)
        codebook.save(out)
    state.wait_for_everyone()
    return KMeansCodebook.load(out)


def _assign_shard(args, state, dataset, codebook: KMeansCodebook, feature_fn, tmp: Path):
    """``(frames per window, label dtype)`` of this process's windows, their labels and inertia saved to ``tmp``."""
    from tqdm.auto import tqdm

    rank, world = state.process_index, state.num_processes
    begin, end = shard_range(len(dataset), world, rank)
    dtype = np.int16 if args.num_clusters <= np.iinfo(np.int16).max else np.int32
    shard_labels, inertia = [], 0.0
    bar = tqdm(total=end - begin, desc="assign", unit="window", disable=not state.is_main_process)
    for _, values in iter_batches(dataset, begin, end, args.batch_size):
        labels, distances = codebook.assign(feature_fn(values), return_distances=True)
        shard_labels.append(labels.astype(dtype))
        inertia += float(distances.sum())
        bar.update(len(values))
    bar.close()
    frames = shard_labels[0].shape[1] if shard_labels else 0
    np.save(tmp / f"labels-{rank:05d}.npy", np.concatenate(shard_labels) if shard_labels else np.zeros((0, 0), dtype))
    (tmp / f"inertia-{rank:05d}.json").write_text(json.dumps({"sum": inertia}))
    state.wait_for_everyone()
    return frames, dtype


def _merge_and_report(args, world: int, num_windows: int, frames: int, dtype, codebook: KMeansCodebook,
                      description: dict, out: Path, tmp: Path, started: float) -> None:
    """None; merges the shards' labels and writes them with their info and statistics to ``out`` (process 0)."""
    parts = [np.load(tmp / f"labels-{r:05d}.npy", mmap_mode="r") for r in range(world)]
    frames = max(p.shape[1] for p in parts if p.size) if any(p.size for p in parts) else frames
    merged = np.lib.format.open_memmap(out / LABELS_FILE, mode="w+", dtype=dtype, shape=(num_windows, frames))
    row = 0
    for part in parts:
        merged[row : row + len(part)] = part
        row += len(part)
    merged.flush()
    inertia = sum(json.loads((tmp / f"inertia-{r:05d}.json").read_text())["sum"] for r in range(world))
    stats = cluster_statistics(merged, args.num_clusters)
    stats.update(
        windows=num_windows, inertia_per_frame=inertia / max(stats["frames"], 1),
        fit_inertia_per_frame=codebook.info.get("inertia_per_frame"), processes=world,
        seconds=time.time() - started, **description,
    )
    if args.compare_labels_dir:
        from sklearn.metrics import normalized_mutual_info_score

        previous, _ = load_labels(args.compare_labels_dir)
        if previous.shape != merged.shape:
            raise ValueError(f"--compare_labels_dir labels have shape {previous.shape}, these {merged.shape}")
        stats["nmi_with_previous"] = float(
            normalized_mutual_info_score(np.asarray(previous).reshape(-1), np.asarray(merged).reshape(-1))
        )
    info = {"num_windows": num_windows, "num_frames": int(frames), "num_clusters": args.num_clusters,
            "windows_dir": str(Path(args.windows_dir).resolve()), "arguments": asdict(args), **description}
    (out / LABELS_INFO_FILE).write_text(json.dumps(info, indent=2))
    (out / STATS_FILE).write_text(json.dumps(stats, indent=2))
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    summary = {k: v for k, v in stats.items() if k != "cluster_sizes"}
    logger.warning(f"hubert-ecg cluster: {json.dumps(summary)}")
