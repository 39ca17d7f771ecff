"""The web app's functions on real records, and its ``/predict`` endpoint through ``gradio_client`` against a
launched app (localhost, a free port)."""

import shutil
import socket

import numpy as np
import pytest

from hubert_ecg.app import TABLE_HEADERS, draw_record, group_uploads, score_uploads
from hubert_ecg.pipelines import load_pipeline


@pytest.fixture(scope="module")
def uploads(data_dir, tmp_path_factory):
    """Real PTB-XL records as Gradio hands them over: every file in a folder of its own."""
    source = data_dir / "ptbxl" / "records500" / "00000"
    root = tmp_path_factory.mktemp("uploads")
    files = {}
    for i, name in enumerate(["00010_hr.hea", "00010_hr.dat", "00008_hr.hea", "00008_hr.dat", "00017_hr.dat"]):
        folder = root / f"upload{i}"
        folder.mkdir()
        files[name] = str(shutil.copy(source / name, folder / name))
    return files


@pytest.fixture(scope="module")
def demo_pipeline():
    return load_pipeline(None)


def test_wfdb_files_uploaded_apart_are_put_together(uploads, tmp_path):
    records = group_uploads(list(uploads.values()), tmp_path)
    assert [r["name"] for r in records] == ["00010_hr", "00008_hr", "00017_hr.dat"]
    assert records[0]["path"] == str(tmp_path / "00010_hr.hea") and records[0]["error"] is None
    assert (tmp_path / "00010_hr.dat").is_file()
    assert records[2]["path"] is None
    assert records[2]["error"] == "a WFDB signal file needs its header: upload 00017_hr.hea together with 00017_hr.dat"


def test_scores_are_the_pipelines(uploads, demo_pipeline, data_dir):
    rows, message, records = score_uploads(list(uploads.values()))
    expected = {}
    for name in ("00010_hr", "00008_hr"):
        expected[name] = demo_pipeline(str(data_dir / "ptbxl" / "records500" / "00000" / name))
    for name, predictions in expected.items():
        mine = [r for r in rows if r[0] == name]
        assert [r[1] for r in mine] == [1, 2, 3, 4, 5]
        assert [r[2] for r in mine] == [p["label"] for p in predictions]
        np.testing.assert_allclose([r[3] for r in mine], [p["score"] for p in predictions], atol=1e-4)
    assert sorted(records) == ["00008_hr", "00010_hr"]
    assert message.splitlines()[0] == "Scored 2 of 3 record(s) with the demo model (a demonstration, not a clinical tool)."
    assert "**00017_hr.dat**: not scored: a WFDB signal file needs its header" in message


def test_bad_files_give_the_messages_of_predict(data_dir, tmp_path, capsys):
    """A truncated signal file and a record too short: the page says what `hubert-ecg predict` says."""
    from hubert_ecg_cli import main

    source = data_dir / "ptbxl" / "records500" / "00000"
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(source / "00010_hr.hea", bad / "00010_hr.hea")
    (bad / "00010_hr.dat").write_bytes((source / "00010_hr.dat").read_bytes()[:1000])
    np.save(bad / "short.npy", np.random.default_rng(0).normal(size=(12, 500)).astype(np.float32))
    assert main(["predict", str(bad / "00010_hr.hea"), str(bad / "short.npy"), "--sampling-rate", "500"]) == 1
    cli = capsys.readouterr().out
    rows, message, records = score_uploads([str(bad / "00010_hr.hea"), str(bad / "00010_hr.dat")],
                                           workdir=str(tmp_path / "work"))
    assert rows == [] and records == {}
    reason = message.splitlines()[1].split("not scored: ", 1)[1]
    cli_reason = [line for line in cli.splitlines() if "00010_hr" in line][0].split("not scored: ", 1)[1]
    assert reason == cli_reason.replace(str(bad) + "/", "")
    assert "'00010_hr.dat' is truncated" in reason
    with pytest.raises(ValueError, match="no file uploaded"):
        score_uploads([])
    with pytest.raises(ValueError, match="cannot load the model"):
        score_uploads([str(bad / "short.npy")], model=str(tmp_path / "no-such-model"))


def test_draw_record_with_and_without_attributions(uploads, tmp_path):
    _, _, records = score_uploads(list(uploads.values())[:2], workdir=str(tmp_path))
    plain = draw_record(records["00010_hr"])
    overlay = draw_record(records["00010_hr"], label="MI", method="saliency")
    from matplotlib.image import imread

    a, b = imread(plain), imread(overlay)
    assert a.shape == b.shape and a.shape[1] > 1000
    assert np.abs(a - b).max() > 0.1  # the heat shows
    with pytest.raises(ValueError, match="label 'AFIB'"):
        draw_record(records["00010_hr"], label="AFIB", method="saliency")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_predict_endpoint_through_gradio_client(uploads, demo_pipeline, data_dir, tmp_path):
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from hubert_ecg.app import build_app

    app = build_app()
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size="5mb")
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert list(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == ["/predict"]
        files = [gradio_client.handle_file(uploads[n]) for n in ("00010_hr.hea", "00010_hr.dat")]
        table, message = client.predict(files, api_name="/predict")  # only the files: the model has a default
        assert table["headers"] == TABLE_HEADERS
        expected = demo_pipeline(str(data_dir / "ptbxl" / "records500" / "00000" / "00010_hr"))
        assert [row[2] for row in table["data"]] == [p["label"] for p in expected]
        assert table["data"][0][3] == pytest.approx(expected[0]["score"], abs=1e-4)
        assert message.startswith("Scored 1 of 1 record(s)")
        big = tmp_path / "big.npy"
        np.save(big, np.zeros((12, 150_000), np.float32))  # 7.2 MB, over the 5 MB limit of this launch
        with pytest.raises(ValueError, match="exceeds the maximum file size"):
            client.predict([gradio_client.handle_file(str(big))], api_name="/predict")
    finally:
        app.close()
