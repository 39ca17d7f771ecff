"""`hubert-ecg report`: one page from a real record (the bundled PTB-XL records with the demo model): its content
is the pipeline's predictions, the model's thresholds, the record's header and the explanation's lead ranking, in
every output format; bad input is one clear line and exit 1."""

import json

import pytest

pytest.importorskip("matplotlib")

from hubert_ecg.demo import demo_records  # noqa: E402
from hubert_ecg.pipelines import load_pipeline  # noqa: E402
from hubert_ecg.report import build_report, render_figure, write_report  # noqa: E402
from hubert_ecg_cli import main as cli_main  # noqa: E402


@pytest.fixture(scope="module")
def report():
    return build_report(demo_records()[-1])  # 00223: MI + STTC + HYP


def test_content_is_the_pipelines_and_the_models(report):
    pipe = load_pipeline(None)
    scores = pipe(demo_records()[-1])
    thresholds = pipe.model.config.label_thresholds
    assert [p["label"] for p in report["predictions"]] == [s["label"] for s in scores]
    for row, expected in zip(report["predictions"], scores):
        assert row["score"] == pytest.approx(expected["score"], abs=1e-9)
        assert row["threshold"] == thresholds[row["label"]] and row["positive"] == expected["positive"]
    header = report["header"]
    assert header["sampling_rate"] == 500.0 and header["duration_seconds"] == 10.0 and len(header["leads"]) == 12
    assert header["windows_scored"] == 2 and header["quality_flags"] == []
    assert "not a clinical tool" in report["model"]["note"] and report["model"]["calibrated"]
    from hubert_ecg import read_ecg
    from hubert_ecg.measurements import measure

    ours = measure(read_ecg(demo_records()[-1]))
    assert {k: report["measurements"][k] for k in ("heart_rate", "qrs_duration", "qt_interval")} == {
        k: ours[k] for k in ("heart_rate", "qrs_duration", "qt_interval")}
    attribution = report["attribution"]
    assert attribution["label"] == report["predictions"][0]["label"] and attribution["method"] == "occlusion"
    importance = list(attribution["lead_importance"].values())
    assert len(importance) == 12 and importance == sorted(importance, reverse=True)


def test_every_format(report, tmp_path):
    for suffix in (".json", ".png", ".pdf", ".html"):
        path = write_report(report, tmp_path / f"report{suffix}")
        assert path.stat().st_size > 1000
    content = json.loads((tmp_path / "report.json").read_text())
    assert "_plot" not in content and content["predictions"][0]["label"] == report["predictions"][0]["label"]
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "not a clinical tool" in page
    with pytest.raises(ValueError, match=r"report\.docx"):
        write_report(report, tmp_path / "report.docx")


def test_the_page_keeps_the_paper_scale(report):
    """The ECG grid is drawn to scale: 25 mm/s over 10 s is 250 mm of the page, whatever is added around it."""
    fig = render_figure(report, dpi=100)
    ecg = fig.axes[0]
    x0, x1 = ecg.get_xlim()
    width_in = ecg.get_position().width * fig.get_size_inches()[0]
    assert width_in * 25.4 == pytest.approx(x1 - x0, rel=1e-6)
    height_in = ecg.get_position().height * fig.get_size_inches()[1]
    y0, y1 = ecg.get_ylim()
    assert height_in * 25.4 == pytest.approx(y1 - y0, rel=1e-6)
    text = "\n".join(t.get_text() for t in fig.texts)
    assert "Predictions" in text and "Measurements" in text and "Device statements" in text


def test_cli(tmp_path, capsys, data_dir):
    out = tmp_path / "r.json"
    assert cli_main(["report", demo_records()[0], "--output", str(out), "--no-attribution"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads(out.read_text())["attribution"] is None
    (tmp_path / "broken.hea").write_text("broken 12 500 5000\n")
    # the old --out still works for one release, with a note
    assert cli_main(["report", str(tmp_path / "broken.hea"), "--out", str(tmp_path / "x.pdf")]) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "Traceback" not in err
    assert "hubert-ecg report: --out is deprecated" in err
    assert cli_main(["report", demo_records()[0], "--output", str(tmp_path / "r.docx")]) == 2  # a usage error
    assert "hubert-ecg report: error: --output" in capsys.readouterr().err


def test_the_commands_choices_are_the_packages():
    from hubert_ecg import report
    from hubert_ecg_cli import report as report_command

    assert report_command.REPORT_FORMATS == report.REPORT_FORMATS


def test_readme_report_command_draws_the_readme_image(tmp_path, monkeypatch, data_dir):
    """The README's `hubert-ecg report` command on the MUSE fixture, run as written but into tmp_path: it reads the
    clinical file (derived limb leads flagged), measures it beside the device, and draws a page of the README
    image's size (the image in docs/images comes from this command)."""
    import re
    import shlex
    from pathlib import Path

    pytest.importorskip("ecgdatakit")
    pytest.importorskip("neurokit2")
    from matplotlib.image import imread

    root = Path(__file__).resolve().parents[1]
    command = re.search(r"```bash\n(hubert-ecg report [^\n]*)\n```", (root / "README.md").read_text()).group(1)
    argv = shlex.split(command)
    shown = root / argv[argv.index("--output") + 1]
    argv[argv.index("--output") + 1] = str(tmp_path / "report.png")
    argv = [str(data_dir.parent / a[len("../shared/"):]) if a.startswith("../shared/") else a for a in argv]
    assert cli_main(argv[1:]) == 0
    assert imread(tmp_path / "report.png").shape == imread(shown).shape
    report = build_report(argv[2], attribution=False)
    assert report["header"]["derived_leads"] == ["III", "aVR", "aVL", "aVF"] and report["header"]["device"]
    assert report["statements"] and report["measurements"]["difference"]["heart_rate"]["value"] is not None


CLINICAL = ["muse/muse_ecg1.xml", "sierra/129DYPRG.XML", "sierra/2020-5-18_15-48-11.xml", "aecg/Example_aECG.xml",
            "dicom/waveform_ecg.dcm", "ishne/ECG_P28.01.ecg"]


@pytest.mark.parametrize("fixture", CLINICAL)
def test_every_clinical_fixture_gets_a_report(data_dir, fixture):
    """Each clinical export of ../shared is read, scored, measured (beside the device where the file has its
    values) and drawn on one page."""
    pytest.importorskip("ecgdatakit")
    pytest.importorskip("neurokit2")
    report = build_report(data_dir / "clinical" / fixture, attribution=False)
    assert len(report["header"]["leads"]) == 12 and report["predictions"]
    measurements = report["measurements"]
    assert "error" not in measurements and measurements["heart_rate"]["value"] > 20
    if report["_plot"]["record"].metadata.get("measurements"):
        assert measurements["difference"]
    fig = render_figure(report)
    assert "Measurements" in "\n".join(t.get_text() for t in fig.texts)
