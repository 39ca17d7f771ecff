"""The ``hubert-ecg`` console command.

``hubert-ecg COMMAND [ARGS...]``; ``hubert-ecg COMMAND --help`` lists a command's arguments. Commands whose
arguments are the fields of a training dataclass (``finetune``, ``evaluate``, ``pretrain``, ``cluster``) parse them
in their own module with ``HfArgumentParser`` (so a YAML or JSON file works too); this module only routes to
them, importing each lazily so that ``hubert-ecg --help`` stays fast.
"""

import argparse
import importlib
import sys

# command -> (module, function taking argv and returning an exit code, one-line help)
COMMANDS = {
    "predict": ("hubert_ecg.pipelines", "predict_main", "score ECG files with a classifier (default: the demo model)"),
    "finetune": ("hubert_ecg.training.finetune", "main", "fine-tune a classifier with the Trainer"),
    "evaluate": ("hubert_ecg.training.evaluate", "main", "AUROC, AUPRC, F1 with bootstrap CIs on a labelled set"),
    "cluster": ("hubert_ecg.training.clustering", "main", "k-means pretraining targets for a HuBERT iteration"),
    "pretrain": ("hubert_ecg.training.pretrain", "main", "HuBERT masked-prediction pretraining with accelerate"),
    "convert": ("hubert_ecg.cli", "convert_main", "original .pt / hub checkpoint -> save_pretrained directory"),
    "export-onnx": ("hubert_ecg.export", "export_onnx_main", "export a classifier to ONNX (dynamic batch)"),
}


def convert_main(argv: list[str]) -> int:
    """``hubert-ecg convert SRC OUT_DIR``: see :func:`hubert_ecg.convert_original_checkpoint`."""
    parser = argparse.ArgumentParser(
        prog="hubert-ecg convert",
        description="Convert an original HuBERT-ECG .pt checkpoint or hub directory into a save_pretrained "
        "directory (safetensors). Pickled code is never executed.",
    )
    parser.add_argument("src", help="original .pt checkpoint (pretraining or fine-tuned) or hub directory")
    parser.add_argument("out_dir", help="output directory")
    args = parser.parse_args(argv)

    from .conversion import convert_original_checkpoint

    try:
        model = convert_original_checkpoint(args.src, args.out_dir)
    except ValueError as error:
        print(f"hubert-ecg convert: error: {error}", file=sys.stderr)
        return 2
    print(f"{args.src} -> {args.out_dir} ({type(model).__name__}, {model.num_parameters():,} parameters)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hubert-ecg`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<12} {help_}" for name, (_, _, help_) in COMMANDS.items()]
        usage = "usage: hubert-ecg COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"hubert-ecg: unknown command {argv[0]!r}\n\n{usage}", file=sys.stderr)
            return 2
        print(usage)
        return 0
    module_name, function_name, _ = COMMANDS[argv[0]]
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
