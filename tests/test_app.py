"""The web app's functions on real records, and its ``/predict`` endpoint through ``gradio_client`` against a
launched app (localhost, a free port): scores, descriptions and thresholds, the plot with its legend at a start time
and with a lead set (each equal to the pipeline, ``plot_ecg`` and ``explain`` called directly), the report and its
PDF, and the message for Score without a file."""

import json
import shutil
import socket

import numpy as np
import pytest

from hubert_ecg.app import (NO_FILE_MESSAGE, TABLE_HEADERS, draw_record, draw_with_legend, group_uploads,
                            record_duration, report_upload, score_uploads)
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
    thresholds = demo_pipeline.model.config.label_thresholds
    expected = {}
    for name in ("00010_hr", "00008_hr"):
        expected[name] = demo_pipeline(str(data_dir / "ptbxl" / "records500" / "00000" / name))
    for name, predictions in expected.items():
        mine = [dict(zip(TABLE_HEADERS, r)) for r in rows if r[0] == name]
        assert [r["rank"] for r in mine] == [1, 2, 3, 4, 5]
        assert [r["label"] for r in mine] == [p["label"] for p in predictions]
        np.testing.assert_allclose([r["score"] for r in mine], [p["score"] for p in predictions], atol=1e-4)
        np.testing.assert_allclose([r["threshold"] for r in mine], [thresholds[p["label"]] for p in predictions],
                                   atol=1e-4)
        assert [r["positive"] for r in mine] == [{True: "yes", False: "no"}[p["positive"]] for p in predictions]
    assert sorted(records) == ["00008_hr", "00010_hr"]
    assert message.splitlines()[0] == "Scored 2 of 3 record(s) with the demo model (a demonstration, not a clinical tool)."
    assert "at or above the label's threshold" in message
    assert "**00017_hr.dat**: not scored: a WFDB signal file needs its header" in message


def test_single_files_are_records_and_annotations_go_with_theirs(tmp_path):
    """XML, SCP, ISHNE, DICOM files stand alone whatever their extension (the reader decides); ISHNE's .ann goes
    with its .ecg; nothing uploaded is dropped."""
    upload = tmp_path / "upload"
    upload.mkdir()
    names = ["muse_ecg1.xml", "129DYPRG.XML", "ecg.scp", "ECG_P28.01.ecg", "ECG_P28.01.ann", "orphan.ann",
             "waveform_ecg.dcm", "strange.xyz"]
    for name in names:
        (upload / name).write_bytes(b"x")
    records = group_uploads([upload / n for n in names], tmp_path / "work")
    assert [r["name"] for r in records] == [n for n in names if n != "ECG_P28.01.ann"]
    assert all(r["error"] is None for r in records)
    assert (tmp_path / "work" / "ECG_P28.01.ann").is_file()
    rows, message, scored = score_uploads([str(upload / "strange.xyz")], workdir=str(tmp_path / "work2"))
    assert rows == [] and scored == {}
    assert "**strange.xyz**: not scored: unknown ECG file extension '.xyz'" in message  # the reader's own message


