"""``hubert-ecg explain FILE --output mi.png [--model M] [--label L] [--method METHOD] [--start S]``: the attributions
of one record for one label (:func:`hubert_ecg.explain.explain`), drawn as a heat overlay on the 12-lead plot.
Needs the ``[plot]`` extra (matplotlib), and captum (``[explain]``) for every method but attention rollout.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from typing import Literal

from .arguments import ModelArguments, RecordFileArguments, parse, same_as
from .plot import check_output
from .records import RECORD_ERRORS, record_error, usage_error

PROG = "hubert-ecg explain"
DESCRIPTION = (
    "Attributions of an ECG record for one label of a HuBERT-ECG classifier, drawn as a heat overlay on the 12-lead "
    "plot. Without --model: the bundled demo model (a demonstration, not a clinical tool). Exit status: 0, 1 when "
    "the record cannot be read or explained (one line on stderr), 2 for usage errors (a bad model, label or output "
    "name)."
)
#: the attribution methods (:data:`hubert_ecg.explain.METHODS`; tests/test_explain.py checks they match)
METHODS = ("integrated_gradients", "saliency", "occlusion", "attention_rollout")

__all__ = ["ExplainArguments", "main"]


@dataclass
class ExplainArguments:
    """What ``explain`` explains, how, and where it draws it."""

    file: str = field(metadata={"positional": True, "metavar": "FILE",
                                "help": "ECG file (WFDB record name or .hea/.dat, .mat, .npy, ...)"})
    output: str = field(metadata={"help": "output picture: .png, .svg or .pdf", "deprecated": ["--out"]})
    model: str | None = same_as(ModelArguments, "model")
    label: str | None = field(default=None, metadata={"help": "label to explain (default: the top-scored label)"})
    method: Literal[METHODS] = field(default="integrated_gradients", metadata={
        "help": "attribution method (default integrated_gradients; all but attention_rollout need the [explain] "
                "extra: captum)"})
    start: float = field(default=0.0, metadata={"help": "seconds into the record of the 10 s shown (default 0)"})
    steps: int = field(default=32, metadata={"help": "integration steps of integrated_gradients"})
    save: str | None = field(default=None, metadata={"help": "also write the arrays to this .npz file"})
    dpi: int = field(default=150, metadata={"help": "pixels per inch of a PNG"})

    def __post_init__(self):
        check_output(self.output)
        if self.steps < 1:
            raise ValueError(f"--steps must be a positive integer, got {self.steps}")
        if self.dpi < 1:
            raise ValueError(f"--dpi must be a positive integer, got {self.dpi}")


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg explain FILE --output mi.png``.

    Computes the attributions of one record for one label (without ``--label``: the top-scored one), draws them as
    a heat overlay on the 12-lead plot (PNG, SVG or PDF by the extension of ``--output``; the 10 s from ``--start``)
    and prints the label's score, the leads ranked by importance and, for integrated gradients, the convergence
    delta. ``--save`` writes the arrays (``.npz``). Returns 0, 1 when the record cannot be read or explained (one
    line naming it, as ``hubert-ecg predict`` says it), 2 for usage errors (a bad model, label or output name).
    """
    args, records = parse(argv, (ExplainArguments, RecordFileArguments), PROG, DESCRIPTION)
    if args.method != "attention_rollout" and importlib.util.find_spec("captum") is None:
        # said before the model loads
        return usage_error(PROG, f'--method {args.method} needs captum: pip install "hubert-ecg[explain]" (or choose '
                                 "--method attention_rollout)")

    import numpy as np

    from hubert_ecg.explain import _label_index, _load_model, explain
    from hubert_ecg.plotting import STRIP_SECONDS, plot_ecg, save_figure

    try:
        if args.model is None:
            from hubert_ecg.demo import demo_model_path

            print(f"{PROG}: using the bundled demo model ({demo_model_path()}): a demonstration, not a clinical tool.",
                  file=sys.stderr)
        model, fe = _load_model(args.model)
        if args.label is not None:
            _label_index(model.config, args.label)
    except (ValueError, ImportError) as err:
        return usage_error(PROG, err)
    try:
        exp = explain(args.file, model, args.label, args.method, start=args.start, duration=STRIP_SECONDS,
                      sampling_rate=records.sampling_rate, lead_names=records.lead_list, feature_extractor=fe,
                      n_steps=args.steps)
        fig = plot_ecg(args.file, sampling_rate=records.sampling_rate, lead_names=records.lead_list,
                       start=args.start, attribution=exp.values, attribution_rate=exp.sampling_rate,
                       attribution_leads=exp.lead_names, attribution_label=f"{exp.label}, {exp.method}",
                       dpi=args.dpi)
    except RECORD_ERRORS as err:
        return record_error(PROG, args.file, err)
    except ImportError as err:
        return usage_error(PROG, err)
    out = save_figure(fig, args.output)
    ranked = np.argsort(-exp.lead_importance, kind="stable")
    print(f"{exp.name}: {exp.label} score {exp.score:.3f} ({len(exp.window_starts)} window(s) from "
          f"{exp.window_starts[0]:g} s), method {exp.method}")
    print("leads by importance: " + "  ".join(f"{exp.lead_names[i]} {exp.lead_importance[i]:.3f}"
                                              for i in ranked if exp.lead_mask[i]))
    if exp.delta is not None:
        print(f"convergence delta (logits): max |delta| {np.abs(exp.delta).max():.2e}")
    if args.save:
        np.savez(args.save, values=exp.values, window_values=exp.window_values, window_starts=exp.window_starts,
                 lead_names=np.asarray(exp.lead_names), sampling_rate=exp.sampling_rate, label=exp.label,
                 method=exp.method, scores=exp.scores, lead_importance=exp.lead_importance,
                 delta=exp.delta if exp.delta is not None else np.array([]))
        print(f"wrote {args.save}")
    print(f"wrote {out}")
    return 0
