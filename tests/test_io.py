"""read_ecg and ECGRecord on the real records of ../shared/data (PTB-XL, CinC 2021, PTB, MIT-BIH)."""

import shutil
import sys

import numpy as np
import pytest
import wfdb

from hubert_ecg.io import STANDARD_LEADS, ECGRecord, read_ecg


@pytest.fixture(scope="module")
def ptbxl500(data_dir):
    return data_dir / "ptbxl" / "records500" / "00000" / "00008_hr"


@pytest.fixture(scope="module")
def challenge(data_dir):
    return data_dir / "cinc2021" / "E07500"


def test_lead_names_map_to_the_released_order(reference_dir, data_dir):
    """PTB's lower-case leads plus Frank vx/vy/vz, mapped by map_leads, give the release's lead order (raw_5)."""
    from hubert_ecg.leads import map_leads

    with np.load(reference_dir / "preprocessing.npz") as ref:
        raw, source = ref["raw_5"], str(ref["source_5"])
    record = read_ecg(data_dir.parent.parent / source)
    assert record.lead_names[:4] == ["i", "ii", "iii", "avr"] and record.lead_names[-3:] == ["vx", "vy", "vz"]
    rows, present = map_leads(record.lead_names, record.num_leads)
    assert present.all() and len(rows) == len(STANDARD_LEADS)
    np.testing.assert_allclose(record.signal[rows], raw, atol=1e-6)
    shuffled = np.random.default_rng(0).permutation(record.num_leads)  # any row order maps back
    rows, _ = map_leads([record.lead_names[k] for k in shuffled], record.num_leads)
    np.testing.assert_allclose(record.signal[shuffled][rows], raw, atol=1e-6)


def test_long_records_open_lazily(tmp_path, ptbxl500, monkeypatch):
    """Long .npy and WFDB format-16 records: read_ecg(lazy=True) reads signal[:, a:b] from the file, equal to the
    eager read."""
    from hubert_ecg import io

    monkeypatch.setattr(io, "LAZY_SAMPLES", 4000)
    record = read_ecg(ptbxl500)
    np.save(tmp_path / "x.npy", record.signal)
    lazy = read_ecg(tmp_path / "x.npy", sampling_rate=500, lazy=True)
    assert isinstance(lazy.signal, io.LazySignal) and lazy.signal.shape == (12, 5000) and lazy.duration == 10
    np.testing.assert_array_equal(lazy.signal[:, 1234:4321], record.signal[:, 1234:4321])
    np.testing.assert_array_equal(np.asarray(lazy.signal), record.signal)
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=record.lead_names, p_signal=np.ascontiguousarray(record.signal.T, dtype=np.float64),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path))
    eager = read_ecg(tmp_path / "rec")
    lazy = read_ecg(tmp_path / "rec", lazy=True)
    assert isinstance(lazy.signal, io.LazySignal) and lazy.lead_names == eager.lead_names
    np.testing.assert_allclose(lazy.signal[3:5, 100:4900], eager.signal[3:5, 100:4900], atol=1e-6)
    monkeypatch.setattr(io, "LAZY_SAMPLES", 10_000)  # shorter records are read at once
    assert isinstance(read_ecg(tmp_path / "rec", lazy=True).signal, np.ndarray)


@pytest.mark.parametrize("suffix", ["", ".hea", ".dat"])
def test_wfdb_record_by_name_hea_or_dat(ptbxl500, suffix):
    record = read_ecg(str(ptbxl500) + suffix)
    expected = wfdb.rdrecord(str(ptbxl500)).p_signal.T
    assert isinstance(record, ECGRecord)
    assert record.signal.dtype == np.float32 and record.signal.shape == (12, 5000)
    np.testing.assert_allclose(record.signal, expected, atol=1e-6)
    assert record.sampling_rate == 500.0 and record.duration == pytest.approx(10.0)
    assert record.lead_names[:6] == ["I", "II", "III", "AVR", "AVL", "AVF"]  # as the source spells them
    assert record.record_name == "00008_hr"
    assert record.metadata["age"] is None and record.metadata["sex"] is None and record.metadata["diagnoses"] == []
    assert record.metadata["source_format"] == "wfdb"


def test_ptbxl_100hz(data_dir):
    record = read_ecg(data_dir / "ptbxl" / "records100" / "00000" / "00018_lr")
    assert record.sampling_rate == 100.0 and record.signal.shape == (12, 1000)


