"""HuBERT pretraining with accelerate on real records: two iterations, 2-process gloo run, crash and resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from hubert_ecg import HuBERTECGForPreTraining, HuBERTECGForSequenceClassification
from hubert_ecg.cli import main as cli_main
from hubert_ecg.training.clustering import KMeansCodebook, load_labels, mfcc_features
from hubert_ecg.training.pretrain import CRASH_EXIT_CODE, split_by_record
from hubert_ecg.training.windows import build_window_dataset, load_window_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = json.dumps(
    dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 5,
         classifier_proj_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0)
)
RECORDS = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "ptbxl/records100/00000/00003_lr",
           "cinc2021/E07500", "long/cpsc2021/data_8_4"]


@pytest.fixture(scope="module")
def iteration1(data_dir, tmp_path_factory):
    """A window dataset of real records (16 windows) and MFCC k-means labels (K=8)."""
    root = tmp_path_factory.mktemp("pretrain")
    build_window_dataset([str(data_dir / r) for r in RECORDS], root / "windows", show_progress=False)
    assert cli_main(["cluster", "--output_dir", str(root / "labels1"), "--windows_dir", str(root / "windows"),
                     "--num_clusters", "8", "--kmeans_n_init", "1"]) == 0
    return root


def _pretrain_args(root, out, labels="labels1", steps=6, **extra):
    args = ["--output_dir", str(out), "--windows_dir", str(root / "windows"), "--labels_dirs", str(root / labels),
            "--config_overrides", TINY, "--max_steps", str(steps), "--per_device_train_batch_size", "2",
            "--learning_rate", "1e-3", "--logging_steps", "1", "--save_steps", "2", "--eval_steps", "3",
            "--validation_fraction", "0.2", "--report_to", "none", "--seed", "7"]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return args


def _history(out):
    return [json.loads(line) for line in (Path(out) / "log_history.jsonl").read_text().splitlines() if line.strip()]


def _losses(out):
    return {e["step"]: e["loss"] for e in _history(out) if "loss" in e}


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("HF_HUB_ENABLE_HF_TRANSFER", None)
    return env


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _FakeHub:
    """HfApi stand-in that records uploads."""

    def __init__(self, uploads):
        self.uploads = uploads

    def create_repo(self, repo_id, private=None, exist_ok=False):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, ignore_patterns=None, **kwargs):
        self.uploads.append((repo_id, {p.name for p in Path(folder_path).iterdir()}, ignore_patterns))
        return "commit"


def test_split_keeps_records_together():
    ids = [f"r{i // 3}" for i in range(300)]
    train, val = split_by_record(ids, 0.2)
    assert len(train) + len(val) == 300 and 20 < len(val) < 100
    assert not {ids[i] for i in train} & {ids[i] for i in val}
    np.testing.assert_array_equal(split_by_record(ids, 0.2)[1], val)
    # a small dataset still gets the validation set it asks for
    assert [len(part) for part in split_by_record(["a", "b", "b"], 1e-6)] in ([1, 2], [2, 1])
    assert len(split_by_record(["a", "b", "b"], 0.0)[1]) == 0


def test_two_iterations_then_fine_tuning_model(iteration1, tmp_path, monkeypatch):
    root = iteration1
    # iteration 1: fresh tiny model on MFCC targets
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "it1", steps=4)]) == 0
    results = json.loads((tmp_path / "it1" / "pretrain_results.json").read_text())
    assert results["step"] == 4 and results["vocab_sizes"] == [8]
    assert np.isfinite(results["eval_loss"]) and 0.0 <= results["eval_masked_accuracy"] <= 1.0
    assert (tmp_path / "it1" / "model.safetensors").exists() and (tmp_path / "it1" / "README.md").exists()
    assert (tmp_path / "it1" / "preprocessor_config.json").exists()
    assert [e["step"] for e in _history(tmp_path / "it1") if "loss" in e] == [1, 2, 3, 4]

    # iteration 2: hidden states of layer 1 of iteration 1, new codebook of 10, continued backbone
    assert cli_main(["cluster", "--output_dir", str(root / "labels2"), "--windows_dir", str(root / "windows"),
                     "--features", "hidden", "--model_name_or_path", str(tmp_path / "it1"), "--layer", "1",
                     "--num_clusters", "10", "--kmeans_n_init", "1"]) == 0
    labels2, info2 = load_labels(root / "labels2")
    assert labels2.shape == (16, 93) and info2["layer"] == 1
    uploads = []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: _FakeHub(uploads))  # no network
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "it2", labels="labels2", steps=3,
                                                 model_name_or_path=tmp_path / "it1", learning_rate=0.0,
                                                 push_to_hub="true", hub_model_id="me/ecg-it2")]) == 0
    # --push_to_hub: one commit of the final model, its card, feature extractor and results; no training state
    [(repo_id, files, ignored)] = uploads
    assert repo_id == "me/ecg-it2" and "checkpoints/**" in ignored
    assert {"model.safetensors", "config.json", "README.md", "preprocessor_config.json"} <= files
    it1 = HuBERTECGForPreTraining.from_pretrained(tmp_path / "it1")
    it2 = HuBERTECGForPreTraining.from_pretrained(tmp_path / "it2")
    assert it2.config.vocab_sizes == [10] and it2.label_embedding[0].weight.shape[0] == 10
    # learning rate 0: the continued backbone is exactly iteration 1's
    for (name, a), b in zip(it1.hubert_ecg.state_dict().items(), it2.hubert_ecg.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)

    # the pretrained checkpoint loads into the classifier
    clf = HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "it2", num_labels=5)
    torch.testing.assert_close(clf.hubert_ecg.encoder.layers[0].attention.q_proj.weight,
                               it2.hubert_ecg.encoder.layers[0].attention.q_proj.weight)
    values = torch.from_numpy(load_window_dataset(root / "windows").with_format("numpy")[:2]["input_values"])
    assert clf.eval()(values).logits.shape == (2, 5)


def test_crash_and_resume_gives_the_same_losses(iteration1, tmp_path):
    root = iteration1
    # uninterrupted reference
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "ref", gradient_accumulation_steps=2)]) == 0
    reference = _losses(tmp_path / "ref")
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]
    # a run that crashes right after step 3 (last checkpoint: step 2)
    crashed = tmp_path / "crash"
    args = _pretrain_args(root, crashed, gradient_accumulation_steps=2)
    proc = subprocess.run([sys.executable, "-m", "hubert_ecg.cli", "pretrain", *args, "--stop_after_step", "3"],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == CRASH_EXIT_CODE, proc.stderr[-3000:]
    assert sorted(_losses(crashed)) == [1, 2, 3] and not (crashed / "model.safetensors").exists()
    assert (crashed / "checkpoints" / "checkpoint-2" / "progress.json").exists()
    # the same command again continues from step 2 and repeats step 3 with the same loss
    assert cli_main(["pretrain", *args]) == 0
    resumed = _losses(crashed)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-6), step
    assert json.loads((crashed / "pretrain_results.json").read_text())["step"] == 6


def test_two_process_gloo_run(iteration1, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine (gloo): sharded clustering (same labels as one process) and DDP."""
    root = iteration1
    script = tmp_path / "two_iterations.py"
    script.write_text(
        "import sys\nfrom hubert_ecg.cli import main\n"
        f"assert main(['cluster', '--output_dir', {str(tmp_path / 'labels')!r}, '--windows_dir', "
        f"{str(root / 'windows')!r}, '--num_clusters', '8', '--kmeans_n_init', '1']) == 0\n"
        f"sys.exit(main(['pretrain', *{_pretrain_args(root, tmp_path / 'ddp', steps=4, per_device_train_batch_size=2)!r}]))\n"
    )
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(_free_port()), str(script)]
    proc = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    # clustering sharded over 2 processes: all windows' frames fitted, every row labelled in order
    labels, info = load_labels(tmp_path / "labels")
    codebook = KMeansCodebook.load(tmp_path / "labels")
    assert codebook.info["fit_frames"] == 16 * 93 and labels.shape == (16, 93)
    values = load_window_dataset(root / "windows").with_format("numpy")[:]["input_values"]
    # (up to near-ties of zero-filled leads, whose distances differ in the last bits between batch shapes)
    assert (codebook.assign(mfcc_features(values)) == labels).mean() > 0.97
    results = json.loads((tmp_path / "ddp" / "pretrain_results.json").read_text())
    assert results["processes"] == 2 and results["effective_batch_size"] == 4 and results["step"] == 4
    assert all(np.isfinite(v) for v in _losses(tmp_path / "ddp").values())
    HuBERTECGForSequenceClassification.from_pretrained(tmp_path / "ddp", num_labels=3)


def test_sigkill_and_resume(iteration1, tmp_path):
    """A real kill -9 after a checkpoint, then the same command: the losses continue as if nothing happened."""
    root = iteration1
    assert cli_main(["pretrain", *_pretrain_args(root, tmp_path / "ref", steps=12, save_steps=4)]) == 0
    reference = _losses(tmp_path / "ref")
    out = tmp_path / "killed"
    args = _pretrain_args(root, out, steps=12, save_steps=4)
    proc = subprocess.Popen([sys.executable, "-m", "hubert_ecg.cli", "pretrain", *args], env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "checkpoint-4" / "progress.json").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists()
    assert cli_main(["pretrain", *args]) == 0
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, 13))
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-6), step
