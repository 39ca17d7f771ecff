"""``hubert-ecg tune [--model M] [--device D] [--reset] [--show]``: the inference settings measured on this machine.

Without options: measures (or reads from the cache) the settings ``predict``, ``embed`` and ``pipeline()`` use for
a model (default: the bundled demo model) and prints every variant timed, in windows per second, with the one
chosen (:func:`hubert_ecg.inference.tuned_settings`). ``--reset`` forgets every cached measurement first (the next
use measures again); ``--show`` prints the cache without measuring.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from .arguments import parse
from .records import usage_error

PROG = "hubert-ecg tune"
DESCRIPTION = (
    "Measure the fastest inference settings (dtype, attention, first convolution) for a model on this machine, as "
    "`predict`, `embed` and pipeline() do at first use, and print them. The choice is cached per machine, torch "
    "version and model shape. Exit status: 0 on success, 2 for a usage error or a model that cannot be loaded."
)


@dataclass
class TuneArguments:
    """The model to measure (default: the demo model) and what to do with the cache."""

    model: str | None = field(default=None, metadata={
        "help": "hub id or save_pretrained directory (default: the bundled demo model)",
        "deprecated": ["--model_name_or_path", "--model-name-or-path"]})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cpu or cuda:0"})
    reset: bool = field(default=False, metadata={
        "help": "forget every cached measurement first; with neither --model nor --device only that"})
    show: bool = field(default=False, metadata={"help": "print the cache file and its entries, measure nothing"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hubert-ecg tune``; returns the exit status (0; 2 for a usage error or a model that cannot be
    loaded)."""
    (args,) = parse(argv, (TuneArguments,), PROG, DESCRIPTION)
    from hubert_ecg.inference import clear_tuning_cache, tuning_cache_path

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

    from hubert_ecg.demo import demo_model_path
    from hubert_ecg.inference import measure_settings, tuned_settings, tuning_enabled

    source = args.model or demo_model_path()
    try:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(source)
        except ValueError:  # a backbone without a classification head
            model = AutoModel.from_pretrained(source)
        if args.device is not None:
            model.to(args.device)
    except (OSError, ValueError, RuntimeError) as err:
        return usage_error(PROG, f"cannot load the model {source!r}: {type(err).__name__}: {err}")
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

