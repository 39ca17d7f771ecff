"""End to end (files -> probabilities) throughput of the ecg-classification pipeline against the model alone.

Side by side in one process, on the bundled PTB-XL records (``hubert_ecg.demo.demo_records()``: six 10 s, 500 Hz,
12-lead records, two 5 s windows each, cycled to ``--records``), in rounds that run each measurement once:

* ``end to end``: ``clf(files, batch_size=B)``: read the files, preprocess, one forward pass per ``B`` records,
  sigmoid, sorted labels.
* ``model only``: ``model(input_values=...)`` under ``torch.inference_mode`` on the same windows in the same
  chunks, preprocessed beforehand.
* ``reading``: ``read_ecg`` of the same files (for WFDB records, ``wfdb.rdrecord``).
* ``preprocessing``: ``HuBERTECGFeatureExtractor`` on the records read, one call per record as the pipeline runs it.

Precisions (``--precisions``): ``default`` (``pipeline("ecg-classification", model=path)`` with no dtype: the
settings measured on this machine, :func:`hubert_ecg.inference.tuned_settings`, measured afresh into a temporary
cache), ``float32`` and ``bfloat16`` the transformers way (``pipeline(..., dtype=torch.bfloat16)``).

* ``reference``: the original path end to end: the same reading and preprocessing, then transformers'
  ``HubertModel`` in eager float32 (the same weights) and the linear head, on the same windows in the same chunks.

Columns: windows per second of end to end and of the model alone, the end-to-end share of model-only throughput
and the shares of reading and of preprocessing in end-to-end time; then each end to end over the reference end to
end (the goal for the default: >= 3x).

``--long``: peak memory (``ru_maxrss`` of a fresh child process per case) of the pipeline on a 1-hour and a 24-hour
12-lead 500 Hz record (a PTB-XL record tiled, written as WFDB format 16 to a temporary folder), small preset:
64 random windows scored end to end (the whole record is read and filtered for its min-max scaling, in pieces),
the preprocessing of every window of the record (``RecordWindows.features``, no model) and, with ``--long-all``,
all 720 windows of the 1 h record scored end to end (batch 16).

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

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import pipeline  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import hubert_ecg  # noqa: E402,F401  (registers the pipeline)
from hubert_ecg import HuBERTECGConfig, HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification  # noqa: E402
from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.io import read_ecg  # noqa: E402
from hubert_ecg.windows import choose_window_starts  # noqa: E402

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
    parser.add_argument("--batch-size", type=int, default=8,
                        help="records per forward pass (the pipeline's batch_size is their windows: 2 per record)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="small,demo")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="6 records, batch 6, 2 rounds")
    parser.add_argument("--long", action="store_true", help="only the peak-memory table of 1-hour and 24-hour records")
    parser.add_argument("--long-all", action="store_true", help="with --long: also all 720 windows of the 1 h record")
    parser.add_argument("--precisions", default="default,float32,bfloat16")
    args = parser.parse_args(argv)
    if args.long:
        return long_records(args.long_all)
    if args.quick:
        args.records, args.batch_size, args.runs = 6, 6, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    # the default precision measures its settings now, into a cache of its own (not the user's)
    import os

    os.environ["HUBERT_ECG_TUNING"] = "1"
    os.environ["HUBERT_ECG_CACHE"] = tempfile.mkdtemp(prefix="hubert_ecg_bench_")
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
            clfs = {p: pipeline("ecg-classification", model=path, **({} if p == "default" else {"dtype": getattr(torch, p)}))
                    for p in args.precisions.split(",")}
            if "default" in clfs:
                print(f"# {name}: default settings measured on this machine: "
                      f"{clfs['default'].inference_settings.describe()}", flush=True)
            extractor = next(iter(clfs.values())).feature_extractor
            reference = reference_classifier((clfs.get("float32") or next(iter(clfs.values()))).model,
                                             bench_inference.reference_model)

            def read():
                return [[read_ecg(f) for f in chunk] for chunk in chunks]

            records = read()

            def preprocess():
                return _preprocess(extractor, records)

            def run_model(model, x):
                with torch.inference_mode():
                    return model(input_values=x.to(model.dtype)).logits

            inputs = preprocess()
            windows = sum(x.shape[0] for x in inputs)
            measures = {"reading": read, "preprocessing": preprocess}
            measures["e2e reference"] = lambda: [reference(x) for x in _preprocess(extractor, read())]
            for precision, clf in clfs.items():
                measures[f"e2e {precision}"] = lambda clf=clf: [clf(chunk, batch_size=2 * len(chunk)) for chunk in chunks]
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
            e2e = median["e2e reference"]
            rows.append(f"| {name} | reference (HubertModel eager fp32) | {windows / e2e:.2f} | | | "
                        f"{median['reading'] / e2e:.1%} | {median['preprocessing'] / e2e:.1%} |")
            print(rows[-1], flush=True)
            for precision in clfs:
                ratio = median["e2e reference"] / median[f"e2e {precision}"]
                rows.append(f"| {name} | {precision} end to end / reference end to end | {ratio:.2f}x | | | | |")
                print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    return 0


def _preprocess(extractor, records):
    """Chunks of records -> their windows' ``input_values``, one (windows, 6000) tensor per chunk."""
    return [
        torch.cat([extractor(r, window_starts=choose_window_starts(
            r.signal.shape[1], r.sampling_rate, extractor, "all"), return_tensors="pt")["input_values"]
            for r in chunk])
        for chunk in records
    ]


