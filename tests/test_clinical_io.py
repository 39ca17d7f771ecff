"""Clinical interchange files (../shared/data/clinical and a written SCP-ECG file): content detection, the rhythm in
mV with standard lead names, the device's statements and measurements, median beats, one clear error for a bad
file, and `hubert-ecg predict` on each. Expected values are the files' own (quoted beside each)."""

import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("ecgdatakit")

from hubert_ecg.clinical_io import detect_format  # noqa: E402
from hubert_ecg.io import find_records, read_ecg  # noqa: E402
from hubert_ecg.leads import STANDARD_LEADS  # noqa: E402

from scp_writer import synthetic_ecg, write_scp  # noqa: E402

# file -> (source_format, rate Hz, samples per lead), as the files state them: MUSE <SampleBase>500 and
# <LeadSampleCountTotal>5000; Philips <samplingrate>500 / samplespersecond="500" and durationperchannel="11000" (ms);
# aECG <increment value="0.002" unit="s"> over 5000 digits; DICOM SamplingFrequency 1000, NumberOfWaveformSamples
# 10000; ISHNE ecg_size 95573 at 1000 Hz
FIXTURES = {
    "muse/muse_ecg1.xml": ("muse-xml", 500, 5000),
    "sierra/129DYPRG.XML": ("philips-sierra-xml", 500, 5500),
    "sierra/2020-5-18_15-48-11.xml": ("philips-sierra-xml", 500, 5500),
    "aecg/Example_aECG.xml": ("hl7-aecg", 500, 5000),
    "dicom/waveform_ecg.dcm": ("dicom", 1000, 10000),
    "ishne/ECG_P28.01.ecg": ("ishne", 1000, 95573),
}
SCHEMA = {"source_format", "acquisition_time", "device", "statements", "measurements", "derived_leads"}


@pytest.fixture(scope="module")
def clinical(data_dir):
    return data_dir / "clinical"


@pytest.fixture(scope="module")
def scp_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scp") / "synthetic.scp"
    signal, names = synthetic_ecg()
    write_scp(path, signal, names)
    return path, signal, names


@pytest.mark.parametrize("name", list(FIXTURES))
def test_fixture_reads_as_12_standard_leads_in_mv(clinical, name):
    source_format, rate, samples = FIXTURES[name]
    record = read_ecg(clinical / name)
    assert record.lead_names == list(STANDARD_LEADS)
    assert record.sampling_rate == rate and record.signal.shape == (12, samples)
    assert record.signal.dtype == np.float32 and np.isfinite(record.signal).all()
    assert 0.3 <= np.ptp(record.signal[1]) <= 5.0  # lead II: a QRS complex of a few tenths of a mV to a few mV
    meta = record.metadata
    assert SCHEMA <= set(meta) and meta["source_format"] == source_format
    assert meta["age"] is None and meta["sex"] is None
    assert meta["acquisition_time"] is None or re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", meta["acquisition_time"])
    for item in meta["measurements"].values():
        assert set(item) <= {"value", "unit", "formula"} and isinstance(item["value"], float)
    assert not any("Confirmed by" in s for s in meta["statements"])  # names of people are left out
    assert detect_format(clinical / name) == source_format


