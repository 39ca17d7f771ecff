"""docs/exported-models.md runs as written: its commands (export, predict with both runtimes and the int8 copy, the
backbone's export and embed) and its Python block, from a directory where ``hubert_ecg/demo`` resolves as in a
clone; the float32 predict tables equal PyTorch's."""

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("pyarrow")  # embed writes Parquet

from pathlib import Path  # noqa: E402

import hubert_ecg  # noqa: E402
from doc_pages import fenced_blocks, run_commands  # noqa: E402
from hubert_ecg_cli import main as cli_main  # noqa: E402

PAGE = "exported-models.md"


@pytest.mark.slow  # ~70 s here: three exports (one int8), five predict / embed runs
def test_the_page_runs_as_written(tmp_path, monkeypatch, capsys):
    package = Path(hubert_ecg.__file__).parent
    (tmp_path / "hubert_ecg").symlink_to(package, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    predict, embed = fenced_blocks(PAGE, "bash")
    lines = predict.strip().splitlines()
    run_commands(lines[0], capsys)  # the export: its timing varies
    onnxruntime, openvino, int8 = (run_commands(line, capsys) for line in lines[1:])
    assert cli_main(["predict", "hubert_ecg/demo/records"]) == 0
    assert onnxruntime == openvino == capsys.readouterr().out and "NORM 0.926*" in openvino
    assert int8.count("hubert_ecg/demo/records/") == 6
    run_commands(embed, capsys)
    assert (tmp_path / "demo-embeddings.parquet").is_file()
    (code,) = fenced_blocks(PAGE, "python")
    exec(compile(code, PAGE, "exec"), {})