@pytest.fixture(scope="module")
def described_model(tmp_path_factory):
    """The demo model without calibration or thresholds, with a description per label (config.json edited)."""
    from hubert_ecg import demo_model_path

    folder = tmp_path_factory.mktemp("described") / "model"
    shutil.copytree(demo_model_path(), folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("label_thresholds", None)
    config.pop("score_calibration", None)
    config["label_descriptions"] = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
                                    "CD": "conduction disturbance", "HYP": "hypertrophy"}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_descriptions_and_why_positive_is_blank(uploads, described_model, tmp_path):
    rows, message, _ = score_uploads([uploads["00010_hr.hea"], uploads["00010_hr.dat"]], model=described_model,
                                     workdir=str(tmp_path))
    expected = load_pipeline(described_model)(str(tmp_path / "00010_hr"))
    table = [dict(zip(TABLE_HEADERS, r)) for r in rows]
    assert [r["description"] for r in table] == [p["description"] for p in expected]
    assert table[0]["description"] and all(r["threshold"] == "" and r["positive"] == "" for r in table)
    assert "no threshold: this model was not calibrated (hubert-ecg calibrate)" in message


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
def test_report_of_an_upload_is_hubert_ecg_reports(tmp_path, demo_pipeline):
    """A single-file upload (DICOM, read today) gives the page of `hubert-ecg report`, and its PDF."""
    from hubert_ecg.report import build_report

    dicom = "/work/shared/data/clinical/dicom/waveform_ecg.dcm"
    pytest.importorskip("pydicom")
    if not __import__("os").path.isfile(dicom):
        pytest.skip(f"{dicom} not found")
    records = group_uploads([dicom], tmp_path)
    out = report_upload(records[0]["path"])
    direct = build_report(records[0]["path"], start=0.0)
    assert out["report"]["predictions"] == direct["predictions"]
    assert out["report"]["attribution"] == direct["attribution"]
    assert out["report"]["header"] == direct["header"]
    assert out["report"]["file"] == "waveform_ecg.dcm"
    with open(out["pdf"], "rb") as f:
        assert f.read(5) == b"%PDF-"
    from matplotlib.image import imread

    assert imread(out["png"]).shape[1] > 1000
    assert [p[0] for p in out["predictions"]] == [p["label"] for p in direct["predictions"]]
    assert "Device statements" in out["text"] and "not a clinical tool" in out["text"]


def test_start_time_is_honoured(data_dir, tmp_path):
    """The 30 min MIT-BIH record from 600 s: the plot and the attribution are plot_ecg's and explain's there."""
    from matplotlib.image import imread

    from hubert_ecg.explain import explain
    from hubert_ecg.plotting import plot_ecg, save_figure

    source = data_dir / "long" / "mitdb_100"
    records = group_uploads([source / "100.hea", source / "100.dat"], tmp_path)
    path = records[0]["path"]
    assert record_duration(path) == pytest.approx(1805.56, abs=0.01)
    plain = draw_record(path, start=600)
    np.testing.assert_array_equal(imread(plain), imread(save_figure(plot_ecg(path, start=600, dpi=110),
                                                                    tmp_path / "direct.png")))
    png, legend = draw_with_legend(path, method="saliency", label="NORM", start=600)
    exp = explain(path, load_pipeline(None), "NORM", "saliency", start=600, duration=10.0, n_steps=16)
    assert list(exp.window_starts) == [600.0, 605.0]
    direct = plot_ecg(path, start=600, attribution=exp.values, attribution_rate=exp.sampling_rate,
                      attribution_leads=exp.lead_names, attribution_label=f"{exp.label} {exp.score:.2f}, saliency",
                      dpi=110)
    np.testing.assert_array_equal(imread(png), imread(save_figure(direct, tmp_path / "direct-saliency.png")))
    assert f"score {exp.score:.3f} over 2 window(s) of 5 s from 600 s" in legend
    ranked = [exp.lead_names[i] for i in np.argsort(-exp.lead_importance, kind="stable") if exp.lead_mask[i]]
    assert legend.split("<code>")[1].split("</code>")[0].split()[::2] == ranked and sorted(ranked) == ["II", "V5"]
    assert "Blue bands behind the leads" in legend and "darkest" in legend