@pytest.mark.parametrize("suffix", ["", ".hea", ".mat"])
def test_challenge_mat(challenge, suffix):
    record = read_ecg(str(challenge) + suffix)
    # wfdb reads the MATLAB v4 file as a format-16 signal file at byte offset 24: an independent check of gains
    expected = wfdb.rdrecord(str(challenge)).p_signal.T
    np.testing.assert_allclose(record.signal, expected, atol=1e-6)
    assert record.signal.shape == (12, 5000) and record.sampling_rate == 500.0
    assert record.lead_names == list(STANDARD_LEADS)
    assert record.metadata["age"] == 78.0 and record.metadata["sex"] == "M"
    assert record.metadata["diagnoses"] == ["67741000119109", "426177001"]
    assert record.metadata["source_format"] == "challenge_mat"


def test_challenge_female_and_many_codes(data_dir):
    record = read_ecg(data_dir / "cinc2021" / "JS20000.hea")
    assert record.metadata["sex"] == "F" and record.metadata["age"] == 84.0
    assert record.metadata["diagnoses"] == ["284470004", "427084000", "698252002", "55930002"]


def test_ptb_15_leads_1000hz(data_dir):
    record = read_ecg(data_dir / "long" / "ptbdb_s0010_re" / "s0010_re")
    assert record.signal.shape == (15, 38400) and record.sampling_rate == 1000.0
    assert record.lead_names[-3:] == ["vx", "vy", "vz"] and record.lead_names[3] == "avr"
    assert record.metadata["age"] == 81.0 and record.metadata["sex"] == "F"
    assert "Myocardial infarction" in record.metadata["diagnoses"]
    assert record.duration == pytest.approx(38.4)


def test_mitdb_two_leads(data_dir):
    record = read_ecg(data_dir / "long" / "mitdb_100" / "100")
    assert record.lead_names == ["MLII", "V5"] and record.sampling_rate == 360.0
    assert record.signal.shape == (2, 650000)
    assert record.metadata["age"] == 69.0 and record.metadata["sex"] == "M"


def test_reference_raw_signals_match(reference_dir, data_dir):
    reference = np.load(reference_dir / "preprocessing.npz")
    for i in range(6):
        source = data_dir.parent.parent / str(reference[f"source_{i}"])
        record = read_ecg(source)
        np.testing.assert_allclose(record.signal[:12], reference[f"raw_{i}"], atol=1e-6)
        assert record.sampling_rate == float(reference[f"fs_{i}"])


def test_lead_names_override_and_mismatch(ptbxl500):
    names = [f"L{i}" for i in range(12)]
    assert read_ecg(ptbxl500, lead_names=names).lead_names == names
    with pytest.raises(ValueError, match="lead_names has 3 names"):
        read_ecg(ptbxl500, lead_names=["I", "II", "III"])


def test_rate_disagreeing_with_header(ptbxl500):
    assert read_ecg(ptbxl500, sampling_rate=500).sampling_rate == 500.0
    with pytest.raises(ValueError, match="00008_hr.*500 Hz.*sampling_rate=250"):
        read_ecg(ptbxl500, sampling_rate=250)


# ---------------------------------------------------------------------------------------------- numpy files


def test_npy_needs_rate_and_names(tmp_path, ptbxl500):
    signal = read_ecg(ptbxl500).signal
    path = tmp_path / "ecg.npy"
    np.save(path, signal)
    record = read_ecg(path, sampling_rate=500)
    np.testing.assert_array_equal(record.signal, signal)
    assert record.lead_names == list(STANDARD_LEADS) and record.record_name == "ecg"
    with pytest.raises(ValueError, match=r"ecg\.npy.*sampling_rate"):
        read_ecg(path)
    # (samples, leads) is transposed when only that reading fits the 12 leads
    np.save(tmp_path / "t.npy", signal.T)
    np.testing.assert_array_equal(read_ecg(tmp_path / "t.npy", sampling_rate=500).signal, signal)
    # two leads need names
    np.save(tmp_path / "two.npy", signal[:2])
    with pytest.raises(ValueError, match=r"two\.npy.*2 leads.*lead_names"):
        read_ecg(tmp_path / "two.npy", sampling_rate=500)
    two = read_ecg(tmp_path / "two.npy", sampling_rate=500, lead_names=["I", "II"])
    assert two.lead_names == ["I", "II"]


