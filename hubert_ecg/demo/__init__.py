"""The bundled demo model and a handful of real PTB-XL records.

The demo model is a small lead-agnostic HuBERT-ECG (hidden size 128, 3 layers) trained from random initialisation by
``examples/train_demo.sh`` on the PTB-XL records of ``../shared/data`` (strat_fold 1-7 for training, 8 for the epoch
and the calibration, 9 for the test figures) for the five superdiagnostic classes NORM, MI, STTC, CD and HYP; its
model card (``model/README.md``) holds the exact commands and its fold-9 metrics (docs/demo-model.md: how its recipe
was chosen). It is a demonstration of the package, not a clinical tool.

The records (``records/``) are six 12-lead, 10 s, 500 Hz PTB-XL ECGs of strat_fold 9, CC BY 4.0 (Wagner et al.,
Scientific Data 7, 154, 2020; see ``records/README.md`` and ``records/LICENSE.txt``), with their labels in
``records/labels.csv``.
"""

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent

__all__ = ["demo_model_description", "demo_model_path", "demo_records", "demo_labels_path"]


def demo_model_path() -> str:
    """Directory of the bundled demo model (``config.json``, ``model.safetensors``, ``preprocessor_config.json``,
    ``README.md``), for ``from_pretrained`` or ``pipeline("ecg-classification", model=...)``.

    Raises:
        ValueError: if the installed package does not contain the model files.
    """
    path = _HERE / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ValueError(f"the demo model is missing from {str(path)!r}; reinstall hubert-ecg")
    return str(path)


def demo_model_description() -> str:
    """What the demo model is, in one phrase for messages: its training records counted from its ``metrics.json``
    (written by ``hubert-ecg finetune``), e.g. "a small lead-agnostic model trained on 1,879 PTB-XL records for
    NORM/MI/STTC/CD/HYP".

    Raises:
        ValueError: if the installed package does not contain the model files (:func:`demo_model_path`).
    """
    metrics = json.loads((Path(demo_model_path()) / "metrics.json").read_text())
    return (f"a small lead-agnostic model trained on {metrics['train_records']:,} PTB-XL records for "
            "NORM/MI/STTC/CD/HYP")


def demo_records() -> list[str]:
    """Paths of the bundled PTB-XL records (WFDB record names without extension, as ``read_ecg`` takes them),
    sorted."""
    return [str(p.with_suffix("")) for p in sorted((_HERE / "records").glob("*.hea"))]


def demo_labels_path() -> str:
    """The manifest CSV of the bundled records (``filename``, ``age``, ``sex``, NORM, MI, STTC, CD, HYP)."""
    return str(_HERE / "records" / "labels.csv")
