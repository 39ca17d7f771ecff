"""Shared fixtures: paths to the reference vectors and the real records in ``../shared``.

Tests never touch the network (``HF_HUB_OFFLINE=1`` is forced here as well as in the README command), and run
models in float32 (``HUBERT_ECG_TUNING=0``) except where a test measures settings itself.
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Models run as loaded (float32, SDPA) unless a test turns measured settings on (tests/test_tuning.py): scores
# compared with reference values and the outputs the docs show must not depend on what this machine measures.
os.environ["HUBERT_ECG_TUNING"] = "0"
# measurements the package caches (bf16 speed-up for training, settings of tests that turn tuning on) go to a cache
# of the test session, not the user's
os.environ["HUBERT_ECG_CACHE"] = tempfile.mkdtemp(prefix="hubert_ecg_test_cache_")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HUBERT_ECG_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"


def _shared(path: Path) -> Path:
    """``path`` under ../shared; skipped where it is absent, except in CI (``CI`` set), where that is an error."""
    if not path.is_dir():
        message = f"{path} not found (set HUBERT_ECG_SHARED to the folder holding reference/ and data/)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _shared(REFERENCE)


@pytest.fixture(scope="session")
def expected(reference_dir) -> dict:
    """The reference inputs and outputs of the original release (``expected_outputs.npz``) as numpy arrays."""
    import numpy as np

    return dict(np.load(reference_dir / "expected_outputs.npz"))


@pytest.fixture(scope="session")
def finetuned_dir(reference_dir, tmp_path_factory) -> Path:
    """The release's fine-tuned reference checkpoint converted to a ``save_pretrained`` directory."""
    from hubert_ecg import convert_original_checkpoint

    out = tmp_path_factory.mktemp("finetuned")
    convert_original_checkpoint(reference_dir / "original_finetuned.pt", out)
    return out


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _shared(DATA)


@pytest.fixture
def docs_workdir(tmp_path, data_dir, monkeypatch):
    """A working directory laid out as a clone's root beside ``../shared``: a ``shared`` link to ../shared beside it,
    links to the repository's ``examples/`` and ``hubert_ecg/`` in it and an empty ``docs/images/``, so the docs'
    ``../shared/...``, ``examples/...`` and ``hubert_ecg/demo/...`` paths resolve and what a command writes under
    ``docs/`` stays in the test's folder."""
    (tmp_path / "shared").symlink_to(data_dir.parent, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    for name in ("examples", "hubert_ecg"):
        (work / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    (work / "docs" / "images").mkdir(parents=True)
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def demo_onnx_dir(tmp_path_factory) -> Path:
    """The bundled demo model exported once per session (`hubert-ecg export-onnx MODEL DIR`: model.onnx, config.json,
    preprocessor_config.json), for the tests of both runtimes; tests read it and write elsewhere."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import hubert_ecg
    from hubert_ecg_cli.export_onnx import main as export_onnx_cli

    out = tmp_path_factory.mktemp("onnx") / "demo-onnx"
    assert export_onnx_cli([str(hubert_ecg.demo_model_path()), str(out)]) == 0
    return out