def test_npz_with_rate_and_names(tmp_path, ptbxl500):
    signal = read_ecg(ptbxl500).signal[:3]
    path = tmp_path / "rec.npz"
    np.savez(path, signal=signal, fs=250, lead_names=np.array(["I", "II", "V1"]))
    record = read_ecg(path)
    assert record.sampling_rate == 250.0 and record.lead_names == ["I", "II", "V1"]
    np.testing.assert_array_equal(record.signal, signal)
    np.savez(tmp_path / "ambiguous.npz", a=signal, b=signal)
    with pytest.raises(ValueError, match="ambiguous.npz.*which array"):
        read_ecg(tmp_path / "ambiguous.npz", sampling_rate=250)


def test_npy_non_numeric(tmp_path):
    path = tmp_path / "text.npy"
    np.save(path, np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"text\.npy.*numeric"):
        read_ecg(path, sampling_rate=500, lead_names=["I", "II"])


# ---------------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found.*nothing"):
        read_ecg(tmp_path / "nothing")
    with pytest.raises(ValueError, match="not found"):
        read_ecg(tmp_path / "nothing.npy", sampling_rate=500)
    with pytest.raises(ValueError, match="not found"):
        read_ecg(tmp_path / "nothing.hea")


def test_unknown_extension(tmp_path):
    path = tmp_path / "ecg.xyz"
    path.write_text("1,2,3")
    with pytest.raises(ValueError, match=r"unknown ECG file extension '\.xyz'.*ecg\.xyz"):
        read_ecg(path)


def test_mat_without_header(tmp_path, challenge):
    shutil.copy(str(challenge) + ".mat", tmp_path / "lonely.mat")
    with pytest.raises(ValueError, match=r"lonely\.mat.*no WFDB header"):
        read_ecg(tmp_path / "lonely.mat")


def test_corrupt_mat(tmp_path, challenge):
    shutil.copy(str(challenge) + ".hea", tmp_path / "E07500.hea")
    (tmp_path / "E07500.mat").write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(ValueError, match=r"E07500\.mat"):
        read_ecg(tmp_path / "E07500")


def test_header_not_matching_mat(tmp_path, challenge):
    header = (challenge.parent / "E07500.hea").read_text().replace("E07500 12 500 5000", "E07500 12 500 4000", 1)
    (tmp_path / "E07500.hea").write_text(header)
    shutil.copy(str(challenge) + ".mat", tmp_path / "E07500.mat")
    with pytest.raises(ValueError, match=r"header .*E07500\.hea.*4000 samples.*\(12, 5000\)"):
        read_ecg(tmp_path / "E07500.hea")


def test_truncated_dat(tmp_path, ptbxl500):
    """The message gives the expected and the found sample counts (wfdb's own: "cannot reshape array...")."""
    shutil.copy(str(ptbxl500) + ".hea", tmp_path / "00008_hr.hea")
    data = (ptbxl500.parent / "00008_hr.dat").read_bytes()
    (tmp_path / "00008_hr.dat").write_bytes(data[:10000])
    with pytest.raises(ValueError, match=r"00008_hr\.dat' is truncated: the header expects 5000 samples x 12 leads "
                                         r"\(format 16, 120000 bytes\), the file holds 10000 bytes \(416 complete"):
        read_ecg(tmp_path / "00008_hr")
    (tmp_path / "00008_hr.dat").unlink()
    with pytest.raises(ValueError, match=r"signal file .*00008_hr\.dat' is missing"):
        read_ecg(tmp_path / "00008_hr.hea")


def _copy_record(ptbxl500, folder, name, header_edit=lambda text: text):
    """A copy of the real record 00008_hr under ``name`` (its header edited by ``header_edit``)."""
    shutil.copy(str(ptbxl500) + ".dat", folder / f"{name}.dat")
    text = (ptbxl500.parent / "00008_hr.hea").read_text().replace("00008_hr.dat", f"{name}.dat")
    (folder / f"{name}.hea").write_text(header_edit(text))
    return folder / name


def test_header_naming_another_record_warns_with_both_names(tmp_path, ptbxl500, caplog):
    import logging

    path = _copy_record(ptbxl500, tmp_path, "renamed")  # the record line still says 00008_hr
    with caplog.at_level(logging.WARNING, logger="hubert_ecg.io"):
        record = read_ecg(path)
    expected = "the header 'renamed.hea' names the record '00008_hr', not 'renamed'"
    assert expected in caplog.text and expected in record.metadata["warnings"][0]
    assert record.signal.shape == (12, 5000)
    named = _copy_record(ptbxl500, tmp_path, "same", lambda text: text.replace("00008_hr", "same", 1))
    assert read_ecg(named).metadata["warnings"] == []


