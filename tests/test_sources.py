"""Several pretraining sources: parsing, mixing probabilities and stopping strategies (datasets.interleave_datasets),
per-source losses in the logs for every objective on real records (PTB-XL and CinC 2021 as two sources), Parquet
window shards streamed, split across processes, and resumed after kill -9."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from hubert_ecg import HuBERTECGConfig, HuBERTECGForPreTraining, HuBERTECGForSequenceClassification
from hubert_ecg_cli.arguments import parse as parse_args
from hubert_ecg.training.objectives import cmsc_loss, nt_xent_loss
from hubert_ecg.training.pretrain import (
    PretrainArguments,
    build_trainer,
    per_sample_contrastive_loss,
    per_sample_masked_loss,
)
from hubert_ecg.training.sources import StreamingWindows, mix_rows, parse_sources, record_held_out
from hubert_ecg.training.window_dataset import load_window_dataset
from hubert_ecg_cli import main as cli_main
# the tiny model, logs, environment and kill -9 of the pretraining tests
from test_pretrain import REPO, TINY, _env, _history, _kill_after_checkpoint, _losses
PTBXL = [f"ptbxl/records100/00000/{i:05d}_lr" for i in range(1, 7)]  # 6 records of 10 s at 100 Hz
CINC = ["cinc2021/E07500", "cinc2021/E07501", "cinc2021/E07502", "cinc2021/JS20000", "cinc2021/JS20001"]  # 500 Hz


@pytest.fixture(scope="module")
def two_sources(data_dir, tmp_path_factory):
    """Two folders of real records (PTB-XL, CinC 2021: 12 + 10 windows of 5 s) and their Parquet window shards."""
    root = tmp_path_factory.mktemp("sources")
    for name, records in (("ptbxl", PTBXL), ("cinc", CINC)):
        for record in records:
            for file in (data_dir / record).parent.glob((data_dir / record).name + ".*"):
                (root / name).mkdir(parents=True, exist_ok=True)
                shutil.copy(file, root / name / file.name)
        assert cli_main(["windows", str(root / name), "--output_dir", str(root / f"{name}_parquet"),
                         "--format", "parquet", "--windows_per_file", "4"]) == 0
    return root


def _args(out, steps=4, batch=4, **extra):
    args = ["--output_dir", str(out), "--config_overrides", TINY, "--max_steps", str(steps),
            "--per_device_train_batch_size", str(batch), "--learning_rate", "1e-3", "--warmup_steps", "0",
            "--logging_steps", "1", "--save_steps", "2", "--eval_steps", "2", "--validation_fraction", "0.2",
            "--report_to", "none", "--seed", "7", "--dataloader_pin_memory", "false"]
    for key, value in extra.items():
        args += [f"--{key}", *(value if isinstance(value, list) else [str(value)])]
    return args


def test_parse_sources_forms_and_errors():
    specs = parse_sources(["ptbxl=data/ptbxl@7", "data/cinc2021@3"])
    assert [(s.name, s.path, s.probability) for s in specs] == [("ptbxl", "data/ptbxl", 0.7),
                                                                ("cinc2021", "data/cinc2021", 0.3)]
    yaml_form = parse_sources([{"name": "a", "path": "x", "probability": 0.25}, '{"path": "y/b", "probability": 0.75}'])
    assert [(s.name, s.probability) for s in yaml_form] == [("a", 0.25), ("b", 0.75)]
    assert [s.probability for s in parse_sources(["a=x", "b=y", "c=z"])] == pytest.approx([1 / 3] * 3)
    for bad, message in ((["a=x@0.5", "b=y"], "every source or to none"), (["a=x", "a=y"], "unique"),
                         (["a=x@0", "b=y@0"], "sum to 0"), ([{"path": "x", "weight": 1}], "may have"),
                         (["a b=x"], "letters")):
        with pytest.raises(ValueError, match=message):
            parse_sources(bad)


def test_mixing_probabilities_are_honoured_and_stopping_strategies():
    """0.7 / 0.3 over 2000 draws: the share of the first source lies within 3.5 binomial standard deviations
    (sqrt(0.7 * 0.3 / 2000) = 0.0102, so +-0.036) of 0.7; all_exhausted sees every row, first_exhausted stops at
    the first source that runs out, without repetition."""
    big, small = np.arange(0, 5000), np.arange(5000, 6000)
    items, source = mix_rows([big, small], [0.7, 0.3], seed=0, stopping_strategy="all_exhausted")
    share = (source[:2000] == 0).mean()
    assert abs(share - 0.7) < 3.5 * np.sqrt(0.7 * 0.3 / 2000), share
    np.testing.assert_array_equal(np.isin(items, big), source == 0)
    assert set(items) == set(range(6000))  # every window of every source in one epoch
    assert (source == 1).sum() > 1000  # the small source is repeated to keep its probability
    assert abs((source == 0).mean() - 0.7) < 0.02
    again, _ = mix_rows([big, small], [0.7, 0.3], seed=0, stopping_strategy="all_exhausted")
    np.testing.assert_array_equal(items, again)  # seeded
    other, _ = mix_rows([big, small], [0.7, 0.3], seed=1, stopping_strategy="all_exhausted")
    assert not np.array_equal(items[:100], other[:100])
    first, first_source = mix_rows([big, small], [0.7, 0.3], seed=0, stopping_strategy="first_exhausted")
    assert len(set(first)) == len(first)  # nothing repeated
    assert (first_source == 1).sum() == len(small) and (first_source == 0).sum() < len(big)
    once, _ = mix_rows([big, small], [0.7, 0.3], seed=0, stopping_strategy="all_exhausted_without_replacement")
    assert sorted(once) == list(range(6000))
    with pytest.raises(ValueError, match="stopping_strategy"):
        mix_rows([big], [1.0], 0, "never")


def test_per_sample_losses_add_up_to_the_batch_losses():
    torch.manual_seed(0)
    config = HuBERTECGConfig.from_preset("small", **json.loads(TINY), vocab_sizes=[7, 5], ensemble_length=2)
    model = HuBERTECGForPreTraining(config).eval()
    frames = config.num_frames(6000)
    labels = torch.randint(0, 5, (3, 2, frames))
    labels[1, :, :4] = -100
    mask = torch.zeros(3, frames, dtype=torch.bool)
    mask[:, 10:40] = True  # the same number of masked frames in every window
    with torch.no_grad():
        out = model(torch.randn(3, 6000), labels=labels, mask_time_indices=mask)
    per_sample = per_sample_masked_loss(out.logits, labels, mask, config.unmasked_loss_weight)
    assert per_sample.shape == (3,)
    one = [model.compute_loss(tuple(c[i:i + 1] for c in out.logits), labels[i:i + 1], mask[i:i + 1]) for i in range(3)]
    np.testing.assert_allclose(per_sample.numpy(), torch.stack(one).numpy(), rtol=1e-5)
    np.testing.assert_allclose(per_sample.mean().item(), out.loss.item(), rtol=1e-5)

    embeddings = torch.randn(8, 6)  # 4 samples, two views each
    simclr = per_sample_contrastive_loss("simclr", embeddings, torch.arange(4), 0.1)
    assert simclr.mean().item() == pytest.approx(nt_xent_loss(embeddings[:4], embeddings[4:], 0.1).item(), rel=1e-5)
    cmsc = per_sample_contrastive_loss("cmsc", embeddings, torch.tensor([3, 1, 4, 0]), 0.1)
    assert cmsc.mean().item() == pytest.approx(
        cmsc_loss(embeddings[:4], embeddings[4:], torch.tensor([3, 1, 4, 0]), temperature=0.1).item(), rel=1e-5)


def test_two_sources_every_objective_logs_loss_per_source(two_sources, tmp_path):
    """PTB-XL and CinC records as two sources (0.7 / 0.3): `hubert-ecg windows --sources` combines them, `cluster`
    labels the combination, and hubert+cmsc pretrains on the mixture with loss/ptbxl and loss/cinc in the logs
    (eval too); cmsc pairs come from one record of one source; simclr runs on a YAML `sources:` block."""
    root = two_sources
    sources = [f"ptbxl={root / 'ptbxl'}@0.7", f"cinc={root / 'cinc'}@0.3"]
    windows = tmp_path / "windows"
    assert cli_main(["windows", "--sources", *sources, "--output_dir", str(windows)]) == 0
    combined = load_window_dataset(windows)
    assert combined["source"] == ["ptbxl"] * 12 + ["cinc"] * 10
    assert cli_main(["cluster", "--windows_dir", str(windows), "--output_dir", str(tmp_path / "labels"),
                     "--num_clusters", "6", "--kmeans_n_init", "1"]) == 0
    # the combination with its labels as Parquet, one folder per source, ready to stream
    assert cli_main(["windows", "--windows_dir", str(windows), "--labels_dirs", str(tmp_path / "labels"),
                     "--format", "parquet", "--output_dir", str(tmp_path / "shards")]) == 0
    for name, count in (("ptbxl", 12), ("cinc", 10)):
        info = json.loads((tmp_path / "shards" / name / "windows.json").read_text())
        assert info["num_windows"] == count and info["vocab_sizes"] == [6] and info["format"] == "parquet"
    exported = load_window_dataset(tmp_path / "shards")
    assert exported["source"] == combined["source"] and exported["record_id"] == combined["record_id"]
    np.testing.assert_array_equal(np.asarray(exported["labels"])[:, 0], np.load(tmp_path / "labels" / "labels.npy"))
    out = tmp_path / "hubert_cmsc"
    args = _args(out, objective="hubert+cmsc", sources=sources, windows_dir=windows,
                 labels_dirs=str(tmp_path / "labels"))
    assert cli_main(["pretrain", *args]) == 0
    history = _history(out)
    train = [e for e in history if "loss" in e]
    assert [e["step"] for e in train] == [1, 2, 3, 4]
    assert all({"loss/ptbxl", "loss/cinc"} & set(e) for e in train)
    assert any("loss/cinc" in e for e in train) and any("loss/ptbxl" in e for e in train)
    for entry in train:  # the per-source means bracket the batch's loss (shares of one batch)
        parts = [entry[k] for k in ("loss/ptbxl", "loss/cinc") if k in entry]
        assert all(np.isfinite(parts)) and min(parts) - 0.5 <= entry["loss"] <= max(parts) + 0.5
    evaluations = [e for e in history if "eval_loss" in e]
    assert evaluations and all("eval_loss/ptbxl" in e and "eval_loss/cinc" in e for e in evaluations)
    results = json.loads((out / "pretrain_results.json").read_text())
    assert results["sources"]["ptbxl"]["probability"] == pytest.approx(0.7)
    assert results["stopping_strategy"] == "all_exhausted"
    assert sum(results["epoch_samples_per_source"].values()) >= results["train_windows"] // 2
    HuBERTECGForSequenceClassification.from_pretrained(out, num_labels=2)

    # pairs: one record of one source; validation held out by record within each source
    (parsed,) = parse_args(args, (PretrainArguments,), "hubert-ecg pretrain")
    trainer = build_trainer(parsed)
    pairs = trainer.train_dataset.pairs
    ids, names = combined["record_id"], combined["source"]
    assert all(ids[a] == ids[b] and names[a] == names[b] for a, b in pairs.tolist())
    held = {(names[a], ids[a]) for a, _ in trainer.eval_dataset.pairs.tolist()}
    assert held and not held & {(names[a], ids[a]) for a, _ in pairs.tolist()}

    config = tmp_path / "simclr.yaml"
    config.write_text("objective: simclr\nstopping_strategy: first_exhausted\nsources:\n"
                      f"  - {{name: ptbxl, path: {root / 'ptbxl'}, probability: 0.5}}\n"
                      f"  - {{name: cinc, path: {root / 'cinc'}, probability: 0.5}}\n")
    out = tmp_path / "simclr"
    assert cli_main(["pretrain", str(config), *_args(out, steps=2, windows_dir=tmp_path / "simclr_windows")]) == 0
    assert any("loss/ptbxl" in e or "loss/cinc" in e for e in _history(out) if "loss" in e)
    assert json.loads((out / "pretrain_results.json").read_text())["stopping_strategy"] == "first_exhausted"


def test_bad_source_arguments_exit_2(two_sources, tmp_path, capsys):
    root = two_sources
    cases = [
        (["--data", str(root / "ptbxl"), "--sources", f"a={root / 'cinc'}"], "not both"),
        (["--sources", f"a={root / 'cinc'}", "--stopping_strategy", "never"], "stopping_strategy"),
        (["--sources", f"a={root / 'cinc'}", "--streaming"], "does not support cmsc"),
        (["--sources", f"a={root / 'cinc'}", "--streaming", "--objective", "simclr", "--max_steps", "-1"],
         "max_steps"),
    ]
    for extra, message in cases:
        args = ["--output_dir", str(tmp_path / "bad"), "--objective", "cmsc", *extra]
        if "--objective" in extra:
            args = args[:2] + extra
        assert cli_main(["pretrain", *args]) == 2
        assert message in capsys.readouterr().err
    # streaming reads Parquet shards only
    assert cli_main(["pretrain", *_args(tmp_path / "bad2", objective="simclr", streaming="true",
                                        sources=[f"a={root / 'cinc'}"])]) == 2
    assert "--format parquet" in capsys.readouterr().err


@pytest.mark.slow  # several seconds of training processes; CI runs the slow tests too
def test_parquet_shards_stream_split_across_processes(two_sources):
    """The stream of two processes (split_dataset_by_node) holds disjoint windows that together are every window of
    the Parquet shards once; the held-out records (per source) are exactly those of the record-level hash split;
    the shuffle is seeded."""
    root = two_sources
    specs = parse_sources([f"ptbxl={root / 'ptbxl_parquet'}@0.5", f"cinc={root / 'cinc_parquet'}@0.5"])
    arrow = {name: load_window_dataset(root / f"{name}_parquet") for name in ("ptbxl", "cinc")}

    def windows(**kwargs):
        stream = StreamingWindows(specs, repeat=False, stopping_strategy="all_exhausted_without_replacement",
                                  shuffle_buffer_size=0, **kwargs)
        return [(specs[item["source_id"]].name, item["input_values"].tobytes()) for item in stream]

    every = {(name, np.asarray(v, dtype=np.float32).tobytes()) for name, d in arrow.items()
             for v in d.with_format("numpy")["input_values"]}
    parts = [windows(rank=rank, world_size=2) for rank in (0, 1)]
    assert all(len(p) == len(set(p)) for p in parts) and not set(parts[0]) & set(parts[1])
    assert set(parts[0]) | set(parts[1]) == every and len(parts[0]) + len(parts[1]) == 22
    specs = specs[:1]  # (one source: no 5 s pause at the end of an interleaved pass)
    held = windows(validation_fraction=0.3, split="validation")
    expected = {("ptbxl", np.asarray(row["input_values"], dtype=np.float32).tobytes())
                for row in arrow["ptbxl"] if record_held_out("ptbxl", row["record_id"], 0.3)}
    assert held and set(held) == expected
    train = windows(validation_fraction=0.3, split="train")
    assert not set(held) & set(train) and len(held) + len(train) == 12
    shuffled = [StreamingWindows(specs[:1], seed=3, shuffle_buffer_size=5).take(12) for _ in range(2)]
    assert [i["sample_index"] for i in shuffled[0]] == list(range(12))
    order = [[i["input_values"].tobytes() for i in s] for s in shuffled]
    assert order[0] == order[1] and order[0] != [v.tobytes() for v in arrow["ptbxl"].with_format("numpy")["input_values"]]


@pytest.mark.slow  # ~18 s: several training processes; CI runs the slow tests too
def test_streamed_run_resumes_after_kill_with_the_same_losses(two_sources, tmp_path):
    """simclr streamed from Parquet shards (one source: a pass ends without the 5 s pause of datasets' interleaving),
    several passes: kill -9 after a checkpoint, the same command resumes and gives the losses of an uninterrupted
    run; the streamed windows are those of the in-memory dataset."""
    root = two_sources
    extra = dict(objective="simclr", streaming="true", shuffle_buffer_size=6, sources=[f"ptbxl={root / 'ptbxl_parquet'}"],
                 save_steps=3, eval_steps=100)
    # every run in a subprocess with one thread (_env): a different thread count changes float sums in the 6th digit
    run = [sys.executable, "-m", "hubert_ecg_cli", "pretrain"]
    subprocess.run([*run, *_args(tmp_path / "ref", steps=8, **extra)], env=_env(), cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    reference = _losses(tmp_path / "ref")
    assert sorted(reference) == list(range(1, 9))
    out = tmp_path / "killed"
    args = _args(out, steps=8, **extra)
    _kill_after_checkpoint(args, out, 3)
    subprocess.run([*run, *args], env=_env(), cwd=REPO, check=True, capture_output=True, timeout=600)
    results = json.loads((out / "pretrain_results.json").read_text())
    assert results["resumed_from"].startswith(str(out / "checkpoint-")) and results["streaming"] is True
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, 9))
    for step, loss in reference.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-6), step
    assert all("loss/ptbxl" in e for e in _history(out) if "loss" in e)


def test_the_multi_source_example_parses(tmp_path):
    (args,) = parse_args([str(REPO / "examples" / "pretrain" / "multi_source.yaml"), "--use_cpu", "true"],
                         (PretrainArguments,), "x")
    specs = args.source_specs()
    assert [(s.name, s.probability) for s in specs] == [("ptbxl", 0.7), ("cinc", 0.3)]
    assert args.objective == "hubert+cmsc" and args.labels_dirs and args.stopping_strategy == "all_exhausted"


@pytest.mark.slow  # ~18 s: several training processes; CI runs the slow tests too
def test_two_process_streamed_run(two_sources, tmp_path):
    """`accelerate launch` on 2 CPU processes (gloo) streaming two Parquet sources: each process reads its own
    files (split_dataset_by_node), the loss per source is summed over both, and the model loads."""
    from test_pretrain import _launch_two_processes

    root = two_sources
    out = tmp_path / "ddp"
    args = _args(out, steps=3, batch=2, objective="simclr", streaming="true", shuffle_buffer_size=4, eval_steps=100,
                 sources=[f"ptbxl={root / 'ptbxl_parquet'}@0.5", f"cinc={root / 'cinc_parquet'}@0.5"])
    script = tmp_path / "stream.py"
    script.write_text(f"import sys\nfrom hubert_ecg_cli import main\nsys.exit(main(['pretrain', *{args!r}]))\n")
    _launch_two_processes(script)
    results = json.loads((out / "pretrain_results.json").read_text())
    assert results["processes"] == 2 and results["step"] == 3 and results["streaming"] is True
    train = [e for e in _history(out) if "loss" in e]
    assert [e["step"] for e in train] == [1, 2, 3] and all(np.isfinite(e["loss"]) for e in train)
    assert all(any(k.startswith("loss/") for k in e) for e in train)
    HuBERTECGForSequenceClassification.from_pretrained(out, num_labels=2)


def test_streamed_and_in_memory_runs_evaluate_the_same_windows_alike(two_sources, tmp_path):
    """The same Parquet source streamed and loaded in memory, same seed: the held-out windows (the record-level
    hash split), their order, views and batches are the same, so the evaluation before training gives the same
    loss (total and per source) in both."""
    root = two_sources
    common = dict(steps=1, objective="simclr", sources=[f"ptbxl={root / 'ptbxl_parquet'}"], eval_on_start="true",
                  validation_fraction=0.5, per_device_eval_batch_size=3)
    assert cli_main(["pretrain", *_args(tmp_path / "memory", windows_dir=tmp_path / "w", **common)]) == 0
    assert cli_main(["pretrain", *_args(tmp_path / "stream", streaming="true", **common)]) == 0
    first = [[e for e in _history(tmp_path / name) if "eval_loss" in e][0] for name in ("memory", "stream")]
    assert first[0]["step"] == first[1]["step"] == 0
    assert first[0]["eval_loss"] == pytest.approx(first[1]["eval_loss"], rel=1e-6)
    assert first[0]["eval_loss/ptbxl"] == pytest.approx(first[1]["eval_loss/ptbxl"], rel=1e-6)
    assert first[0]["eval_loss/ptbxl"] == pytest.approx(first[0]["eval_loss"], rel=1e-5)  # one source: the same mean


def test_streamed_hubert_reads_the_labels_exported_with_the_windows(two_sources, tmp_path, capsys):
    """`hubert-ecg windows --windows_dir W --labels_dirs L --format parquet` writes the windows with their cluster
    labels; `hubert` streamed from them evaluates the held-out windows before training exactly as the in-memory run
    on W with L (same windows, masks and labels), then trains."""
    root = two_sources
    windows = tmp_path / "windows"
    assert cli_main(["windows", str(root / "ptbxl"), "--output_dir", str(windows)]) == 0
    assert cli_main(["cluster", "--windows_dir", str(windows), "--output_dir", str(tmp_path / "labels"),
                     "--num_clusters", "5", "--kmeans_n_init", "1"]) == 0
    shards = tmp_path / "shards"
    assert cli_main(["windows", "--windows_dir", str(windows), "--labels_dirs", str(tmp_path / "labels"),
                     "--format", "parquet", "--output_dir", str(shards), "--windows_per_file", "5"]) == 0
    exported = load_window_dataset(shards)
    assert json.loads((shards / "windows.json").read_text())["vocab_sizes"] == [5]
    np.testing.assert_array_equal(np.asarray(exported["labels"])[:, 0], np.load(tmp_path / "labels" / "labels.npy"))
    common = dict(steps=2, eval_on_start="true", validation_fraction=0.5, per_device_eval_batch_size=3)
    assert cli_main(["pretrain", *_args(tmp_path / "memory", sources=[f"ptbxl={windows}"], windows_dir=tmp_path / "m",
                                        labels_dirs=str(tmp_path / "labels"), **common)]) == 0
    assert cli_main(["pretrain", *_args(tmp_path / "stream", sources=[f"ptbxl={shards}"], streaming="true",
                                        **common)]) == 0
    first = [[e for e in _history(tmp_path / name) if "eval_loss" in e][0] for name in ("memory", "stream")]
    for key in ("eval_loss", "eval_masked_accuracy", "eval_loss/ptbxl"):
        assert first[0][key] == pytest.approx(first[1][key], rel=1e-6), key
    assert all(np.isfinite(e["loss"]) for e in _history(tmp_path / "stream") if "loss" in e)
    # labels exported for hubert only: streaming hubert from shards without them stops at once
    assert cli_main(["pretrain", *_args(tmp_path / "x", sources=[f"p={root / 'ptbxl_parquet'}"], streaming="true",
                                        steps=1)]) == 2
    assert "labels" in capsys.readouterr().err
