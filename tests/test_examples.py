"""The paths users write themselves: examples/finetune_with_trainer.py and examples/quickstart.ipynb run as written,
on real PTB-XL records in ../shared (the notebook through nbclient, from the `dev` extra)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SHARED

EXAMPLES = REPO_ROOT / "examples"


def _env() -> dict:
    """The environment of the example: this checkout importable, offline, ../shared where the tests find it."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "HUBERT_ECG_SHARED": str(SHARED)}


@pytest.mark.slow  # runs a whole example: 7-9 s
def test_finetune_with_trainer_script(tmp_path, data_dir):
    script = EXAMPLES / "finetune_with_trainer.py"
    assert len(script.read_text().splitlines()) < 100
    out = tmp_path / "model"
    run = subprocess.run(
        [sys.executable, str(script), "--data_dir", str(data_dir / "ptbxl"), "--max_records", "24", "--max_steps", "4",
         "--output_dir", str(out)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout[run.stdout.rindex("\n{"):])
    assert printed["train_records"] == 24 and printed["validation_records"] == 24
    per_label = [v for k, v in printed.items() if k.startswith("eval_auroc_")]
    assert "eval_auroc_NORM" in printed  # the macro AUROC is the mean of the per-label ones it printed
    assert abs(printed["eval_macro_auroc"] - sum(per_label) / len(per_label)) < 1e-6

    # what it saved is a model and its feature extractor that the pipeline loads, with the script's labels
    import hubert_ecg  # noqa: F401
    from transformers import pipeline

    clf = pipeline("ecg-classification", model=str(out))
    scores = clf(str(data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"), top_k=None)
    assert sorted(s["label"] for s in scores) == sorted(["NORM", "SR", "IMI", "LVH"])


@pytest.mark.slow  # runs a whole example: 7-9 s
def test_quickstart_notebook(tmp_path, data_dir):
    nbclient = pytest.importorskip(
        "nbclient", reason="the notebook runs through nbclient: pip install -e .[dev] (nbclient, nbformat, ipykernel)"
    )
    import nbformat

    path = EXAMPLES / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "store the notebook without outputs"
    env = _env()
    previous = {key: os.environ.get(key) for key in ("PYTHONPATH", "HF_HUB_OFFLINE", "HUBERT_ECG_SHARED")}
    os.environ.update({key: env[key] for key in previous})  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = "\n".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "") for cell in code for output in cell.outputs
    )
    assert "torch.Size([3, 6000])" in text  # three 5 s windows of the 10 s record at a 2.5 s stride
    assert "'label': 'NORM'" in text  # the pipeline's scores
    # the scores of the model called directly say which are raw and which calibrated; the pipeline's are the latter
    assert "'raw sigmoid': {'NORM'" in text and "'calibrated': {'NORM'" in text
    calibrated_norm = re.search(r"'calibrated': \{'NORM': ([0-9.]+)", text).group(1)
    pipeline_norm = re.search(r"'label': 'NORM', 'score': ([0-9.]+)", text).group(1)
    assert round(float(pipeline_norm), 3) == float(calibrated_norm)
    assert "validation macro AUROC on 32 records" in text  # the Trainer ran


@pytest.mark.slow  # writes every study manifest: 5 s
def test_label_efficiency_manifests_hold_out_fold_9(tmp_path, data_dir):
    """The study's pretraining records leave out every PTB-XL fold-9 ECG (both folders, 100 and 500 Hz); its labelled
    manifests are folds 1-8 and fold 9 of ptbxl + ptbxl_extra."""
    import pandas as pd

    run = subprocess.run([sys.executable, str(EXAMPLES / "label_efficiency" / "manifests.py"), str(data_dir),
                          str(tmp_path)], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    pretrain = {str(Path(p).with_suffix("")) for p in (tmp_path / "pretrain_records.txt").read_text().split()}
    train, test = pd.read_csv(tmp_path / "train.csv"), pd.read_csv(tmp_path / "test.csv")
    assert list(train.columns) == ["filename", "NORM", "MI", "STTC", "CD", "HYP"] and (len(train), len(test)) == (1772, 250)
    fold9 = set()
    for folder in ("ptbxl", "ptbxl_extra"):
        database = pd.read_csv(data_dir / folder / "ptbxl_database.csv")
        fold9 |= {str(data_dir.resolve() / folder / f) for f in database.loc[database.strat_fold == 9, "filename_lr"]}
    assert len(fold9) == 259 and not fold9 & pretrain and not any("records500" in p for p in pretrain)
    assert set(test.filename) <= fold9 and not set(train.filename) & fold9
    assert set(train.filename) <= pretrain and any("cinc2021" in p for p in pretrain) and any("long/" in p for p in pretrain)
