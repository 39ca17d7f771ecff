"""The ``hubert-ecg`` router and the one dialect of its commands: every command's ``--help`` built from its parser,
usage errors answered before torch is imported, both spellings of an option, deprecated spellings, and the one-line
message for a missing extra."""

import subprocess
import sys
from pathlib import Path

import pytest

import hubert_ecg_cli

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


# the commands whose arguments include transformers' TrainingArguments, which import torch: their --help needs it
WITH_TRAINING_ARGUMENTS = {"finetune", "pretrain"}


def _in_one_process(argvs: list[list[str]]) -> tuple[list[dict], list[str]]:
    """Run ``hubert_ecg_cli.main(argv)`` for each of ``argvs`` in one fresh process: each run's exit code, stdout and
    stderr, and the heavy modules (torch, the package) imported by the end."""
    import json

    result = _run(
        "import contextlib, io, json, sys, hubert_ecg_cli\n"
        "runs = []\n"
        f"for argv in {argvs!r}:\n"
        "    out, err = io.StringIO(), io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "        code = hubert_ecg_cli.main(argv)\n"
        "    runs.append({'argv': argv, 'code': code, 'out': out.getvalue(), 'err': err.getvalue()})\n"
        "heavy = [m for m in ('torch', 'hubert_ecg') if m in sys.modules]\n"
        "print(json.dumps({'runs': runs, 'heavy': heavy}))\n"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    return report["runs"], report["heavy"]


def test_help_and_usage_errors_import_neither_torch_nor_the_package():
    """Every command's --help (built from its own parser) and a usage error (an unknown option: the usage and one
    error line, exit 2) in one process, which imports neither torch nor the package. The commands with
    transformers' TrainingArguments check their own fields first and need torch for the rest: the next test."""
    light = [name for name in hubert_ecg_cli.COMMANDS if name not in WITH_TRAINING_ARGUMENTS]
    runs, heavy = _in_one_process([["--help"]] + [[name, "--help"] for name in light]
                                  + [[name, "--no_such_option", "1"] for name in light])
    assert heavy == []
    assert runs[0]["code"] == 0 and all(name in runs[0]["out"] for name in hubert_ecg_cli.COMMANDS)
    for name, run in zip(light, runs[1: 1 + len(light)]):
        assert run["code"] == 0 and run["out"].startswith(f"usage: hubert-ecg {name}"), (name, run["err"])
    for name, run in zip(light, runs[1 + len(light):]):
        assert run["code"] == 2 and f"hubert-ecg {name}: error:" in run["err"], (name, run["err"])


@pytest.mark.slow  # ~7 s: processes that import torch; CI runs the slow tests too
def test_help_and_usage_errors_of_the_training_commands():
    names = sorted(WITH_TRAINING_ARGUMENTS)
    runs, _ = _in_one_process([[name, "--help"] for name in names] + [[name, "--no_such_option", "1"] for name in names])
    for name, run in zip(names, runs[: len(names)]):
        assert run["code"] == 0 and run["out"].startswith(f"usage: hubert-ecg {name}"), (name, run["err"])
        assert "--per_device_train_batch_size" in run["out"]  # transformers' TrainingArguments, as installed
    for name, run in zip(names, runs[len(names):]):
        assert run["code"] == 2 and f"hubert-ecg {name}: error:" in run["err"], (name, run["err"])
    # their options and help are now cached (per transformers and hubert_ecg source): --help and an unknown option
    # are answered before torch, as are the commands' own fields
    first_help = [run["out"] for run in runs[: len(names)]]
    runs, heavy = _in_one_process([[name, "--no_such_option", "1"] for name in names]
                                  + [["finetune", "--label_set", "nope", "--learning_rate", "0.1"]]
                                  + [[name, "--help"] for name in names])
    assert heavy == [] and [run["code"] for run in runs] == [2] * (len(names) + 1) + [0] * len(names)
    assert all("unrecognized arguments: --no_such_option 1" in run["err"] for run in runs[: len(names)])
    assert "invalid choice: 'nope'" in runs[len(names)]["err"]
    assert [run["out"] for run in runs[len(names) + 1:]] == first_help  # the help as the parser printed it


def test_both_spellings_and_the_deprecated_one(tmp_path, capsys):
    """--batch_size and --batch-size are the same option; --stride still works for one release, with a note."""
    from hubert_ecg_cli.arguments import BatchingArguments, WindowingArguments, parse

    for spelling in ("--batch_size", "--batch-size"):
        batching, windowing = parse([spelling, "4"], (BatchingArguments, WindowingArguments), "prog")
        assert batching.batch_size == 4 and windowing.stride_seconds is None
    _, windowing = parse(["--stride", "2.5"], (BatchingArguments, WindowingArguments), "prog")
    assert windowing.stride_seconds == 2.5
    assert "prog: --stride is deprecated" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a field's own check is a usage error
        parse(["--batch_size", "0"], (BatchingArguments,), "prog")
    assert exit_.value.code == 2
    assert "prog: error: --batch_size must be a positive integer" in capsys.readouterr().err


def test_the_commands_choices_are_the_packages():
    """The few value lists the commands keep to answer usage errors without the package are the package's own."""
    from hubert_ecg import leads, measurements, onnx_backend
    from hubert_ecg_cli import arguments, measure

    assert arguments.BACKENDS == onnx_backend.BACKEND_CHOICES
    assert (arguments.MISSING_LEADS, arguments.DEFAULT_MISSING_LEADS) == (leads.MISSING_LEADS,
                                                                         leads.DEFAULT_MISSING_LEADS)
    assert measure.METHODS == measurements.METHODS


def test_unknown_command_exits_2_with_the_list():
    result = _run("import sys, hubert_ecg_cli; sys.exit(hubert_ecg_cli.main(['fintune']))")
    assert result.returncode == 2
    assert "unknown command 'fintune'" in result.stderr and "finetune" in result.stderr


def test_training_command_without_the_train_extra_says_which_extra():
    # `datasets` made uninstallable, as in a core-only install: one line naming the extra, exit 2, nothing run
    result = _run(
        "import sys; sys.modules['datasets'] = None\n"
        "import hubert_ecg_cli\n"
        "sys.exit(hubert_ecg_cli.main(['finetune', '--output_dir', 'never-written']))\n"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hubert-ecg finetune: needs the optional [train] dependencies (missing: datasets); install them with: "
        'pip install "hubert-ecg[train]"'
    ]
    assert not (REPO_ROOT / "never-written").exists()


def test_core_use_imports_nothing_of_the_training_stack():
    """`import hubert_ecg` registers everything, and the pipeline scores a real record, without the [train] extra's
    modules (accelerate is imported by transformers itself where installed; pandas by wfdb)."""
    result = _run(
        "import sys\n"
        "import hubert_ecg\n"
        "from transformers import AutoModel, pipeline\n"
        "clf = pipeline('ecg-classification', model=hubert_ecg.demo_model_path())\n"
        "from hubert_ecg.demo import demo_records\n"
        "scores = clf([r for r in demo_records() if r.endswith('00010_hr')][0])\n"
        "print(scores[0]['label'])\n"
        "training = ('datasets', 'sklearn', 'librosa', 'matplotlib', 'hubert_ecg.training')\n"
        "print('LOADED', [m for m in training if m in sys.modules])\n"
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
    assert result.stdout.splitlines()[0] == "NORM"  # record 00010 is a normal ECG (demo/records/labels.csv)


def test_help_states_each_default_once():
    """No option says "(default: ...)" twice, and no `--no_X` complement repeats X's help (issue 10)."""
    import contextlib
    import io
    import re

    for name in hubert_ecg_cli.COMMANDS:
        if name in WITH_TRAINING_ARGUMENTS:
            continue  # transformers' own help texts
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert hubert_ecg_cli.main([name, "--help"]) == 0
        flat = " ".join(buffer.getvalue().split())
        assert not re.search(r"\(default: [^)]*\) \(default:", flat), f"{name}: a default stated twice"
        for field, help_ in re.findall(r"--no_(\w+), --no-[\w-]+ (\S+ \S+ \S+)", flat):
            assert help_ == f"turn off --{field}", (name, field, help_)


def test_commands_print_no_loading_bars(capsys):
    """Quiet by default: a command that loads a model prints its results and notes, not transformers' "Loading
    weights" progress bar (on stderr, which holds the notes and the listings of skipped records)."""
    from hubert_ecg.demo import demo_records

    labels = str(Path(demo_records()[0]).parent / "labels.csv")
    assert hubert_ecg_cli.main(["evaluate", "--test_csv", labels, "--n_bootstrap", "10"]) == 0
    out, err = capsys.readouterr()
    assert "macro_auroc" in out
    assert "Loading weights" not in err and "it/s" not in err
    assert err.strip().startswith("hubert-ecg evaluate: using the bundled demo model")
