"""docs/fine-tuning.md runs as written: the CSV-manifest fine-tuning command from the clone root (a minute of training
on 2 CPU cores: marked slow) prints what the page shows, figure for figure but the timings; its bad-record message is
the page's; the Cardio-Learning config example builds the config its comments describe."""

import re
import shlex

import pytest

from doc_pages import fenced_blocks
from hubert_ecg_cli import main as cli_main

PAGE = "fine-tuning.md"
# timings differ from run to run and machine to machine: compared as "T"
TIMINGS = re.compile(r'("(?:eval|train)_(?:runtime|samples_per_second|steps_per_second)": )[0-9.e+-]+|'
                     r"(eval_runtime\s+= ).*")


def _masked(text: str) -> list[str]:
    return [TIMINGS.sub(lambda m: (m.group(1) or m.group(2)) + "T", line) for line in text.rstrip().splitlines()]


def _finetune(command: str, capsys) -> tuple[str, str]:
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[0] == "hubert-ecg" and cli_main(argv[1:]) == 0, command
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.mark.slow
def test_manifest_command_prints_what_the_page_shows(docs_workdir, capsys):
    command = fenced_blocks(PAGE, "bash")[1]
    shown = fenced_blocks(PAGE, "")[1]
    out, err = _finetune(command, capsys)
    # the page: the start-up summary (stderr), the Trainer's log and final block (stdout), the last line (stderr)
    summary = err[err.index("hubert-ecg finetune\n"):]
    summary = summary[:summary.index("\n", summary.index("  output: ")) + 1]
    last = next(line for line in err.splitlines() if line.startswith("saved to manifest-model: "))
    printed = _masked(summary + out + last)
    head, tail = (_masked(part) for part in shown.split("\n...\n"))  # "...": the page cuts epochs 2-4
    assert printed[:len(head)] == head
    assert printed[-len(tail):] == tail
    assert len(printed) == len(head) + len(tail) + 6  # the cut: a training and a validation line per epoch 2-4
    assert (docs_workdir / "manifest-model" / "checkpoint-20").is_dir()


def test_cardio_learning_config_example():
    (code,) = fenced_blocks(PAGE, "python")
    namespace = {}
    exec(compile(code, "docs/fine-tuning.md", "exec"), namespace)
    config = namespace["config"]
    assert config.num_labels == 164 and config.problem_type == "multi_label_classification"
    assert config.label_descriptions["IRBBB"] == "incomplete right bundle branch block"  # as its comment says
    assert list(config.label_descriptions) == [config.id2label[i] for i in range(164)]


@pytest.mark.slow
def test_bad_record_message_is_the_pages(docs_workdir, capsys):
    """"The same manifest with one line naming a record that is not there": the stderr lines the page shows (one
    epoch here: the lines do not depend on the training)."""
    manifest = (docs_workdir / "examples" / "ptbxl_train.csv").read_text()
    (docs_workdir / "bad_train.csv").write_text(manifest + "records100/00000/00100_lr,50,F,1,0,0,0,0\n")
    command = fenced_blocks(PAGE, "bash")[1].replace("examples/ptbxl_train.csv", "bad_train.csv")
    argv = shlex.split(command.replace("\\\n", " ").replace("--num_train_epochs 5", "--num_train_epochs 1"))
    assert cli_main(argv[1:]) == 1  # a record skipped: status 1
    err = capsys.readouterr().err.rstrip().splitlines()
    shown = fenced_blocks(PAGE, "")[2].rstrip().split("\n...\n")
    head, tail = shown[0].splitlines(), shown[1].splitlines()
    assert err[err.index(head[0]):err.index(head[0]) + len(head)] == head
    assert err[-len(tail):] == tail


def test_manifest_lines_shown_are_the_example_manifests():
    """"The first three lines of examples/ptbxl_train.csv (64 PTB-XL records ...; examples/ptbxl_validation.csv
    holds 24 ...)"."""
    from doc_pages import REPO_ROOT

    train = (REPO_ROOT / "examples" / "ptbxl_train.csv").read_text().splitlines()
    validation = (REPO_ROOT / "examples" / "ptbxl_validation.csv").read_text().splitlines()
    assert fenced_blocks(PAGE, "")[0].splitlines() == train[:3]
    assert (len(train) - 1, len(validation) - 1) == (64, 24)
