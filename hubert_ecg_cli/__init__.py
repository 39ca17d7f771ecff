"""The ``hubert-ecg`` console command, and the commands layer: one module per command, its arguments and its ``main``.

``hubert-ecg COMMAND [ARGS...]``; ``hubert-ecg COMMAND --help`` lists a command's arguments.

This package lives beside the ``hubert_ecg`` package, not inside it, on purpose: importing ``hubert_ecg`` registers
the model family with transformers' Auto classes and the ``ecg-classification`` pipeline, which imports torch and
transformers' modelling and pipeline code (seconds on a 2-core machine). Listing the commands, a command's
``--help`` and a usage error need none of that: each command module parses its arguments
(:mod:`hubert_ecg_cli.arguments`, one dialect for all) before it imports the package. The help is built from the
command's own parser when asked for, so it always matches the installed transformers.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """One ``hubert-ecg`` command: where its code lives, its one-line help and the extra it needs."""

    module: str  # imported only when the command runs
    function: str  # takes argv (list[str]) and returns an exit code
    help: str  # one line for `hubert-ecg --help`
    extra: str | None  # the optional dependencies it needs: "train", "onnx", "plot", ..., or None for the core install


# The modules that each extra provides (import names); a command whose extra is missing stops with one line.
EXTRAS = {
    "train": ("accelerate", "datasets", "sklearn", "pandas", "librosa", "matplotlib", "yaml", "pyarrow"),
    "onnx": ("onnx", "onnxruntime"),
    "plot": ("matplotlib",),
    "app": ("gradio", "matplotlib"),
    "umap": ("umap",),
    "clinical": ("neurokit2",),  # measure (the clinical readers are checked by read_ecg itself)
}

COMMANDS = {
    "predict": Command("hubert_ecg_cli.predict", "main",
                       "score ECG files with a classifier (default: the demo model)", None),
    "finetune": Command("hubert_ecg_cli.finetune", "main", "fine-tune a classifier with the Trainer", "train"),
    "evaluate": Command("hubert_ecg_cli.evaluate", "main",
                        "AUROC, AUPRC, F1 with bootstrap CIs on a labelled set", "train"),
    "calibrate": Command("hubert_ecg_cli.calibrate", "main",
                         "fit score calibration and per-label thresholds on a validation split", "train"),
    "windows": Command("hubert_ecg_cli.windows", "main",
                       "preprocess records into 5 s window shards (Arrow, or Parquet to stream)", "train"),
    "cluster": Command("hubert_ecg_cli.cluster", "main",
                       "k-means pretraining targets for a HuBERT iteration", "train"),
    "pretrain": Command("hubert_ecg_cli.pretrain", "main",
                        "pretraining on the Trainer: HuBERT, CMSC, SimCLR (accelerate)", "train"),
    "embed": Command("hubert_ecg_cli.embed", "main",
                     "per-record embedding vectors of ECG files -> Parquet", "train"),
    "probe": Command("hubert_ecg_cli.probe", "main",
                     "linear probe of embeddings: AUROC, AUPRC with bootstrap CIs", "train"),
    "plot-embeddings": Command("hubert_ecg_cli.plot_embeddings", "main",
                               "2-D view of embeddings (PCA, or UMAP with [umap])", "train"),
    "convert": Command("hubert_ecg_cli.convert", "main",
                       "original .pt / hub checkpoint -> save_pretrained directory", None),
    "export-onnx": Command("hubert_ecg_cli.export_onnx", "main", "export a classifier to ONNX (dynamic batch)",
                           "onnx"),
    "measure": Command("hubert_ecg_cli.measure", "main",
                       "heart rate, PR, QRS, QT, QTc and axes of ECG files, beside the device's", "clinical"),
    "tune": Command("hubert_ecg_cli.tune", "main",
                    "measure the fastest inference settings for a model on this machine (cached)", None),
    "plot": Command("hubert_ecg_cli.plot", "main", "draw a record in the 12-lead layout (PNG, SVG, PDF)", "plot"),
    "explain": Command("hubert_ecg_cli.explain", "main",
                       "attributions for a label, drawn on the 12-lead plot (default: the demo model)", "plot"),
    "report": Command("hubert_ecg_cli.report", "main",
                      "one page for a clinician: 12-lead plot, predictions, measurements (PDF, PNG, HTML, JSON)",
                      "plot"),
    "app": Command("hubert_ecg_cli.app", "main", "local web app: upload ECGs, see the plot, scores, attributions",
                   "app"),
}


def _usage() -> str:
    lines = [f"  {name:<15} {command.help}" for name, command in COMMANDS.items()]
    return (
        "usage: hubert-ecg COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)
        + "\n\n`hubert-ecg COMMAND --help` lists a command's arguments."
    )


def missing_modules(extra: str | None) -> list[str]:
    """The import names of ``extra`` (see :data:`EXTRAS`) that are not installed; empty for the core install."""
    return [name for name in EXTRAS.get(extra, ()) if not _installed(name)]


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None  # None: import blocked, it raises ImportError
    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hubert-ecg`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hubert-ecg: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    command = COMMANDS[name]
    if "-h" in args or "--help" in args:  # the command's own parser, whether or not its extra is installed
        return _run(getattr(importlib.import_module(command.module), command.function), args)
    missing = missing_modules(command.extra)
    if missing:
        print(
            f"hubert-ecg {name}: needs the optional [{command.extra}] dependencies (missing: {', '.join(missing)}); "
            f"install them with: pip install \"hubert-ecg[{command.extra}]\"",
            file=sys.stderr,
        )
        return 2
    return _run(getattr(importlib.import_module(command.module), command.function), args)


def _run(function, args: list[str]) -> int:
    """A command's exit status: what ``function(args)`` returns, or the code of its ``SystemExit`` (argparse: 0
    after ``--help``, 2 after a usage error)."""
    try:
        return int(function(args) or 0)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
