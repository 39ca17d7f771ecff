"""``hubert-ecg tune [--model M] [--device D] [--reset] [--show]``: the inference settings measured on this machine.

Without options: measures (or reads from the cache) the settings ``predict``, ``embed`` and ``pipeline()`` use for
a model (default: the bundled demo model) and prints every variant timed, in windows per second, with the one
chosen (:func:`hubert_ecg.inference.tuned_settings`). ``--reset`` forgets every cached measurement first (the next
use measures again); ``--show`` prints the cache without measuring.
"""

from __future__ import annotations

import argparse
import json
import sys

PROG = "hubert-ecg tune"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Measure the fastest inference settings (dtype, attention, first convolution) for a model on "
        "this machine, as `predict`, `embed` and pipeline() do at first use, and print them. The choice is cached "
        "per machine, torch version and model shape. Exit status: 0 on success, 2 for a usage error or a model "
        "that cannot be loaded.",
    )
    parser.add_argument("--model", default=None,
                        help="hub id or save_pretrained directory (default: the bundled demo model)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--reset", action="store_true",
                        help="forget every cached measurement first; with neither --model nor --device only that")
    parser.add_argument("--show", action="store_true", help="print the cache file and its entries, measure nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..inference import clear_tuning_cache, tuning_cache_path

    path = tuning_cache_path()
    if args.show:
        print(f"cache: {path}")
        if path.is_file():
            print(path.read_text(encoding="utf-8").rstrip())
        else:
            print("(empty: nothing measured yet)")
        return 0
    if args.reset:
        removed = clear_tuning_cache()
        print(f"{'removed' if removed else 'no cache at'} {path}")
        if args.model is None and args.device is None:
            return 0

    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from ..demo import demo_model_path
    from ..inference import measure_settings, tuned_settings, tuning_enabled

    hf_logging.disable_progress_bar()
    source = args.model or demo_model_path()
    try:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(source)
        except ValueError:  # a backbone without a classification head
            model = AutoModel.from_pretrained(source)
        if args.device is not None:
            model.to(args.device)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"{PROG}: error: cannot load the model {source!r}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if not tuning_enabled():
        print(f"{PROG}: HUBERT_ECG_TUNING is off: models run in float32 with SDPA; measured here anyway, not cached",
              file=sys.stderr)
        settings = measure_settings(model)
    else:
        settings = tuned_settings(model)
    print(f"model: {source}")
    print(f"cache: {path}")
    width = max(len(name) for name in settings.measured) if settings.measured else 10
    print(f"{'variant (dtype/attention/first convolution)':<{max(width, 44)}}  windows/s")
    for name, speed in sorted(settings.measured.items(), key=lambda item: -item[1]):
        mark = "  <- chosen" if name == settings.name else ""
        print(f"{name:<{max(width, 44)}}  {speed:9.1f}{mark}")
    print(f"chosen: {settings.describe()}")
    print(json.dumps({"dtype": settings.dtype, "attn_implementation": settings.attn_implementation,
                      "input_conv": settings.input_conv}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