@pytest.mark.parametrize("rate", ["20", "20000"])
def test_sampling_rate_outside_50hz_10khz_is_refused(tmp_path, ptbxl500, rate):
    path = _copy_record(ptbxl500, tmp_path, "00008_hr", lambda text: text.replace(" 500 ", f" {rate} ", 1))
    with pytest.raises(ValueError, match=rf"00008_hr.*sampling rate is {rate} Hz, outside 50 Hz-10 kHz"):
        read_ecg(path)
    np.save(tmp_path / "x.npy", read_ecg(ptbxl500).signal)
    with pytest.raises(ValueError, match=rf"sampling_rate={float(rate)!r} given for .*x\.npy.* outside 50 Hz-10 kHz"):
        read_ecg(tmp_path / "x.npy", sampling_rate=float(rate))


def test_empty_header(tmp_path, ptbxl500):
    path = _copy_record(ptbxl500, tmp_path, "00008_hr", lambda text: "")
    with pytest.raises(ValueError, match=r"the WFDB header .*00008_hr\.hea' is empty \(0 bytes, no record line\)"):
        read_ecg(path)
    (tmp_path / "00008_hr.hea").write_text("# only a comment\n\n")
    with pytest.raises(ValueError, match=r"is empty"):
        read_ecg(tmp_path / "00008_hr.hea")


def test_directory_passed_as_a_file(tmp_path, ptbxl500):
    _copy_record(ptbxl500, tmp_path, "00008_hr")
    with pytest.raises(ValueError, match=r"is a directory, not an ECG file"):
        read_ecg(tmp_path)


def test_find_records_lists_directories_and_manifests(tmp_path, ptbxl500):
    from hubert_ecg.io import find_records

    _copy_record(ptbxl500, tmp_path, "a")
    (tmp_path / "sub").mkdir()
    _copy_record(ptbxl500, tmp_path / "sub", "b")
    assert find_records(tmp_path) == [str(tmp_path / "a.hea"), str(tmp_path / "sub" / "b.hea")]
    (tmp_path / "list.csv").write_text("filename,NORM\nsub/b,1\na.hea,0\n")
    assert find_records(tmp_path / "list.csv") == [str(tmp_path / "sub" / "b"), str(tmp_path / "a.hea")]
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(ValueError, match="needs a column named one of"):
        find_records(tmp_path / "bad.csv")


def test_corrupt_header(tmp_path):
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    (tmp_path / "bad.dat").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"bad"):
        read_ecg(tmp_path / "bad")


