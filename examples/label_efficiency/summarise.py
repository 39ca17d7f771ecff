"""The table and the embedding figure of the label-efficiency study (examples/label_efficiency/run.sh).

Reads OUT_DIR/probe/*.json (``hubert-ecg probe --output``) and OUT_DIR/finetune/*/metrics.json (``hubert-ecg
finetune``), writes OUT_DIR/results.csv (one row per run), OUT_DIR/table.md (fold-9 macro AUROC and AUPRC, mean and
standard deviation over the seeds run) and OUT_DIR/embeddings.png (PCA of every initialisation's embeddings: fold 9 by
superclass, and one file per source by source).

Usage: python examples/label_efficiency/summarise.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hubert_ecg.training.probe import draw_embeddings  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/label_efficiency")
NAMES = {"random": "random init", "pretrain-hubert": "hubert", "pretrain-cmsc": "cmsc", "pretrain-simclr": "simclr",
         "pretrain-hubert_cmsc": "hubert+cmsc"}

rows = []
for path in sorted((out / "probe").glob("*.json")):
    init, fraction, seed = path.stem.rsplit("-", 2)
    result = json.loads(path.read_text())
    rows.append({"init": init, "method": "linear probe", "fraction": float(fraction), "seed": int(seed),
                 "n_train": result["n_train"], "macro_auroc": result["metrics"]["macro_auroc"],
                 "macro_auprc": result["metrics"]["macro_auprc"], "auroc_ci_low": result["ci"]["macro_auroc"][0],
                 "auroc_ci_high": result["ci"]["macro_auroc"][1]})
for path in sorted((out / "finetune").glob("*/metrics.json")):
    init, fraction, seed = path.parent.name.rsplit("-", 2)
    result = json.loads(path.read_text())
    rows.append({"init": init, "method": "fine-tuning", "fraction": float(fraction), "seed": int(seed),
                 "n_train": result["train_records"], "macro_auroc": result["eval_macro_auroc"],
                 "macro_auprc": result["eval_macro_auprc"], "auroc_ci_low": None, "auroc_ci_high": None})
results = pd.DataFrame(rows)
results.to_csv(out / "results.csv", index=False)

inits = [i for i in NAMES if i in set(results.init)]
fractions = sorted(results.fraction.unique())
header = ["initialisation"] + [f"{m} {f:.0%}" for m in ("probe", "fine-tune") for f in fractions]
lines = []
for metric in ("macro_auroc", "macro_auprc"):
    lines += [f"fold-9 {metric.replace('_', ' ')}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for init in inits:
        cells = [NAMES[init]]
        for method in ("linear probe", "fine-tuning"):
            for fraction in fractions:
                runs = results[(results.init == init) & (results.method == method) & (results.fraction == fraction)]
                values = runs[metric]
                cells.append("-" if not len(values) else f"{values.iloc[0]:.3f}" if len(values) == 1
                             else f"{values.mean():.3f} ± {values.std(ddof=1):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
sizes = results.groupby(["method", "fraction"]).n_train.agg(["min", "max"])
seeds = results.groupby(["method", "fraction"]).seed.nunique()
lines += ["training records per fraction (min-max over seeds): " + ", ".join(
    f"{f:.0%}: {int(sizes.loc[('linear probe', f), 'min'])}-{int(sizes.loc[('linear probe', f), 'max'])}"
    for f in fractions if ("linear probe", f) in sizes.index),
    "seeds per cell: " + ", ".join(f"{m} {f:.0%}: {n}" for (m, f), n in seeds.items())]
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

figure, axes = plt.subplots(2, len(inits), figsize=(3.6 * len(inits), 7.2), squeeze=False)
for column, init in enumerate(inits):
    for row, (kind, color_by) in enumerate((("test", "label"), ("sources", "source"))):
        file = out / "embeddings" / f"{init}-{kind}.parquet"
        if file.exists():
            title = f"{NAMES[init]}: fold 9 by superclass" if kind == "test" else f"{NAMES[init]}: by source"
            draw_embeddings(axes[row, column], file, color_by, title=title, point_size=5, legend_size=5)
figure.tight_layout()
figure.savefig(out / "embeddings.png", dpi=100)
print(f"wrote {out / 'results.csv'}, {out / 'table.md'} and {out / 'embeddings.png'}")
