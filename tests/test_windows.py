"""Window datasets for pretraining: discovery, sharded preprocessing, skipped records, memory mapping."""

import json

import numpy as np

from hubert_ecg.io import read_ecg
import pytest

from hubert_ecg.io import find_records
from hubert_ecg.processing import HuBERTECGFeatureExtractor
from hubert_ecg.training.window_dataset import (
    build_window_dataset,
    finalize_window_dataset,
    load_window_dataset,
    shard_range,
)

PTBXL = ["ptbxl/records100/00000/00001_lr", "ptbxl/records100/00000/00002_lr", "ptbxl/records100/00000/00003_lr"]
CINC = "cinc2021/E07500"
TWO_LEAD = "long/cpsc2021/data_8_4"  # 2 leads (I, II), 200 Hz, 41.2 s: 8 windows


@pytest.fixture(scope="module")
def manifest(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    broken = folder / "broken.hea"
    broken.write_text("this is not a WFDB header\n")
    paths = [str(data_dir / p) + ".hea" for p in PTBXL] + [str(data_dir / CINC) + ".mat", str(data_dir / TWO_LEAD)]
    paths.append(str(broken))
    path = folder / "manifest.txt"
    path.write_text("# records for the tests\n" + "\n".join(paths) + "\n")
    return path


@pytest.fixture(scope="module")
def windows(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("windows")
    info = build_window_dataset(manifest, out, show_progress=False)
    return out, info


def test_shard_range_covers_in_order():
    for n, k in [(0, 3), (5, 1), (10, 3), (2, 4)]:
        ranges = [shard_range(n, k, i) for i in range(k)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    with pytest.raises(ValueError, match="shard_index"):
        shard_range(10, 2, 2)


def test_find_records_dedupes_and_excludes(data_dir, tmp_path):
    records = find_records(data_dir / "cinc2021")
    assert len(records) == 50 and all(r.endswith(".hea") for r in records)  # .mat not listed twice
    ptbxl = find_records(data_dir / "ptbxl", exclude=["*/records500/*"])
    assert len(ptbxl) == 434 and not any("records500" in r for r in ptbxl)
    csv = tmp_path / "m.csv"
    csv.write_text("path,label\n" + f"{data_dir / CINC}.hea,x\n{data_dir / CINC}.mat,y\n")
    assert find_records(csv) == [f"{data_dir / CINC}.hea"]
    with pytest.raises(ValueError, match="does not exist"):
        find_records(tmp_path / "nowhere")


def test_window_dataset_rows(windows, data_dir):
    out, info = windows
    assert info.num_records == 5 and info.num_skipped == 1
    assert info.num_windows == 3 * 2 + 2 + 8
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == 1 and skipped[0]["path"].endswith("broken.hea") and skipped[0]["error"]

    ds = load_window_dataset(out)
    assert len(ds) == 16 and ds.cache_files  # memory-mapped Arrow, not in RAM
    assert set(ds.column_names) == {"input_values", "lead_mask", "record_id", "window_start"}
    rows = ds.with_format("numpy")[:]
    assert rows["input_values"].shape == (16, 6000) and rows["input_values"].dtype == np.float32
    assert list(rows["window_start"][:2]) == [0.0, 5.0]
    two_lead = np.char.endswith(rows["record_id"].astype(str), TWO_LEAD)
    assert two_lead.sum() == 8
    assert (rows["lead_mask"][two_lead].sum(1) == 2).all() and rows["lead_mask"][~two_lead].all()
    # the same numbers as the feature extractor on the record
    record = read_ecg(data_dir / PTBXL[0])
    expected = HuBERTECGFeatureExtractor()(record, window_starts=[0.0, 5.0])["input_values"]
    np.testing.assert_allclose(rows["input_values"][:2], expected, atol=1e-6)


def test_sharded_build_equals_single_process(manifest, windows, tmp_path):
    out, _ = windows
    for rank in range(3):
        assert build_window_dataset(manifest, tmp_path, process_index=rank, num_processes=3, show_progress=False) is None
    info = finalize_window_dataset(tmp_path, num_processes=3)
    assert info.num_windows == 16 and info.num_skipped == 1 and len(info.shards) == 3
    sharded = load_window_dataset(tmp_path).with_format("numpy")[:]
    single = load_window_dataset(out).with_format("numpy")[:]
    assert list(sharded["record_id"]) == list(single["record_id"])
    np.testing.assert_array_equal(sharded["input_values"], single["input_values"])


@pytest.mark.slow  # ~3-5 s; CI runs the slow tests too
def test_record_ids_do_not_depend_on_where_the_data_sits(data_dir, tmp_path):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "data").symlink_to(data_dir, target_is_directory=True)
    ids = []
    for root in (data_dir, moved / "data"):
        files = [str(root / p) for p in (*PTBXL[:2], CINC)]  # records one by one: relative to their common parent
        out = tmp_path / f"files{len(ids)}"
        build_window_dataset(files, out, show_progress=False)
        folder = tmp_path / f"folder{len(ids)}"
        build_window_dataset(root / "long", folder, show_progress=False)  # a directory: relative to it
        ids.append([*load_window_dataset(out)["record_id"], *load_window_dataset(folder)["record_id"]])
    assert ids[0] == ids[1]
    assert ids[0][0] == PTBXL[0] and "cpsc2021/data_8_4" in ids[0] and not any(i.startswith("/") for i in ids[0])


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="not a window dataset"):
        load_window_dataset(tmp_path)
    bad = tmp_path / "bad.hea"
    bad.write_text("garbage\n")
    with pytest.raises(ValueError, match="no record"):
        build_window_dataset([bad], tmp_path / "out", show_progress=False)


def test_parquet_shards_hold_the_windows_of_the_arrow_dataset(windows, manifest, tmp_path, capsys):
    """`hubert-ecg windows MANIFEST --format parquet`: the same rows as the Arrow dataset, in files of at most
    --windows_per_file windows, read back by load_window_dataset."""
    from hubert_ecg_cli import main as cli_main

    arrow_dir, info = windows
    out = tmp_path / "parquet"
    # the manifest's broken record is skipped and listed: exit status 1
    assert cli_main(["windows", str(manifest), "--output_dir", str(out), "--format", "parquet",
                     "--windows_per_file", "5"]) == 1
    captured = capsys.readouterr()
    assert "skipped 1 record(s):" in captured.err and "broken.hea" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["num_windows"] == info.num_windows and summary["format"] == "parquet"
    files = sorted(out.glob("*.parquet"))
    assert summary["files"] == len(files) == -(-info.num_windows // 5)
    import pyarrow.parquet as pq

    assert max(pq.ParquetFile(f).metadata.num_rows for f in files) == 5
    arrow, parquet = load_window_dataset(arrow_dir), load_window_dataset(out)
    assert arrow["record_id"] == parquet["record_id"] and arrow["window_start"] == parquet["window_start"]
    np.testing.assert_array_equal(np.asarray(arrow.with_format("numpy")["input_values"]),
                                  np.asarray(parquet.with_format("numpy")["input_values"]))
    assert cli_main(["windows", str(manifest), "--output_dir", str(tmp_path / "x"), "--format", "csv"]) == 2
    assert cli_main(["windows", "--output_dir", str(tmp_path / "x")]) == 2


def test_windows_command_lists_skipped_records_and_exits_1(data_dir, tmp_path, capsys):
    """A truncated record among good ones: the good windows are written, the bad record is listed on stderr with
    its reason (and in skipped.jsonl), and the exit status is 1, as for every command that reads many records."""
    import shutil

    from hubert_ecg_cli import main as cli_main

    folder = tmp_path / "records"
    folder.mkdir()
    for file in (data_dir / "ptbxl" / "records100" / "00000").glob("00001_lr.*"):
        shutil.copy(file, folder / file.name)
    shutil.copy(data_dir / "ptbxl" / "records100" / "00000" / "00002_lr.hea", folder / "00002_lr.hea")
    (folder / "00002_lr.dat").write_bytes((data_dir / "ptbxl" / "records100" / "00000" / "00002_lr.dat").read_bytes()[:1000])
    assert cli_main(["windows", str(folder), "--output_dir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert "hubert-ecg windows: skipped 1 record(s):" in err and "00002_lr.hea" in err and "truncated" in err
    assert len(load_window_dataset(tmp_path / "w")) == 2  # the good 10 s record: two 5 s windows
    assert cli_main(["windows", str(data_dir / "ptbxl" / "records100" / "00000" / "00001_lr.hea"),
                     "--output_dir", str(tmp_path / "ok")]) == 0
