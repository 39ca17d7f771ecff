"""The benchmark scripts run on the CPU and print the tables the docs quote (figures are not checked: they are the
machine's; the columns, the rows and the arithmetic between them are)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _table(out: str, header_start: str) -> list[list[str]]:
    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_inference_benchmark_prints_flops_gemm_rates_and_the_measured_default():
    out = _run("inference.py", "--presets", "demo", "--batch-sizes", "4", "--runs", "1", "--no-onnx")
    assert "GFLOP per 5 s window; measured GEMM rate" in out
    flops = float(out.split("# demo: ")[1].split(" GFLOP per")[0])
    rows = _table(out, "| preset | batch | path |")
    paths = [row[2] for row in rows]
    assert paths[0] == "reference (HubertModel eager fp32)" and paths[1].startswith("default (")
    assert {"sdpa fp32", "bf16", "autocast bf16"} <= set(paths)
    for row in rows:
        ecgs, ratio, gflops = float(row[3]), float(row[4]), float(row[5])
        assert ratio > 0
        assert ecgs > 0 and gflops == pytest.approx(flops * ecgs, rel=0.02, abs=0.06)
        assert row[6].endswith(("fp32", "bf16")) and row[6].split("%")[0].isdigit()
        assert float(row[8]) < (1e-3 if "fp32" in row[6] else 0.5)  # bf16 hidden states: rounding, not wrong
    assert float(rows[0][4]) == 1.0


def test_window_flops_counts_the_small_preset_as_in_the_issue():
    """The small encoder: about 6.3 MFLOP per frame per layer (issue 21), 93 frames per 5 s window."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import inference as bench
    finally:
        sys.path.pop(0)
    config = bench.preset_config("small")
    assert bench.frames_per_window(config)[-1] == 93
    per_layer = 2 * (4 * 512 * 512 + 2 * 512 * 2048)
    assert per_layer == pytest.approx(6.3e6, rel=0.01)
    encoder = config.num_hidden_layers * 93 * (per_layer + 4 * 93 * 512)
    assert encoder < bench.window_flops(config) < encoder + 2.6e9  # plus the convolutions (about 2.5 GFLOP)
