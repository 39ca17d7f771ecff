"""Throughput of embedding (``ecg-feature-extraction``) against classification (``ecg-classification``) of the
same records, side by side in one process, and the time of ``hubert-ecg probe``'s fit.

Records: the first ``--records`` PTB-XL records of ``../shared/data/ptbxl/records100`` (10 s, 100 Hz, 12 leads:
two 5 s windows each), every window (the default of both pipelines), ``--batch-size`` windows per forward pass,
the bundled demo model (its backbone for the embeddings; hidden size 128, 3 layers). Rounds alternate the two
pipelines; the table gives the median records per second of ``--runs`` rounds and their ratio (the pooling of the
embedding against the classifier's linear head: expected ~1).

``--probe``: also the wall time of :func:`hubert_ecg.training.probe.linear_probe` (C by 5-fold CV over 9 values,
1000 bootstrap resamples) on the embeddings of those records (the first 80 % to train, the rest to evaluate).

Usage: ``python benchmarks/embeddings.py [--records 100] [--batch-size 16] [--runs 3] [--probe]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from transformers import pipeline  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import hubert_ecg  # noqa: E402  (registers the pipelines)

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probe", action="store_true")
    args = parser.parse_args()
    shared = Path(os.environ.get("HUBERT_ECG_SHARED", REPO.parent / "shared"))
    files = sorted(str(p.with_suffix("")) for p in (shared / "data" / "ptbxl" / "records100").rglob("*.hea"))
    files = files[: args.records]
    demo = hubert_ecg.demo_model_path()
    embed = pipeline("ecg-feature-extraction", model=demo)
    clf = pipeline("ecg-classification", model=demo)
    embed(files[:2]), clf(files[:2])  # warm-up
    times = {"embed": [], "classify": []}
    with torch.inference_mode():
        for _ in range(args.runs):
            for name, pipe in (("embed", embed), ("classify", clf)):
                start = time.perf_counter()
                out = pipe(files, batch_size=args.batch_size)
                times[name].append(time.perf_counter() - start)
                assert len(out) == len(files)
    rate = {k: len(files) / statistics.median(v) for k, v in times.items()}
    print(f"{len(files)} PTB-XL records (10 s, 2 windows each), batch {args.batch_size} windows, demo model, "
          f"{torch.get_num_threads()} threads, median of {args.runs} runs")
    print(f"{'pipeline':<26} {'records/s':>10} {'windows/s':>10}")
    for name, label in (("embed", "ecg-feature-extraction"), ("classify", "ecg-classification")):
        print(f"{label:<26} {rate[name]:>10.1f} {2 * rate[name]:>10.1f}")
    print(f"{'embed / classify':<26} {rate['embed'] / rate['classify']:>10.2f}")
    if args.probe:
        from hubert_ecg.training.data import read_ptbxl
        from hubert_ecg.training.probe import embed_records, linear_probe

        records = read_ptbxl(shared / "data" / "ptbxl")
        n = min(args.records, len(records))
        items = [(records.paths[i], "ptbxl", records.labels[i], None) for i in range(n)]
        emb, _ = embed_records(embed, items, records.label_names, records.problem_type, args.batch_size)
        cut = int(0.8 * len(emb))
        train = type(emb)(emb.paths[:cut], emb.sources[:cut], emb.vectors[:cut], None, emb.labels[:cut],
                          emb.label_names, emb.problem_type)
        test = type(emb)(emb.paths[cut:], emb.sources[cut:], emb.vectors[cut:], None, emb.labels[cut:],
                         emb.label_names, emb.problem_type)
        start = time.perf_counter()
        result = linear_probe(train, test)
        print(f"linear probe ({cut} train / {len(emb) - cut} eval, 9 Cs x 5 folds x 5 labels, 1000 bootstrap): "
              f"{time.perf_counter() - start:.1f} s, macro AUROC {result['metrics']['macro_auroc']:.3f} "
              f"(not a benchmark result: records of mixed folds)")


if __name__ == "__main__":
    main()