def reference_classifier(model, reference_model):
    """The original path's model: transformers' ``HubertModel`` (eager, float32; ``reference_model`` of
    benchmarks/inference.py builds it from the config) with ``model``'s backbone weights, then the mean over frames
    and ``model``'s head (float32): ``x (windows, 6000) -> logits``."""
    import copy

    head = copy.deepcopy(model).float().eval()
    hubert = reference_model(head.base_model.config)
    hubert.load_state_dict(head.base_model.state_dict(), strict=False)

    def forward(x):
        with torch.no_grad():
            return head.head(hubert(x).last_hidden_state.mean(dim=1))

    return forward


_LONG_CHILD = r"""
import resource, sys, time, numpy as np, torch
from transformers import pipeline
import hubert_ecg
from hubert_ecg.windows import record_windows
path, model, mode = sys.argv[1], sys.argv[2], sys.argv[3]
clf = pipeline("ecg-classification", model=model)
start = time.perf_counter()
if mode == "pipeline":
    clf(path, window="random", num_windows=64, seed=0, batch_size=16)
    n = 64
elif mode == "pipeline-all":
    with torch.inference_mode():
        clf(path, batch_size=16)
    n = len(record_windows(path, clf.feature_extractor, window="all"))
else:
    plan = record_windows(path, clf.feature_extractor, window="all")
    n = sum(len(b["input_values"]) for b in plan.features(clf.feature_extractor, batch_windows=64))
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def write_tiled_record(folder: Path, hours: float) -> str:
    """A 12-lead 500 Hz WFDB format-16 record of ``hours`` made of a bundled PTB-XL record tiled, without holding
    it in memory; returns its name."""
    record = read_ecg(demo_records()[1])
    gain = 1000.0
    digital = np.round(record.signal.T * gain).astype("<i2")  # (5000, 12) frames
    n_tiles = int(hours * 3600 * 500) // digital.shape[0]
    name = folder / f"tiled_{hours:g}h"
    with open(f"{name}.dat", "wb") as handle:
        for _ in range(n_tiles):
            digital.tofile(handle)
    lines = [f"{name.name} 12 500 {n_tiles * digital.shape[0]}"]
    lines += [f"{name.name}.dat 16 {gain:g}/mV 16 0 0 0 0 {lead}" for lead in record.lead_names]
    Path(f"{name}.hea").write_text("\n".join(lines) + "\n")
    return str(name)


def long_records(all_windows: bool = False) -> int:
    import subprocess

    rows = ["| record | what | windows | seconds | peak memory (MB) |", "|---|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = model_dir("small", tmp)
        for hours in (1, 24):
            path = write_tiled_record(tmp, hours)
            cases = [("pipeline", "pipeline, small preset, 64 random windows"),
                     ("windows", "every window preprocessed (no model)")]
            if hours == 1 and all_windows:
                cases.insert(1, ("pipeline-all", "pipeline, small preset, every window"))
            for mode, what in cases:
                out = subprocess.run([sys.executable, "-c", _LONG_CHILD, path, model, mode], capture_output=True,
                                     text=True, cwd=str(REPO), env={**__import__("os").environ,
                                                                    "PYTHONPATH": str(REPO)})
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                n, seconds, peak = out.stdout.split()[-3:]
                rows.append(f"| {hours} h, 12 leads, 500 Hz | {what} | {n} | {float(seconds):.1f} | {float(peak):.0f} |")
                print(rows[-1], flush=True)
            Path(f"{path}.dat").unlink()
    print()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