def test_optional_readers_name_their_package(tmp_path, monkeypatch):
    (tmp_path / "x.edf").write_bytes(b"0" * 256)
    (tmp_path / "x.h5").write_bytes(b"0" * 256)
    monkeypatch.setitem(sys.modules, "pyedflib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "h5py", None)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    (tmp_path / "x.dcm").write_bytes(b"0" * 256)
    with pytest.raises(ImportError, match=r'x\.dcm.*pip install "hubert-ecg\[clinical\]"'):
        read_ecg(tmp_path / "x.dcm")
    with pytest.raises(ImportError, match=r"x\.edf.*pip install pyedflib"):
        read_ecg(tmp_path / "x.edf")
    with pytest.raises(ImportError, match=r"x\.h5.*pip install h5py"):
        read_ecg(tmp_path / "x.h5", sampling_rate=500)


def test_edf_round_trip(tmp_path, ptbxl500):
    pyedflib = pytest.importorskip("pyedflib")
    record = read_ecg(ptbxl500)
    path = tmp_path / "rec.edf"
    with pyedflib.EdfWriter(str(path), 12, file_type=pyedflib.FILETYPE_EDFPLUS) as writer:
        writer.setSignalHeaders(
            [
                {
                    "label": name,
                    "dimension": "uV",
                    "sample_frequency": 500,
                    "physical_max": 33000.0,
                    "physical_min": -33000.0,
                    "digital_max": 32767,
                    "digital_min": -32768,
                }
                for name in record.lead_names
            ]
        )
        writer.writeSamples([lead.astype(np.float64) * 1000.0 for lead in record.signal])  # in uV
    edf = read_ecg(path)
    assert edf.lead_names == record.lead_names and edf.sampling_rate == 500.0
    np.testing.assert_allclose(edf.signal, record.signal, atol=2e-3)  # 16-bit quantisation of +-33 mV
    (tmp_path / "broken.edf").write_bytes(b"0" * 256)
    with pytest.raises(ValueError, match=r"broken\.edf"):
        read_ecg(tmp_path / "broken.edf")


def test_hdf5_round_trip(tmp_path, ptbxl500):
    h5py = pytest.importorskip("h5py")
    record = read_ecg(ptbxl500)
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset("signal", data=record.signal)
        dataset.attrs["sampling_rate"] = 500
        dataset.attrs["lead_names"] = record.lead_names
    h5 = read_ecg(path)
    np.testing.assert_array_equal(h5.signal, record.signal)
    assert h5.lead_names == record.lead_names and h5.sampling_rate == 500.0
    with h5py.File(tmp_path / "norate.h5", "w") as handle:
        handle.create_dataset("ecg", data=record.signal)
    with pytest.raises(ValueError, match=r"norate\.h5.*sampling_rate"):
        read_ecg(tmp_path / "norate.h5")
    assert read_ecg(tmp_path / "norate.h5", sampling_rate=500).lead_names == list(STANDARD_LEADS)


def test_dicom_waveform(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("ecgdatakit")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("waveform_ecg.dcm")  # a 12-lead ECG waveform IOD shipped with pydicom
    record = read_ecg(path)
    dataset = pydicom.dcmread(path)
    np.testing.assert_allclose(record.signal, dataset.waveform_array(0).T / 1000.0, rtol=1e-6)  # uV -> mV
    assert record.signal.shape == (12, 10000) and record.sampling_rate == 1000.0
    # standard lead names (the file: "Lead I (Einthoven)", ..., "Lead aVR", ...); patient-free metadata (the file
    # says 42 years, F: clinical readers keep age and sex None)
    assert record.lead_names == list(STANDARD_LEADS) and record.metadata["source_format"] == "dicom"
    assert record.metadata["age"] is None and record.metadata["sex"] is None
    (tmp_path / "broken.dcm").write_bytes(b"not dicom" * 50)
    with pytest.raises(ValueError, match=r"broken\.dcm"):
        read_ecg(tmp_path / "broken.dcm")


def test_ecg_record_validation():
    record = ECGRecord(np.zeros((2, 1000), dtype=np.float64), 250, ["I", "II"])
    assert record.signal.dtype == np.float32 and record.duration == 4.0 and record.num_leads == 2
    assert record.metadata == {"age": None, "sex": None, "diagnoses": []}
    with pytest.raises(ValueError, match=r"\(leads, samples\)"):
        ECGRecord(np.zeros(1000), 250, ["I"])
    with pytest.raises(ValueError, match="2 leads.*1 lead names"):
        ECGRecord(np.zeros((2, 1000)), 250, ["I"])
    with pytest.raises(ValueError, match="positive number of Hz"):
        ECGRecord(np.zeros((1, 1000)), 0, ["I"])
    with pytest.raises(ValueError, match="real numbers"):
        ECGRecord(np.array([["a"]]), 250, ["I"])


def test_format16_records_read_once_and_equal_to_wfdb(data_dir, monkeypatch):
    """PTB-XL (format 16, one .dat): the header parsed once and the samples read with numpy, equal to
    wfdb.rdrecord(physical=True) to the last bit, 500 Hz and 100 Hz; other layouts still go through rdrecord."""
    import wfdb

    records = sorted((data_dir / "ptbxl" / "records500" / "00000").glob("*.hea"))[:5]
    records += sorted((data_dir / "ptbxl" / "records100" / "00000").glob("*.hea"))[:2]
    expected = {str(p): wfdb.rdrecord(str(p.with_suffix("")), physical=True).p_signal.T.astype(np.float32)
                for p in records}
    calls = {"rdheader": 0, "rdrecord": 0}
    for name in calls:
        original = getattr(wfdb, name)
        monkeypatch.setattr(wfdb, name, lambda *a, _f=original, _n=name, **k: calls.__setitem__(_n, calls[_n] + 1)
                            or _f(*a, **k))
    for path in records:
        record = read_ecg(path)
        np.testing.assert_array_equal(record.signal, expected[str(path)])
        assert record.metadata["source_format"] == "wfdb" and "lazy" not in record.metadata
    assert calls == {"rdheader": len(records), "rdrecord": 0}
