"""12-lead plots of real records: the layout, the paper scale (25 mm/s, 10 mm/mV), fewer leads, the formats and the
``hubert-ecg plot`` command."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from hubert_ecg.io import read_ecg  # noqa: E402
from hubert_ecg.plotting import GAIN, LAYOUT, PAPER_SPEED, plot_ecg, save_figure  # noqa: E402
from hubert_ecg_cli import main  # noqa: E402


@pytest.fixture(scope="module")
def ptbxl_record(data_dir) -> str:
    return str(data_dir / "ptbxl" / "records500" / "00000" / "00010_hr")


def _traces(fig):
    """The ECG traces of a figure (black lines of more than the calibration pulse's 6 points), in drawing order."""
    ax = fig.axes[0]
    return [line for line in ax.lines if len(line.get_xdata()) > 6]


def test_layout_and_paper_scale_on_a_real_record(ptbxl_record):
    record = read_ecg(ptbxl_record)
    fig = plot_ecg(ptbxl_record)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [lead for row in LAYOUT for lead in row] + ["II"]  # 12 panels + the rhythm strip
    traces = _traces(fig)
    assert len(traces) == 13
    rate = record.sampling_rate
    names = list(record.lead_names)
    # V1 is row 0, column 2: 2.5 s from 5.0 s; its trace is the signal at 10 mm/mV around its median, 25 mm/s
    v1 = traces[[lead for row in LAYOUT for lead in row].index("V1")]
    x = record.signal[names.index("V1"), int(5.0 * rate) : int(7.5 * rate)].astype(np.float64)
    y = np.asarray(v1.get_ydata())
    np.testing.assert_allclose(y - y.mean(), (x - x.mean()) * GAIN, atol=1e-6)
    xs = np.asarray(v1.get_xdata())
    np.testing.assert_allclose(np.diff(xs), PAPER_SPEED / rate)
    assert xs[-1] - xs[0] == pytest.approx((len(x) - 1) / rate * PAPER_SPEED)
    # the rhythm strip: 10 s of lead II over 250 mm
    strip = traces[-1]
    assert len(strip.get_xdata()) == record.signal.shape[1]
    assert strip.get_xdata()[-1] - strip.get_xdata()[0] == pytest.approx((record.signal.shape[1] - 1) / rate * 25)
    # drawn to scale: the figure's width is 10 mm of calibration + 250 mm of paper
    assert fig.get_figwidth() * 25.4 == pytest.approx(260.0)


def test_fewer_leads_and_a_long_record_from_an_offset(data_dir):
    record = str(data_dir / "long" / "mitdb_100" / "100")  # MLII and V5, 360 Hz, 30 min
    fig = plot_ecg(record, start=600.0)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "II" in texts and "V5" in texts and "I (absent)" in texts and "V1 (absent)" in texts
    traces = _traces(fig)
    assert len(traces) == 3  # II, V5 and the rhythm strip of II
    full = read_ecg(record)
    expected = full.signal[0, int(600 * 360) : int(610 * 360)].astype(np.float64)
    y = np.asarray(traces[-1].get_ydata())
    np.testing.assert_allclose(y - y.mean(), (expected - expected.mean()) * GAIN, atol=1e-5)
    assert "from 600 s" in fig.texts[0].get_text()


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_formats_by_extension(ptbxl_record, tmp_path, suffix, magic):
    out = save_figure(plot_ecg(ptbxl_record, dpi=50), tmp_path / f"ecg{suffix}")
    assert out.read_bytes()[:5].startswith(magic)


def test_png_is_drawn_at_its_nominal_size(ptbxl_record, tmp_path):
    from matplotlib.image import imread

    image = imread(save_figure(plot_ecg(ptbxl_record, dpi=100), tmp_path / "ecg.png"))
    assert abs(image.shape[1] - 260 / 25.4 * 100) < 1  # 260 mm at 100 dpi


def test_attribution_overlay(ptbxl_record):
    heat = np.zeros((12, 1000))
    heat[6, 520:560] = 1.0  # V1 from 5.2 s to 5.6 s
    fig = plot_ecg(ptbxl_record, attribution=heat, attribution_rate=100.0, attribution_label="MI, test")
    images = fig.axes[0].images
    assert len(images) == 13
    alphas = [float(np.asarray(im.get_array())[..., 3].max()) for im in images]
    assert sum(a > 0 for a in alphas) == 1  # only the V1 panel shows heat
    assert "attribution: MI, test" in fig.texts[0].get_text()
    with pytest.raises(ValueError, match="attribution must have shape"):
        plot_ecg(ptbxl_record, attribution=heat[:5], attribution_rate=100.0)
    with pytest.raises(ValueError, match="attribution_rate"):
        plot_ecg(ptbxl_record, attribution=heat)


def test_bad_inputs_name_the_file_or_argument(ptbxl_record, tmp_path):
    with pytest.raises(ValueError, match="00010_hr.*start must lie in"):
        plot_ecg(ptbxl_record, start=12.0)
    with pytest.raises(ValueError, match="nothing_here"):
        plot_ecg(str(tmp_path / "nothing_here.hea"))
    with pytest.raises(ValueError, match=r"ecg\.jpg.*\.png, \.svg, \.pdf"):
        save_figure(plot_ecg(ptbxl_record, dpi=20), tmp_path / "ecg.jpg")


def test_plot_command(ptbxl_record, tmp_path, capsys):
    out = tmp_path / "ecg.svg"
    assert main(["plot", ptbxl_record, "--output", str(out)]) == 0
    assert out.read_bytes().startswith(b"<?xml")
    # the one rule (hubert_ecg_cli.records): a record that cannot be used is 1, as in explain and predict
    assert main(["plot", str(tmp_path / "missing"), "--output", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hubert-ecg plot: ") and "missing" in err and "error:" not in err
    assert not (tmp_path / "x.png").exists()
    assert main(["plot", ptbxl_record, "--start", "12", "--output", str(tmp_path / "x.png")]) == 1
    assert "start must lie in" in capsys.readouterr().err
    # a wrong output name is a usage error: 2, answered by the parser
    assert main(["plot", ptbxl_record, "--output", str(tmp_path / "x.gif")]) == 2
    assert "hubert-ecg plot: error: --output" in capsys.readouterr().err
    assert Path(ptbxl_record + ".hea").exists()


def test_plot_old_spelling_and_the_packages_formats(ptbxl_record, tmp_path, capsys):
    """--out still works for one release, with a note; the formats the command checks are save_figure's."""
    from hubert_ecg import plotting
    from hubert_ecg_cli import plot

    assert plot.FORMATS == plotting._FORMATS
    out = tmp_path / "ecg.png"
    assert main(["plot", ptbxl_record, "--out", str(out), "--dpi", "20", "--sampling-rate", "500"]) == 0
    assert out.exists()
    assert "hubert-ecg plot: --out is deprecated" in capsys.readouterr().err
