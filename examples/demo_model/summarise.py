"""Tabulates the cross-validation runs of examples/demo_model/cross_validate.sh: per recipe, the mean ± standard
deviation over the held-out fold pairs (then one row per recipe and pair) of the macro AUROC (12 leads on the first 5 s window, then 12 leads, I+II and
lead I on every 5 s window 2.5 s apart, averaged), of each superclass's AUROC (12 leads, every window), the best
epoch and the training time.

Usage: python examples/demo_model/summarise.py CV_DIR   (CV_DIR holds one folder per recipe, as cross_validate.sh
writes them; prints a Markdown table)
"""

import json
import sys
from pathlib import Path

import numpy as np

LABELS = ("NORM", "MI", "STTC", "CD", "HYP")


def per_label_auroc(eval_dir: Path) -> dict:
    lines = (eval_dir / "per_label.csv").read_text().splitlines()
    header = lines[0].split(",")
    return {row.split(",")[0]: float(row.split(",")[header.index("auroc")]) for row in lines[1:]}


def fold_figures(run: Path) -> dict | None:
    """The figures of one held-out pair, None while the run is unfinished."""
    first, every = run / "eval_0" / "metrics.json", run / "eval_all" / "metrics.json"
    if not (first.exists() and every.exists()):
        return None
    first, every = json.loads(first.read_text()), json.loads(every.read_text())
    training = json.loads((run / "metrics.json").read_text())
    figures = {"12 leads, first window": first["metrics"]["macro_auroc"],
               "12 leads": every["metrics"]["macro_auroc"],
               "I+II": every["lead_sets"]["2"]["metrics"]["macro_auroc"],
               "I": every["lead_sets"]["1"]["metrics"]["macro_auroc"]}
    figures.update(per_label_auroc(run / "eval_all"))
    figures["best epoch"] = training["epoch"]
    seconds = run / "train_seconds.txt"
    figures["training (min)"] = int(seconds.read_text()) / 60 if seconds.exists() else float("nan")
    return figures


def main(cv_dir: str) -> None:
    columns = ["12 leads, first window", "12 leads", "I+II", "I", *LABELS, "best epoch", "training (min)"]
    print("| recipe | pairs | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for recipe in sorted(p for p in Path(cv_dir).iterdir() if p.is_dir()):
        folds = [f for f in (fold_figures(run) for run in sorted(recipe.glob("fold*")) if run.is_dir()) if f]
        if not folds:
            continue
        cells = []
        for column in columns:
            values = np.array([f[column] for f in folds], dtype=float)
            digits = 0 if column in ("best epoch", "training (min)") else 3
            cells.append(f"{values.mean():.{digits}f} ± {values.std(ddof=1) if len(values) > 1 else 0:.{digits}f}")
        print(f"| {recipe.name} | {len(folds)} | " + " | ".join(cells) + " |")
    print()
    print("| recipe | held-out pair | " + " | ".join(columns[:4]) + " |")
    print("|---|---|" + "---|" * 4)
    for recipe in sorted(p for p in Path(cv_dir).iterdir() if p.is_dir()):
        for run in sorted(recipe.glob("fold*")):
            figures = fold_figures(run) if run.is_dir() else None
            if figures:
                cells = " | ".join(f"{figures[c]:.3f}" for c in columns[:4])
                print(f"| {recipe.name} | {run.name.removeprefix('fold')} | {cells} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