def test_muse_derived_leads_measurements_and_median_beat(clinical):
    path = clinical / "muse/muse_ecg1.xml"
    record = read_ecg(path)
    s = dict(zip(record.lead_names, record.signal))
    assert record.metadata["derived_leads"] == ["III", "aVR", "aVL", "aVF"]  # MUSE stores I, II, V1-V6
    np.testing.assert_allclose(s["III"], s["II"] - s["I"], atol=1e-6)
    np.testing.assert_allclose(s["aVR"], -(s["I"] + s["II"]) / 2, atol=1e-6)
    np.testing.assert_allclose(s["aVL"], s["I"] - s["II"] / 2, atol=1e-6)
    np.testing.assert_allclose(s["aVF"], s["II"] - s["I"] / 2, atol=1e-6)
    xml = ET.parse(path).getroot().find("RestingECGMeasurements")
    tags = {"heart_rate": "VentricularRate", "atrial_rate": "AtrialRate", "pr_interval": "PRInterval",
            "qrs_duration": "QRSDuration", "qt_interval": "QTInterval", "qtc": "QTCorrected", "p_axis": "PAxis",
            "qrs_axis": "RAxis", "t_axis": "TAxis"}
    measured = record.metadata["measurements"]
    assert set(measured) == set(tags)  # no RR interval: the file stores none
    for name, tag in tags.items():
        assert measured[name]["value"] == float(xml.find(tag).text)
    assert measured["heart_rate"]["unit"] == "bpm" and measured["qt_interval"]["unit"] == "ms"
    assert measured["qrs_axis"]["unit"] == "deg" and "formula" not in measured["qtc"]
    assert record.metadata["statements"][0] == "Ventricular-paced rhythm"
    beat = record.metadata["median_beat"]
    assert beat["signal"].shape == (8, 600) and beat["sampling_rate"] == 500  # 1.2 s median beat
    assert beat["lead_names"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert record.metadata["acquisition_time"] == "2021-05-10T13:15:18" and record.metadata["device"] == "MAC55"


def test_philips_statements_and_measurements(clinical):
    old = read_ecg(clinical / "sierra/129DYPRG.XML").metadata  # 1.03, XLI-compressed
    assert old["statements"][:2] == ["Sinus bradycardia", "Nonspecific intraventricular conduction delay"]
    # <meanventrate>41, <meanprint>151, <meanqrsdur>135, <meanqtint>476, <meanqtc>393, axes 66 / -21 / 59
    assert {k: v["value"] for k, v in old["measurements"].items()} == {
        "heart_rate": 41, "pr_interval": 151, "qrs_duration": 135, "qt_interval": 476, "qtc": 393,
        "p_axis": 66, "qrs_axis": -21, "t_axis": 59}
    new = read_ecg(clinical / "sierra/2020-5-18_15-48-11.xml").metadata  # 1.04.01, UTF-16
    assert new["statements"] == ["Sinus rhythm", "Abnormal R-wave progression, early transition"]
    assert new["measurements"]["qtc"] == {"value": 412.0, "unit": "ms", "formula": "Bazett"}  # <qtcb>412
    assert new["measurements"]["rr_interval"] == {"value": 938.0, "unit": "ms"}  # <rrint>938
    assert new["measurements"]["atrial_rate"]["value"] == 64  # <atrialrate>64
    assert new["median_beat"]["signal"].shape == (12, 1200) and new["median_beat"]["sampling_rate"] == 1000


def test_aecg_dicom_ishne_and_scp_contents(clinical, scp_file):
    aecg = read_ecg(clinical / "aecg/Example_aECG.xml").metadata
    assert aecg["measurements"]["pr_interval"]["value"] == 148 and aecg["measurements"]["qtc"]["value"] == 443
    assert aecg["median_beat"]["signal"].shape == (12, 599) and aecg["statements"] == []
    dicom = read_ecg(clinical / "dicom/waveform_ecg.dcm").metadata
    assert dicom["statements"] == ["RITMO SINUSALE", "ECG NORMALE"]
    assert dicom["measurements"]["qrs_duration"] == {"value": 75.0, "unit": "ms"}
    ishne = read_ecg(clinical / "ishne/ECG_P28.01.ecg")
    assert ishne.duration == pytest.approx(95.573)
    notes = ishne.metadata["annotations"]
    assert notes["file"] == "ECG_P28.01.ann" and len(notes["samples"]) == len(notes["labels"]) == 97
    assert notes["samples"][:3] == [804, 1799, 2878] and set(notes["labels"]) == {"N", "X"}
    assert np.all(np.diff(notes["samples"]) > 0) and notes["samples"][-1] < ishne.signal.shape[1]

    path, signal, names = scp_file
    record = read_ecg(path)
    assert record.metadata["source_format"] == "scp-ecg" and record.lead_names == list(STANDARD_LEADS)
    assert record.sampling_rate == 500 and record.signal.shape == (12, 5000)
    np.testing.assert_allclose(record.signal, signal[[names.index(n) for n in STANDARD_LEADS]], atol=2.6e-3)
    assert record.metadata["statements"] == ["Sinus rhythm", "Normal ECG"]
    assert record.metadata["measurements"]["qrs_axis"] == {"value": 60.0, "unit": "deg"}
    assert record.metadata["acquisition_time"] == "2024-03-01T09:30:00"


def test_content_decides_not_the_extension(clinical, scp_file, tmp_path):
    for name, (source_format, _, _) in [*FIXTURES.items(), ("scp", ("scp-ecg", 0, 0))]:
        source = scp_file[0] if name == "scp" else clinical / name
        copy = tmp_path / f"{source_format}_{source.stem}.npy"
        shutil.copy(source, copy)
        assert read_ecg(copy).metadata["source_format"] == source_format
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(clinical / "muse/muse_ecg1.xml", folder / "a.xml")
    shutil.copy(scp_file[0], folder / "b.scp")
    (folder / "c.xml").write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    (folder / "d.ecg").write_bytes(b"not an ISHNE file" * 40)
    assert [p.split("/")[-1] for p in find_records(folder)] == ["a.xml", "b.scp"]


def _truncated(source, tmp_path, fraction=0.6):
    data = source.read_bytes()
    path = tmp_path / f"cut_{source.name}"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize("name", [*FIXTURES, "scp"])
def test_truncated_files_give_one_clear_error(clinical, scp_file, tmp_path, name):
    source = scp_file[0] if name == "scp" else clinical / name
    path = _truncated(source, tmp_path)
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as info:
        read_ecg(path)
    assert re.search(r"MUSE|Philips|aECG|SCP-ECG|ISHNE|DICOM", str(info.value))


def test_wrong_checksum_wrong_kind_and_overlong_header(clinical, scp_file, tmp_path):
    data = bytearray(scp_file[0].read_bytes())
    data[-10] ^= 0xFF  # a flipped sample: the CRCs no longer match
    (tmp_path / "crc.scp").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"crc\.scp.*SCP-ECG.*CRC"):
        read_ecg(tmp_path / "crc.scp")
    (tmp_path / "other.xml").write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>')
    with pytest.raises(ValueError, match=r"other\.xml.*not a clinical ECG file.*MUSE.*Philips.*aECG"):
        read_ecg(tmp_path / "other.xml")
    (tmp_path / "fake.xml").write_text('<?xml version="1.0"?><RestingECG><PatientDemographics/></RestingECG>')
    with pytest.raises(ValueError, match=r"fake\.xml.*GE MUSE"):
        read_ecg(tmp_path / "fake.xml")
    data = bytearray((clinical / "ishne/ECG_P28.01.ecg").read_bytes())
    data[14:18] = (200_000).to_bytes(4, "little")  # ecg_size: more samples than the file holds
    (tmp_path / "long.ecg").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"long\.ecg.*(declares 200000 samples|checksum)"):
        read_ecg(tmp_path / "long.ecg")


def test_missing_extra_names_the_install(clinical, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ecgdatakit", None)
    with pytest.raises(ImportError, match=r'muse_ecg1\.xml.*pip install "hubert-ecg\[clinical\]"'):
        read_ecg(clinical / "muse/muse_ecg1.xml")


def test_predict_scores_each_fixture_and_skips_a_truncated_one(clinical, scp_file, tmp_path, capsys):
    from test_pipelines import _save_tiny

    from hubert_ecg_cli.predict import main as predict_main

    _save_tiny(tmp_path / "tiny")
    files = [str(clinical / name) for name in FIXTURES] + [str(scp_file[0])]
    assert predict_main([*files, "--model", str(tmp_path / "tiny"), "--top-k", "1"]) == 0
    table = capsys.readouterr().out
    assert all(f in table for f in files) and "not scored" not in table
    cut = _truncated(clinical / "muse/muse_ecg1.xml", tmp_path)
    assert predict_main([files[0], str(cut), "--model", str(tmp_path / "tiny")]) == 1
    captured = capsys.readouterr()
    assert "skipped 1 of 2" in captured.err and str(cut) in captured.err
