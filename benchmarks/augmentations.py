"""Cost of the default fine-tuning augmentation chain against one small-preset training step, on the same batch.

Side by side in one process, on the same batch of real 5 s windows (PTB-XL ``records500`` records of
``../shared/data`` through :class:`HuBERTECGFeatureExtractor`, cycled to ``--batch-size``, the ``(batch, 6000)``
model view):

* each transform of :func:`hubert_ecg.augmentations.default_finetuning_chain` (lead mask 0.5, Gaussian noise
  20-30 dB at p 0.5, baseline wander at p 0.3, time shift up to 0.1 s at p 0.5) alone, then the chain, called with
  ``sample_index`` / ``epoch`` / ``seed`` as a data collator would (per-sample generators included);
* one training step of ``HuBERTECGForSequenceClassification`` (``HuBERTECGConfig.from_preset("small",
  num_labels=5)``, multi-label): forward, backward, AdamW step.

Times are medians over ``--runs`` after ``--warmup`` untimed calls; a new epoch per call so every call draws new
parameters. The last column is the share of the training step (target: the chain under 10 %). One thread by default
(``--threads``), as the other CPU benchmarks: compare the ratio, not absolute CPU figures.

Usage: ``python benchmarks/augmentations.py [--batch-size 64] [--runs 5] [--warmup 1] [--threads 1]
[--device cpu|cuda]``
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
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification  # noqa: E402
from hubert_ecg.augmentations import default_finetuning_chain  # noqa: E402
from hubert_ecg.io import read_ecg  # noqa: E402
from hubert_ecg.processing import HuBERTECGFeatureExtractor  # noqa: E402

DATA = Path(os.environ.get("HUBERT_ECG_SHARED", REPO.parent / "shared")) / "data"


def load_windows(count: int) -> torch.Tensor:
    """``(count, 6000)`` float32 preprocessed windows of real PTB-XL records (cycled)."""
    paths = sorted((DATA / "ptbxl" / "records500").glob("*/*_hr.hea"))[:count]
    if not paths:
        raise SystemExit(f"no PTB-XL records under {DATA / 'ptbxl' / 'records500'}")
    signals = [read_ecg(p).signal for p in paths]
    windows = HuBERTECGFeatureExtractor()(signals, sampling_rate=500, return_tensors="pt")["input_values"]
    return windows[torch.arange(count) % len(windows)].contiguous()


def timed(fn, runs: int, warmup: int, sync) -> float:
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(runs):
        sync()
        start = time.perf_counter()
        fn(warmup + i)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    x = load_windows(args.batch_size).to(device)
    index = torch.arange(args.batch_size)
    chain = default_finetuning_chain()
    rows = []
    for t in chain.transforms:
        rows.append((f"{t.name} (p={t.p:g})", timed(lambda e, t=t: t(x, sample_index=index, epoch=e, seed=0),
                                                     args.runs, args.warmup, sync)))
    chain_s = timed(lambda e: chain(x, sample_index=index, epoch=e, seed=0), args.runs, args.warmup, sync)
    rows.append(("default chain", chain_s))

    torch.manual_seed(0)
    model = HuBERTECGForSequenceClassification(HuBERTECGConfig.from_preset("small", num_labels=5)).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    labels = (torch.rand(args.batch_size, 5, generator=torch.Generator().manual_seed(0)) < 0.3).float().to(device)

    def step(_):
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_values=x, labels=labels).loss
        loss.backward()
        optimizer.step()

    step_s = timed(step, max(1, min(args.runs, 3)), args.warmup, sync)
    rows.append(("training step (small, fwd+bwd+AdamW)", step_s))

    print(f"batch {tuple(x.shape)} on {device}, {args.threads} thread(s), median of {args.runs} runs")
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | ms per batch | % of training step |")
    print(f"|{'-' * (width + 2)}|-------------:|-------------------:|")
    for name, seconds in rows:
        print(f"| {name:<{width}} | {seconds * 1e3:12.1f} | {100 * seconds / step_s:17.2f}% |")
    verdict = "meets" if chain_s < 0.1 * step_s else "MISSES"
    print(f"default chain: {100 * chain_s / step_s:.2f} % of a training step ({verdict} the < 10 % target)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
