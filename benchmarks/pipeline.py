"""End to end (files -> probabilities) throughput of the ecg-classification pipeline against the model alone.

Side by side in one process, on the bundled PTB-XL records (``hubert_ecg.demo.demo_records()``: six 10 s, 500 Hz,
12-lead records, two 5 s windows each, cycled to ``--records``), in rounds that run each measurement once:

* ``end to end``: ``clf(files, batch_size=B)``: read the files, preprocess, one forward pass per ``B`` records,
  sigmoid, sorted labels.
* ``model only``: ``run_model`` on the same windows in the same chunks, preprocessed beforehand.
* ``reading``: ``read_ecg`` of the same files (for WFDB records, ``wfdb.rdrecord``).
* ``preprocessing``: ``HuBERTECGFeatureExtractor`` on the records read, one call per record as the pipeline runs it.

Columns: windows per second of end to end and of the model alone, the end-to-end share of model-only throughput
(target >= 80 %) and the shares of reading and of preprocessing in end-to-end time (target for preprocessing:
<= 10 %), for float32 and the bf16 fast path (``optimize_for_inference(clf.model, dtype="bfloat16")``).

Models (``--models``): ``small`` (the released small architecture, random weights, 5 labels: the realistic cost)
and ``demo`` (the bundled demo model, hidden size 128 and 3 layers, when it is installed: a model so small that
reading and preprocessing weigh more).

Usage: ``python benchmarks/pipeline.py [--quick] [--records 24] [--batch-size 8] [--runs 3] [--models small,demo]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import pipeline  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import hubert_ecg  # noqa: E402,F401  (registers the pipeline)
from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification  # noqa: E402
from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.inference import cpu_has_bf16, optimize_for_inference, run_model  # noqa: E402
from hubert_ecg.io import read_ecg  # noqa: E402

hf_logging.set_verbosity_error()
LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


def model_dir(name: str, tmp: Path) -> str | None:
    """A classifier directory for ``name``: ``demo`` (bundled, None if missing) or a preset with random weights."""
    if name == "demo":
        try:
            return hubert_ecg.demo_model_path()
        except ValueError:
            return None
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset(
        name, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
        problem_type="multi_label_classification",
    )
    path = tmp / name
    HuBERTECGForSequenceClassification(config).save_pretrained(path)
    HuBERTECGFeatureExtractor().save_pretrained(path)
    return str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=24, help="files per round (the six bundled ones, cycled)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per forward pass")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="small,demo")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="6 records, batch 6, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.batch_size, args.runs = 6, 6, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    bundled = demo_records()
    files = [bundled[i % len(bundled)] for i in range(args.records)]
    chunks = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]

    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_inference", Path(__file__).with_name("inference.py"))
    bench_inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_inference)  # same machine line as benchmarks/inference.py
    machine_name = bench_inference.machine_name

    print(f"# machine: {machine_name('cpu')}")
    print(f"# {len(files)} files (bundled records, cycled), batch {args.batch_size} records, {args.runs} rounds")
    rows = [
        "| model | precision | end to end (windows/s) | model only (windows/s) | end to end / model only "
        "| reading share | preprocessing share |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = model_dir(name, Path(tmp))
            if path is None:
                print(f"# {name}: not installed, skipped", file=sys.stderr)
                continue
            precisions = ["float32"] + (["bfloat16"] if cpu_has_bf16() else [])
            clfs = {}
            for precision in precisions:
                clf = pipeline("ecg-classification", model=path)
                optimize_for_inference(clf.model, dtype=precision)
                clfs[precision] = clf
            extractor = clfs["float32"].feature_extractor

            def read():
                return [[read_ecg(f) for f in chunk] for chunk in chunks]

            records = read()

            def preprocess():
                return [
                    torch.cat([extractor(r, window="all", return_tensors="pt")["input_values"] for r in chunk])
                    for chunk in records
                ]

            inputs = preprocess()
            windows = sum(x.shape[0] for x in inputs)
            measures = {"reading": read, "preprocessing": preprocess}
            for precision, clf in clfs.items():
                measures[f"e2e {precision}"] = lambda clf=clf: [clf(chunk, batch_size=len(chunk)) for chunk in chunks]
                measures[f"model {precision}"] = lambda m=clf.model: [run_model(m, x) for x in inputs]
            for fn in measures.values():
                fn()  # warm-up
            times = {key: [] for key in measures}
            keys = list(measures)
            for round_ in range(args.runs):
                for key in keys[round_ % len(keys):] + keys[: round_ % len(keys)]:
                    start = time.perf_counter()
                    measures[key]()
                    times[key].append(time.perf_counter() - start)
            median = {key: statistics.median(v) for key, v in times.items()}
            for precision in clfs:
                e2e, model = median[f"e2e {precision}"], median[f"model {precision}"]
                rows.append(
                    f"| {name} | {precision} | {windows / e2e:.2f} | {windows / model:.2f} | {model / e2e:.0%} "
                    f"| {median['reading'] / e2e:.1%} | {median['preprocessing'] / e2e:.1%} |"
                )
                print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
