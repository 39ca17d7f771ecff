"""Saved models carry their code: a fresh interpreter in which ``import hubert_ecg`` fails loads them with
``trust_remote_code=True`` and gets the package's outputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hubert_ecg
from hubert_ecg import HuBERTECGFeatureExtractor, HuBERTECGForSequenceClassification, demo_model_path
from hubert_ecg.demo import demo_records

PACKAGE = Path(hubert_ecg.__file__).parent

# Runs in a subprocess: every import of hubert_ecg (and of any module of it) raises ImportError.
BLOCKED = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] == 'hubert_ecg':
            raise ImportError('hubert_ecg is not installed here')
sys.meta_path.insert(0, Block())
import numpy as np, torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForSequenceClassification
"""


def _run_blocked(code: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _model_code_check(directory: Path, inputs: Path) -> str:
    return f"""
model = AutoModelForSequenceClassification.from_pretrained({str(directory)!r}, trust_remote_code=True).eval()
assert not any(name.split('.')[0] == 'hubert_ecg' for name in sys.modules)
x = torch.from_numpy(np.load({str(inputs)!r}))
with torch.no_grad():
    logits = model(x).logits
np.save({str(inputs)!r}.replace('.npy', '_logits.npy'), logits.numpy())
print(type(model).__module__, type(model).__name__)
"""


def test_saved_classifier_loads_as_remote_code_with_the_packages_logits(finetuned_dir, expected, tmp_path):
    model = HuBERTECGForSequenceClassification.from_pretrained(finetuned_dir).eval()
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    assert {p.name for p in saved.glob("*.py")} == {"configuration.py", "modeling.py"}
    auto_map = json.loads((saved / "config.json").read_text())["auto_map"]
    assert {entry.split(".")[0] for entry in auto_map.values()} <= {"configuration", "modeling"}
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, expected["input_values_10s"])

    out = _run_blocked(_model_code_check(saved, inputs), tmp_path)
    assert "HuBERTECGForSequenceClassification" in out and "transformers_modules" in out
    remote = np.load(tmp_path / "inputs_logits.npy")
    with torch.no_grad():
        ours = model(torch.from_numpy(expected["input_values_10s"])).logits.numpy()
    np.testing.assert_array_equal(remote, ours)
    np.testing.assert_allclose(remote, expected["classifier_logits_10s"], atol=1e-4, rtol=0)


DEMO_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "calibration.json", "metrics.json",
              "fold9_metrics.json", "probe_metrics.json", "README.md"}


def test_bundled_demo_model_directory_holds_no_code():
    """The demo model directory holds weights, configs, calibration, metrics and card, and no copy of the package's
    code: no .py file, and no auto_map pointing at one."""
    directory = Path(demo_model_path())
    assert {p.name for p in directory.iterdir()} == DEMO_FILES
    for name in ("config.json", "preprocessor_config.json"):
        assert "auto_map" not in json.loads((directory / name).read_text()), name


def _save_demo_copy(directory: Path) -> Path:
    """A fresh save_pretrained copy of the demo model and its feature extractor: with the package's code."""
    HuBERTECGForSequenceClassification.from_pretrained(demo_model_path()).save_pretrained(directory)
    HuBERTECGFeatureExtractor.from_pretrained(demo_model_path()).save_pretrained(directory)
    return directory


@pytest.mark.slow  # 4 s; the classifier case stays in the default run
def test_saved_demo_model_loads_as_remote_code(tmp_path):
    directory = _save_demo_copy(tmp_path / "demo")
    assert {p.name for p in directory.glob("*.py")} == {"configuration.py", "modeling.py", "processing.py", "leads.py"}
    auto_map = json.loads((directory / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration.HuBERTECGConfig",
                        "AutoModelForSequenceClassification": "modeling.HuBERTECGForSequenceClassification"}
    for module in ("configuration", "modeling"):
        assert (directory / f"{module}.py").read_bytes() == (PACKAGE / f"{module}.py").read_bytes(), module
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6000)).astype(np.float32)
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, x)
    _run_blocked(_model_code_check(directory, inputs), tmp_path)
    model = HuBERTECGForSequenceClassification.from_pretrained(demo_model_path()).eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "inputs_logits.npy"), ours)


@pytest.mark.slow  # ~4 s each; the classifier test above runs remote code by default
@pytest.mark.parametrize("source", ["saved", "demo"])
def test_feature_extractor_loads_as_remote_code(tmp_path, source):
    """The preprocessing travels too: processing.py and the lead names it imports (leads.py); for a default feature
    extractor and for the demo model's, saved afresh."""
    if source == "saved":
        directory = tmp_path / "fe"
        HuBERTECGFeatureExtractor().save_pretrained(directory)
    else:
        directory = tmp_path / "demo"
        HuBERTECGFeatureExtractor.from_pretrained(demo_model_path()).save_pretrained(directory)
    auto_map = json.loads((directory / "preprocessor_config.json").read_text())["auto_map"]
    assert auto_map == {"AutoFeatureExtractor": "processing.HuBERTECGFeatureExtractor"}
    for module in ("processing", "leads"):
        assert (directory / f"{module}.py").read_bytes() == (PACKAGE / f"{module}.py").read_bytes(), (
            f"{directory / module}.py differs from hubert_ecg/{module}.py"
        )
    record = hubert_ecg.read_ecg(demo_records()[1])  # a real 10 s, 500 Hz PTB-XL record, leads as WFDB names them
    np.save(tmp_path / "signal.npy", record.signal)
    extractor = HuBERTECGFeatureExtractor.from_pretrained(directory)
    ours = extractor(record.signal, sampling_rate=record.sampling_rate, lead_names=record.lead_names,
                     return_tensors="np")["input_values"]
    code = f"""
extractor = AutoFeatureExtractor.from_pretrained({str(directory)!r}, trust_remote_code=True)
assert not any(name.split('.')[0] == 'hubert_ecg' for name in sys.modules)
signal = np.load({str(tmp_path / "signal.npy")!r})
out = extractor(signal, sampling_rate={record.sampling_rate!r}, lead_names={list(record.lead_names)!r}, return_tensors="np")
np.save({str(tmp_path / "remote.npy")!r}, out["input_values"])
"""
    _run_blocked(code, tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "remote.npy"), ours)
