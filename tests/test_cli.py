"""The ``hubert-ecg`` router: every command's ``--help``, fast start-up, and the one-line message for a missing extra."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hubert_ecg_cli

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def test_stored_help_texts_are_the_parsers_own():
    """`hubert_ecg/cli_help.json` is what every command's parser prints (regenerate: python -m hubert_ecg_cli
    --write-help)."""
    stored = json.loads(hubert_ecg_cli._help_path().read_text(encoding="utf-8"))
    generated = hubert_ecg_cli.generate_help_texts()
    assert sorted(stored) == sorted(hubert_ecg_cli.COMMANDS)
    for name in hubert_ecg_cli.COMMANDS:
        assert stored[name] == generated[name], f"stale help for {name}: run python -m hubert_ecg_cli --write-help"


@pytest.mark.parametrize("command", [None, *hubert_ecg_cli.COMMANDS])
def test_help_imports_neither_torch_nor_the_package(command):
    argv = ["--help"] if command is None else [command, "--help"]
    result = _run(
        "import sys, hubert_ecg_cli\n"
        f"code = hubert_ecg_cli.main({argv!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'hubert_ecg') if m in sys.modules]\n"
        "print('IMPORTED', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stderr
    if command is None:
        assert all(name in result.stdout for name in hubert_ecg_cli.COMMANDS)
    else:
        assert result.stdout.startswith(f"usage: hubert-ecg {command}")


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
    import re

    for name, text in hubert_ecg_cli.generate_help_texts().items():
        flat = " ".join(text.split())
        assert not re.search(r"\(default: [^)]*\) \(default:", flat), f"{name}: a default stated twice"
        for field, help_ in re.findall(r"--no_(\w+), --no-[\w-]+ (\S+ \S+ \S+)", flat):
            assert help_ == f"turn off --{field}", (name, field, help_)
