"""Manifests of the label-efficiency study (docs/pretraining.md, "Label efficiency").

Writes into OUT_DIR:
- ``pretrain_records.txt``: every record under DATA_DIR for unlabelled pretraining, except PTB-XL strat_fold 9 (the
  test fold, in ``ptbxl/`` and ``ptbxl_extra/``) and ``ptbxl/records500`` (the same fold-9 ECGs at 500 Hz);
- ``train.csv``: the labelled records of PTB-XL folds 1-8 (``ptbxl`` + ``ptbxl_extra``, 100 Hz), the five
  superdiagnostic classes as label columns;
- ``test.csv``: fold 9, the same columns.

Usage: python examples/label_efficiency/manifests.py [DATA_DIR] [OUT_DIR]
"""

import sys
from pathlib import Path

import pandas as pd

from hubert_ecg.io import find_records
from hubert_ecg.training.data import parse_fold_splits, read_ptbxl, split_by_fold

data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data").resolve()
out = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/label_efficiency")
out.mkdir(parents=True, exist_ok=True)
ptbxl = [data / "ptbxl", data / "ptbxl_extra"]

# fold-9 records of both PTB-XL folders, by their path without extension
held_out = set()
for folder in ptbxl:
    database = pd.read_csv(folder / "ptbxl_database.csv")
    for name in database.loc[database.strat_fold == 9, "filename_lr"]:
        held_out.add(str(folder / name))
records = [r for r in find_records([data], exclude=["*/records500/*"]) if str(Path(r).with_suffix("")) not in held_out]
(out / "pretrain_records.txt").write_text("\n".join(records) + "\n")

labelled = read_ptbxl([str(f) for f in ptbxl], "superdiagnostic", 100)
splits = split_by_fold(labelled, parse_fold_splits("train=1-8,test=9", required=("train", "test")))
for split in ("train", "test"):
    part = splits[split]
    table = pd.DataFrame(part.labels.astype(int), columns=part.label_names)
    table.insert(0, "filename", part.paths)
    table.to_csv(out / f"{split}.csv", index=False)
    print(f"{split}.csv: {len(part)} records, positives {dict(zip(part.label_names, part.labels.sum(0).astype(int)))}")
print(f"pretrain_records.txt: {len(records)} records ({len(held_out)} fold-9 records and records500 left out)")
