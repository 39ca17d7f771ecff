"""``hubert-ecg predict|embed ... --output-dir OUT`` sharded over the processes of ``accelerate launch``
(hubert_ecg/sharding.py): 2 gloo CPU processes write the rows of 1 process, and a rerun finishes only what is
missing."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hubert_ecg.sharding import ShardedRun, my_shard
from hubert_ecg.training.probe import read_embeddings
from hubert_ecg_cli import main as cli_main

from test_pretrain import REPO, _env, _free_port

RECORDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptbxl" / "records100" / "00000"


@pytest.fixture(scope="module")
def inputs():
    if not RECORDS.is_dir():
        pytest.skip("needs ../shared/data/ptbxl")
    names = sorted({p.with_suffix("").as_posix() for p in RECORDS.glob("*_lr.hea")})[:12]
    return names + [str(RECORDS / "missing_lr")]  # one bad record: listed, exit 1


def _rows(paths):
    """(header, sorted data rows) of csv files with one header."""
    header, rows = None, []
    for path in paths:
        table = list(csv.reader(io.StringIO(Path(path).read_text())))
        assert header in (None, table[0])
        header, rows = table[0], rows + table[1:]
    return header, sorted(rows)


def test_my_shard_is_this_process_block():
    class Two:  # the PartialState interface for 2 processes
        num_processes, process_index = 2, 1

        def split_between_processes(self, items):
            import contextlib

            return contextlib.nullcontext(items[(len(items) + 1) // 2:])

    assert my_shard(Two(), [1, 2, 3]) == [3]


@pytest.mark.slow  # several seconds of training processes; CI runs the slow tests too
def test_two_processes_write_the_rows_of_one_and_a_rerun_finishes_the_rest(inputs, tmp_path, capsys):
    # one process, today's commands: the reference rows
    assert cli_main(["predict", *inputs, "--format", "csv"]) == 1
    reference = tmp_path / "reference.csv"
    reference.write_text(capsys.readouterr().out)
    assert cli_main(["embed", *inputs, "--output", str(tmp_path / "reference.parquet")]) == 1
    capsys.readouterr()

    # 2 gloo processes, predict then embed in one launch (one start-up)
    out_p, out_e = tmp_path / "predict", tmp_path / "embed"
    script = tmp_path / "both.py"
    script.write_text(
        "import json, os, sys\nfrom hubert_ecg_cli import main\n"
        f"codes = [main(['predict', *{inputs!r}, '--output_dir', {str(out_p)!r}, '--batch-size', '4']),\n"
        f"         main(['embed', *{inputs!r}, '--output_dir', {str(out_e)!r}, '--batch-size', '4'])]\n"
        f"open(os.path.join({str(tmp_path)!r}, 'codes-' + os.environ['RANK']), 'w').write(json.dumps(codes))\n"
    )
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", str(_free_port()), str(script)]
    proc = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    codes = [json.loads((tmp_path / f"codes-{rank}").read_text()) for rank in (0, 1)]
    assert codes[0] == [1, 1]  # process 0 answers for the folder: one record was not scored
    assert "missing_lr" in proc.stderr and "ECG/s" in proc.stderr  # listed; one progress bar

    # predict: disjoint shards whose union is the one-process csv, row for row
    shards = [out_p / "predictions-0-of-2.csv", out_p / "predictions-1-of-2.csv"]
    assert _rows(shards) == _rows([reference])
    names = [set(r[0] for r in _rows([s])[1]) for s in shards]
    assert names[0] and names[1] and not names[0] & names[1]
    index = json.loads((out_p / "index.json").read_text())
    assert index["finished"] and index["num_processes"] == 2 and index["rows"] == len(inputs)
    assert index["shard_files"] == [s.name for s in shards] and index["inputs"] == sorted(inputs)
    assert [s["name"] for s in index["skipped"]] == [inputs[-1]]

    # embed: the same vectors as one process (float32, batches of other sizes)
    ref = read_embeddings(tmp_path / "reference.parquet")
    parts = [read_embeddings(out_e / f"embeddings-{rank}-of-2.parquet") for rank in (0, 1)]
    paths = parts[0].paths + parts[1].paths
    assert sorted(paths) == sorted(ref.paths) and len(set(paths)) == len(paths)
    vectors = dict(zip(paths, np.concatenate([p.vectors for p in parts])))
    np.testing.assert_allclose(np.stack([vectors[p] for p in ref.paths]), ref.vectors, rtol=1e-4, atol=1e-5)
    assert [s["name"] for s in json.loads((out_e / "index.json").read_text())["skipped"]] == [inputs[-1]]

    # resume (one process now): cut process 1's csv to its first row plus half a line, as a kill leaves it;
    # the rerun scores only the rows that are gone
    lines = shards[1].read_text().splitlines(keepends=True)
    shards[1].write_text("".join(lines[:2]) + lines[2][:20])
    gone = {line.split(",")[0] for line in lines[2:]}
    assert cli_main(["predict", *inputs, "--output-dir", str(out_p)]) == 1
    new = out_p / "predictions-0-of-1.csv"
    assert {r[0] for r in _rows([new])[1]} == gone
    assert _rows([*shards, new]) == _rows([reference])
    assert json.loads((out_p / "index.json").read_text())["finished"]

    # embed resume: the file of process 1 lost; the rerun embeds its records only
    lost = set(parts[1].paths)
    (out_e / "embeddings-1-of-2.parquet").unlink()
    assert cli_main(["embed", *inputs, "--output-dir", str(out_e)]) == 1
    assert set(read_embeddings(out_e / "embeddings-0-of-1.parquet").paths) == lost

    # a folder written with other settings is refused
    assert cli_main(["predict", *inputs, "--output-dir", str(out_p), "--top-k", "2"]) == 2
    assert "holds the output" in capsys.readouterr().err


def test_output_dir_refuses_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")

    class One:
        process_index, num_processes, is_main_process = 0, 1, True

    with pytest.raises(ValueError, match="is a file"):
        ShardedRun(path, "predict", {}, One())


def test_embed_needs_one_output(inputs, capsys):
    assert cli_main(["embed", inputs[0]]) == 2  # a usage error
    assert "give one of --output FILE or --output_dir OUT" in capsys.readouterr().err


def test_main_process_first_loads_on_the_main_process_before_the_others():
    """What the main process measures and caches while loading (the inference settings) the others read: they load
    after the barrier; an error of the main process is raised after it, so nobody waits forever."""
    from hubert_ecg.sharding import main_process_first

    events = []

    class State:
        def __init__(self, main):
            self.is_main_process = main

        def wait_for_everyone(self):
            events.append("barrier")

    assert main_process_first(State(True), lambda: events.append("main") or "m") == "m"
    assert main_process_first(State(False), lambda: events.append("other") or "o") == "o"
    assert events == ["main", "barrier", "barrier", "other"]
    events.clear()

    def fail():
        raise ValueError("cannot load the model")

    with pytest.raises(ValueError, match="cannot load"):
        main_process_first(State(True), fail)
    assert events == ["barrier"]
