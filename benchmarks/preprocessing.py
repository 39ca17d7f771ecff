"""ECGs per second of HuBERTECGFeatureExtractor against the released per-record, per-lead scipy preprocessing.

Side by side in one process, on the same real 10 s, 500 Hz, 12-lead records (PTB-XL ``records500`` and the
PhysioNet/CinC 2021 ``.mat`` records of ``../shared/data``, cycled to the requested count), one thread each,
median of several runs. Every implementation's output is checked against the reference to 1e-4.

Rows:
* ``reference``: the five steps of the release (``../shared/reference/README.md``), per record and per lead,
  with ``scipy.signal.resample`` / ``filtfilt`` / ``decimate``, as the original script runs them.
* ``scipy, batched``: the same scipy calls, once along ``axis=-1`` over the whole batch (context: how much of the
  gain batching alone gives).
* ``HuBERTECGFeatureExtractor``: this package (vectorised; zero-phase FIR as one FFT convolution).

Usage: ``python benchmarks/preprocessing.py [--records 256] [--runs 5] [--quick] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hubert_ecg.io import read_ecg  # noqa: E402
from hubert_ecg.processing import HuBERTECGFeatureExtractor  # noqa: E402

DATA = Path(os.environ.get("HUBERT_ECG_SHARED", REPO.parent / "shared")) / "data"


def load_records(count: int) -> tuple[list[np.ndarray], list[list[str]], int]:
    """Real 12-lead 10 s records at 500 Hz (mV), cycled to ``count``; returns signals, lead names, distinct used."""
    paths = sorted((DATA / "ptbxl" / "records500").glob("*/*.hea")) + sorted((DATA / "cinc2021").glob("*.hea"))
    signals, names = [], []
    for path in paths:
        record = read_ecg(path)
        if record.sampling_rate == 500 and record.signal.shape == (12, 5000):
            signals.append(record.signal)
            names.append(record.lead_names)
    if not signals:
        raise SystemExit(f"no 10 s 500 Hz records found under {DATA}")
    distinct = len(signals)
    used = min(distinct, count)
    return [signals[i % distinct] for i in range(count)], [names[i % distinct] for i in range(count)], used


def reference_one(raw: np.ndarray, fs: float) -> np.ndarray:
    """The released preprocessing of one record, lead by lead (steps 1-5 of ../shared/reference/README.md)."""
    n = int(raw.shape[1] * 500 / fs)
    numtaps = int(0.3 * 500)
    numtaps += numtaps % 2 == 0
    taps = scipy.signal.firwin(numtaps, [0.05, 47.0], pass_zero=False, fs=500)
    leads = []
    for lead in raw.astype(np.float64):
        x = scipy.signal.resample(lead, n)
        x = scipy.signal.filtfilt(taps, 1.0, x)
        x = 2 * (x - x.min()) / (x.max() - x.min() + 1e-8) - 1
        leads.append(x[:2500])
    return scipy.signal.decimate(np.concatenate(leads), 5).astype(np.float32)


def reference(signals: list[np.ndarray]) -> np.ndarray:
    return np.stack([reference_one(s, 500) for s in signals])


def scipy_batched(signals: list[np.ndarray]) -> np.ndarray:
    x = np.stack(signals).astype(np.float64)  # (R, 12, T)
    x = scipy.signal.resample(x, int(x.shape[-1] * 500 / 500), axis=-1)
    taps = scipy.signal.firwin(151, [0.05, 47.0], pass_zero=False, fs=500)
    x = scipy.signal.filtfilt(taps, 1.0, x, axis=-1)
    lo, hi = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
    x = 2 * (x - lo) / (hi - lo + 1e-8) - 1
    x = x[:, :, :2500].reshape(len(signals), -1)
    return scipy.signal.decimate(x, 5, axis=-1).astype(np.float32)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=256, help="number of 10 s 500 Hz records (default 256)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per implementation; the median is reported")
    parser.add_argument("--quick", action="store_true", help="64 records, 3 runs")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the feature extractor")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.runs = 64, 3

    signals, names, distinct = load_records(args.records)
    extractor = HuBERTECGFeatureExtractor()

    def ours(batch):
        return extractor(batch, sampling_rate=500, lead_names=names)["input_values"]

    candidates = [
        ("reference (released, per record/lead)", reference),
        ("scipy, batched", scipy_batched),
        ("HuBERTECGFeatureExtractor", ours),
    ]
    expected = reference(signals)
    times: dict[str, list[float]] = {name: [] for name, _ in candidates}
    errors: dict[str, float] = {}
    for name, fn in candidates:  # warm-up and correctness
        errors[name] = float(np.abs(fn(signals) - expected).max())
    for _ in range(args.runs):  # interleaved, so load from other processes hits all alike
        for name, fn in candidates:
            start = time.perf_counter()
            fn(signals)
            times[name].append(time.perf_counter() - start)

    ref_median = statistics.median(times[candidates[0][0]])
    print(
        f"\nPreprocessing of {args.records} real 12-lead 10 s 500 Hz ECGs ({distinct} distinct records, cycled), "
        f"one thread, median of {args.runs} runs\n"
    )
    header = (
        f"| {'implementation':<40} | {'median s':>9} | {'ECG/s':>8} | {'speed-up':>8} | {'max abs diff vs ref':>19} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part) + 0) for part in header.split("|")[1:-1]) + "|")
    for name, _ in candidates:
        median = statistics.median(times[name])
        print(
            f"| {name:<40} | {median:9.3f} | {args.records / median:8.1f} | {ref_median / median:7.1f}x "
            f"| {errors[name]:19.2e} |"
        )
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(ours, signals)
        print("\nprofile of one HuBERTECGFeatureExtractor call:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    ok = all(err <= 1e-4 for err in errors.values())
    print(f"\noutputs equal to the reference within 1e-4: {'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