def test_lead_set_is_honoured(uploads, demo_pipeline, tmp_path):
    """Lead set 2 (I, II): the scores are the pipeline's with lead_set="2", the plot draws I and II only and the
    attribution is explain's with that lead set (the other leads NaN)."""
    from matplotlib.image import imread

    from hubert_ecg.explain import explain
    from hubert_ecg.leads import LEAD_SETS
    from hubert_ecg.plotting import plot_ecg, save_figure

    rows, message, records = score_uploads([uploads["00010_hr.hea"], uploads["00010_hr.dat"]], workdir=str(tmp_path),
                                           lead_set="2 (I, II)")
    path = records["00010_hr"]
    expected = demo_pipeline(path, lead_set="2")
    assert [r[2] for r in rows] == [p["label"] for p in expected]
    np.testing.assert_allclose([r[4] for r in rows], [p["score"] for p in expected], atol=1e-4)
    assert [r[4] for r in rows] != [r[4] for r in score_uploads([uploads["00010_hr.hea"], uploads["00010_hr.dat"]],
                                                                workdir=str(tmp_path / "all"))[0]]
    assert "Lead set: I, II only (the other leads zero-filled)." in message
    png, legend = draw_with_legend(path, method="saliency", label="NORM", lead_set="2 (I, II)")
    exp = explain(path, demo_pipeline, "NORM", "saliency", duration=10.0, n_steps=16, lead_set=LEAD_SETS["2"])
    assert np.isnan(exp.values[2:]).all() and np.isfinite(exp.values[:2]).all()
    direct = plot_ecg(path, lead_set=LEAD_SETS["2"], attribution=exp.values, attribution_rate=exp.sampling_rate,
                      attribution_leads=exp.lead_names, attribution_label=f"{exp.label} {exp.score:.2f}, saliency",
                      dpi=110)
    np.testing.assert_array_equal(imread(png), imread(save_figure(direct, tmp_path / "direct.png")))
    assert legend.split("<code>")[1].split("</code>")[0].split()[::2] in (["I", "II"], ["II", "I"])
    report = report_upload(path, lead_set="2")
    assert report["report"]["header"]["lead_set"] == ["I", "II"]
    assert [p[0] for p in report["predictions"]] == [p["label"] for p in expected][:len(report["predictions"])]


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
    reason = [line for line in message.splitlines() if "not scored: " in line][0].split("not scored: ", 1)[1]
    cli_reason = [line for line in cli.splitlines() if "00010_hr" in line][0].split("not scored: ", 1)[1]
    assert reason == cli_reason.replace(str(bad) + "/", "")
    assert "'00010_hr.dat' is truncated" in reason
    with pytest.raises(ValueError, match="No file uploaded"):
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


@pytest.mark.slow  # ~4 s; CI runs the slow tests too
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
        assert table["data"][0][4] == pytest.approx(expected[0]["score"], abs=1e-4)
        assert message.startswith("Scored 1 of 1 record(s)")
        table, message = client.predict([], api_name="/predict")  # Score without a file: a message, no error
        assert table["data"] in ([], [[""] * len(TABLE_HEADERS)]) and message == NO_FILE_MESSAGE
        big = tmp_path / "big.npy"
        np.save(big, np.zeros((12, 150_000), np.float32))  # 7.2 MB, over the 5 MB limit of this launch
        with pytest.raises(ValueError, match="exceeds the maximum file size"):
            client.predict([gradio_client.handle_file(str(big))], api_name="/predict")
    finally:
        app.close()


def test_app_command_arguments_and_a_model_that_cannot_be_loaded(tmp_path, capsys):
    """`hubert-ecg app`: both spellings of --max_file_size, a port out of range is a usage error, and a model that
    cannot be loaded stops before the server starts (exit 2, one line); its default upload limit is the app's."""
    from hubert_ecg import app
    from hubert_ecg_cli import app as app_command
    from hubert_ecg_cli import main
    from hubert_ecg_cli.arguments import parse

    assert app_command.MAX_FILE_SIZE == app.MAX_FILE_SIZE
    for spelling in ("--max_file_size", "--max-file-size"):
        (args,) = parse([spelling, "20mb"], (app_command.AppArguments,), app_command.PROG)
        assert args.max_file_size == "20mb" and args.host == "127.0.0.1" and args.model is None
    assert main(["app", "--port", "0"]) == 2
    assert "hubert-ecg app: error: --port must be between 1 and 65535" in capsys.readouterr().err
    assert main(["app", "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hubert-ecg app: error: ")


def test_the_command_serves_quietly(monkeypatch, capsys):
    """`hubert-ecg app`: one line saying where the app is, none of gradio's start-up lines nor its hint to make the
    app public; the page answers there."""
    import socket
    import urllib.request

    import gradio

    from hubert_ecg_cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = {}

    def block_thread(self):  # instead of serving until Ctrl+C: fetch the page once
        served["status"] = urllib.request.urlopen(self.local_url, timeout=30).status

    monkeypatch.setattr(gradio.Blocks, "block_thread", block_thread)
    try:
        assert main(["app", "--port", str(port)]) == 0
        out = capsys.readouterr().out
    finally:
        gradio.close_all()
    assert served["status"] == 200
    assert out.strip() == (f"hubert-ecg app: serving on http://127.0.0.1:{port}/ (Ctrl+C stops it); a "
                           "demonstration, not a clinical tool")
