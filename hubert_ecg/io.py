"""Readers that turn ECG files into an :class:`ECGRecord` (signal in mV, sampling rate in Hz, lead names).

Supported sources:

* WFDB records (``.hea`` + ``.dat``/other signal files), through ``wfdb``; name them without extension (as
  ``wfdb`` does), or by their ``.hea`` or ``.dat`` path.
* PhysioNet/Computing in Cardiology challenge records (``.mat`` holding ``val`` in ADC units + a WFDB ``.hea``
  with gains and baselines); name them without extension, by ``.hea`` or by ``.mat``.
* NumPy ``.npy`` / ``.npz`` arrays (the format of the original HuBERT-ECG release); the sampling rate and lead
  names come from the caller (or, for ``.npz``, from ``sampling_rate`` / ``fs`` and ``lead_names`` entries).
* EDF/BDF through the optional ``pyedflib`` package and HDF5 through the optional ``h5py`` package.
* Clinical interchange files, recognised from their content whatever their extension (:mod:`hubert_ecg.clinical_io`,
  through the optional ``ecgdatakit`` package, ``pip install "hubert-ecg[clinical]"``): GE MUSE XML, Philips Sierra
  XML, HL7 aECG, SCP-ECG, ISHNE Holter (``.ecg`` + ``.ann``) and DICOM waveforms (12-lead ECG IOD).

Long records (more than :data:`LAZY_SAMPLES` samples per lead) in ``.npy`` files or WFDB format-16 ``.dat`` files
can be opened lazily (``read_ecg(path, lazy=True)``): the record's ``signal`` is then a :class:`LazySignal` that
reads ``signal[:, a:b]`` from the file on demand, so that a 24-hour Holter is never held in memory.

This module is the first layer of the package; the lead names of the model input (:data:`STANDARD_LEADS`) come
from :mod:`hubert_ecg.leads`, which imports nothing of the package (it travels with the feature extractor as remote
code).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .clinical_io import CLINICAL_FORMATS, detect_format, read_clinical
from .leads import STANDARD_LEADS, check_sampling_rate

__all__ = [
    "STANDARD_LEADS", "ECGRecord", "LazySignal", "LAZY_SAMPLES", "RECORD_EXTENSIONS", "SAMPLING_RATE_RANGE",
    "find_records", "read_ecg", "NoUsableRecords",
]

logger = logging.getLogger(__name__)

#: sampling rates (Hz) that :func:`read_ecg` accepts: ECGs are recorded between 100 Hz and a few kHz; a rate outside
#: this range is a wrong header (or a wrong ``sampling_rate=``).
SAMPLING_RATE_RANGE = (50.0, 10_000.0)

#: ``read_ecg(path, lazy=True)`` opens records with more samples per lead than this lazily (2**20 samples are about
#: 35 minutes at 500 Hz); shorter ones are read at once.
LAZY_SAMPLES = 2**20


class NoUsableRecords(ValueError):
    """None of a set of records could be used: ``skipped`` lists ``(name, reason)`` for each, ``total`` how many
    there were. A ``ValueError``; the commands list the records and exit 1 (:mod:`hubert_ecg.commands.records`)."""

    def __init__(self, message: str, skipped, total: int | None = None):
        super().__init__(message)
        self.skipped = [(str(name), str(reason)) for name, reason in skipped]
        self.total = len(self.skipped) if total is None else total


class LazySignal:
    """A ``(leads, samples)`` float32 signal in mV that stays in its file: ``signal[:, a:b]`` reads those samples.

    Supports ``shape``, ``dtype``, ``ndim``, ``len()``, ``np.asarray(signal)`` (reads everything) and indexing
    ``signal[rows, a:b]`` with a slice of samples (step 1) and any row index. Made by :func:`read_ecg` with
    ``lazy=True`` for long ``.npy`` and WFDB format-16 records.

    Args:
        read: ``read(a, b) -> float32 (leads, b - a)`` in mV (NaN for samples the file marks as missing).
        shape: ``(leads, samples)``.
        source: the file, for messages.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, read, shape: tuple[int, int], source: str = ""):
        self._read = read
        self.shape = (int(shape[0]), int(shape[1]))
        self.source = source

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rows, cols = (key if isinstance(key, tuple) else (key, slice(None)))
        if not isinstance(cols, slice) or cols.step not in (None, 1):
            raise ValueError(f"LazySignal of {self.source!r}: index samples with a slice a:b, got {cols!r}")
        a, b, _ = cols.indices(self.shape[1])
        values = self._read(a, max(a, b))
        return values if isinstance(rows, slice) and rows == slice(None) else values[rows]

    def __array__(self, dtype=None, copy=None):
        values = self[:, :]
        return values if dtype is None else values.astype(dtype)

    def __repr__(self) -> str:
        return f"LazySignal({self.source!r}, shape={self.shape})"

_NUMPY_EXTENSIONS = (".npy", ".npz")
_WFDB_SIGNAL_EXTENSIONS = (".dat",)
_EDF_EXTENSIONS = (".edf", ".bdf")
_HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
_DICOM_EXTENSIONS = (".dcm", ".dicom")
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}
#: File extensions that name a record in a directory (:func:`find_records`). WFDB and challenge records are named
#: by their ``.hea``; ``.mat`` / ``.dat`` files next to a ``.hea`` are the same record and are not listed twice.
#: ``.xml``, ``.scp`` and ``.ecg`` files are records only when their content is a clinical ECG format
#: (:func:`hubert_ecg.clinical_io.detect_format`): other XML in a folder is left out.
RECORD_EXTENSIONS = (".hea", ".mat", ".npy", ".npz", ".edf", ".bdf", ".h5", ".hdf5", ".dcm", ".xml", ".scp", ".ecg")
_SNIFFED_EXTENSIONS = (".xml", ".scp", ".ecg")
#: File extensions of manifests (lists of records): ``.txt`` one path a line, ``.csv`` / ``.tsv`` with a path column,
#: ``.jsonl`` with a path key (:func:`find_records`; the labelled CSV manifests of fine-tuning are read by
#: :func:`hubert_ecg.training.data.read_manifest` with the same path rule)
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".txt", ".jsonl")
#: the columns (or JSON keys) that name a record in a manifest, the first present taken (``filename``: the original
#: release's manifests)
PATH_COLUMNS = ("filename", "path", "record", "file", "record_path")
#: bytes per sample of the WFDB signal formats whose size is fixed (for the truncated-file message)
_WFDB_BYTES_PER_SAMPLE = {"8": 1, "80": 1, "16": 2, "61": 2, "160": 2, "212": 1.5, "24": 3, "32": 4, "310": 4 / 3,
                          "311": 4 / 3}


@dataclass
class ECGRecord:
    """One ECG recording.

    Attributes:
        signal: float32 array of shape ``(leads, samples)``, in millivolts (or a :class:`LazySignal` for a long
            record opened with ``read_ecg(path, lazy=True)``). Missing samples may be NaN.
        sampling_rate: samples per second of ``signal``, in Hz.
        lead_names: one name per row of ``signal``, spelled as the source spells them (``"AVR"``, ``"aVR"``,
            ``"avr"``, ``"MLII"``, ...).
        metadata: at least ``age`` (float years or None), ``sex`` (``"M"``, ``"F"`` or None) and ``diagnoses``
            (list of str, e.g. SNOMED-CT codes from a challenge header's ``# Dx:`` line); readers add more
            (``comments``, ``units``, ``source_format``, ...).
        record_name: the record's name (file stem) where known.
    """

    signal: np.ndarray
    sampling_rate: float
    lead_names: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    record_name: str | None = None

    def __post_init__(self):
        if not isinstance(self.signal, LazySignal):  # a lazy signal is checked by its reader
            signal = np.asarray(self.signal)
            if signal.ndim != 2:
                raise ValueError(
                    f"ECGRecord.signal must have shape (leads, samples), got an array with {signal.ndim} dimensions"
                )
            if not (np.issubdtype(signal.dtype, np.number) or signal.dtype == bool) or np.iscomplexobj(signal):
                raise ValueError(f"ECGRecord.signal must be real numbers (mV), got dtype {signal.dtype}")
            self.signal = signal.astype(np.float32, copy=False)
        self.sampling_rate = check_sampling_rate(self.sampling_rate, "ECGRecord.sampling_rate")
        self.lead_names = [str(name) for name in self.lead_names]
        if len(self.lead_names) != self.signal.shape[0]:
            raise ValueError(
                f"ECGRecord has {self.signal.shape[0]} leads (rows of signal) but {len(self.lead_names)} lead names"
            )
        self.metadata = dict(self.metadata or {})
        for key, default in (("age", None), ("sex", None), ("diagnoses", [])):
            self.metadata.setdefault(key, default)

    @property
    def duration(self) -> float:
        """Length of the recording in seconds (``samples / sampling_rate``)."""
        return self.signal.shape[1] / self.sampling_rate

    @property
    def num_leads(self) -> int:
        """Number of leads (rows of ``signal``)."""
        return self.signal.shape[0]

    def __repr__(self) -> str:
        return (
            f"ECGRecord(record_name={self.record_name!r}, leads={self.lead_names}, "
            f"sampling_rate={self.sampling_rate:g} Hz, samples={self.signal.shape[1]}, duration={self.duration:g} s)"
        )


# --------------------------------------------------------------------------------------------------------------
# metadata from header comments
# --------------------------------------------------------------------------------------------------------------


def _parse_age(value: str | None) -> float | None:
    if value is None:
        return None
    match = re.search(r"\d+(\.\d+)?", str(value))
    if match is None:
        return None
    return float(match.group(0))


def _parse_sex(value: str | None) -> str | None:
    if value is None:
        return None
    value = str(value).strip().lower()
    if value in ("m", "male", "man"):
        return "M"
    if value in ("f", "female", "woman"):
        return "F"
    return None


def _parse_comments(comments: Sequence[str]) -> dict[str, Any]:
    """Metadata from WFDB header comments.

    Understands ``Key: value`` lines (challenge headers: ``Age``, ``Sex``, ``Dx``; PTB: ``age``, ``sex``,
    ``Reason for admission``) and the MIT-BIH style ``<age> <sex> ...`` line.
    """
    fields: dict[str, str] = {}
    age = sex = None
    diagnoses: list[str] = []
    for line in comments:
        line = line.strip()
        if not line:
            continue
        if ":" in line:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            fields[key] = value
            lower = key.lower()
            if lower == "age" and age is None:
                age = _parse_age(value)
            elif lower == "sex" and sex is None:
                sex = _parse_sex(value)
            elif lower in ("dx", "diagnosis", "diagnoses"):
                diagnoses.extend(code.strip() for code in value.split(",") if code.strip())
            elif lower == "reason for admission" and value and value.lower() not in ("n/a", "unknown"):
                diagnoses.append(value)
        else:
            # MIT-BIH: "69 M 1085 1629 x1" -> age, sex
            match = re.match(r"^(\d+(?:\.\d+)?)\s+([MFmf])\b", line)
            if match and age is None and sex is None:
                age, sex = float(match.group(1)), match.group(2).upper()
    return {"age": age, "sex": sex, "diagnoses": diagnoses, "comments": list(comments), "header_fields": fields}


# --------------------------------------------------------------------------------------------------------------
# path resolution
# --------------------------------------------------------------------------------------------------------------


def _resolve(path: Path) -> tuple[str, Path]:
    """Return (kind, path) where kind is 'header' (path = record base without extension), 'numpy', 'edf', 'hdf5'."""
    suffix = path.suffix.lower()
    if suffix in _NUMPY_EXTENSIONS:
        kind = "numpy"
    elif suffix in _EDF_EXTENSIONS:
        kind = "edf"
    elif suffix in _HDF5_EXTENSIONS:
        kind = "hdf5"
    elif suffix in _DICOM_EXTENSIONS:
        kind = "dicom"
    elif suffix in _SNIFFED_EXTENSIONS and path.is_file():
        raise ValueError(
            f"{str(path)!r} is not a clinical ECG file this package reads: its content is none of "
            + ", ".join(CLINICAL_FORMATS.values())
        )
    elif suffix in (".hea", ".mat") or suffix in _WFDB_SIGNAL_EXTENSIONS:
        base = path.with_suffix("")
        if not path.is_file():
            raise ValueError(f"ECG file not found: {str(path)!r}")
        if not Path(str(base) + ".hea").is_file():
            raise ValueError(
                f"{str(path)!r} has no WFDB header next to it: expected {str(base) + '.hea'!r} "
                "(WFDB and challenge .mat records need their .hea file for gains, baselines and the sampling rate)"
            )
        return "header", base
    elif Path(str(path) + ".hea").is_file():
        # a record named the way wfdb names it: without extension (the name may itself contain dots)
        return "header", path
    elif path.is_dir():
        raise ValueError(
            f"{str(path)!r} is a directory, not an ECG file; read the records in it one by one "
            "(hubert_ecg.io.find_records lists them; hubert-ecg predict takes directories)"
        )
    elif path.is_file():
        raise ValueError(
            f"unknown ECG file extension {path.suffix!r} for {str(path)!r}: expected a WFDB record (name, .hea "
            "or .dat), a challenge record (.mat + .hea), .npy, .npz, .edf/.bdf (pyedflib), .h5/.hdf5 (h5py) "
            "or a clinical file recognised from its content: " + ", ".join(CLINICAL_FORMATS.values())
        )
    else:
        raise ValueError(
            f"ECG file not found: {str(path)!r} (tried the path itself and {str(path) + '.hea'!r} for a WFDB record)"
        )
    if not path.is_file():
        raise ValueError(f"ECG file not found: {str(path)!r}")
    return kind, path


def _check_rate(rate, name: str) -> float:
    """``rate`` in Hz, checked to lie in :data:`SAMPLING_RATE_RANGE`; ValueError naming ``name`` otherwise."""
    value = check_sampling_rate(rate, name)
    low, high = SAMPLING_RATE_RANGE
    if not low <= value <= high:
        raise ValueError(
            f"{name} is {value:g} Hz, outside {low:g} Hz-{high / 1000:g} kHz; expected the rate the ECG was "
            "recorded at (a wrong header or sampling_rate?)"
        )
    return value


def manifest_path_column(columns, manifest) -> str:
    """The column (or JSON key) of ``columns`` that names the records of ``manifest``: the first of
    :data:`PATH_COLUMNS` present.

    Raises:
        ValueError: naming the manifest and the columns expected, when there is none.
    """
    key = next((k for k in PATH_COLUMNS if k in columns), None)
    if key is None:
        raise ValueError(f"manifest {str(manifest)!r} needs a column named one of {PATH_COLUMNS}, got "
                         f"{sorted(map(str, columns))}")
    return key


def manifest_paths(entries, base: str | os.PathLike) -> list[str]:
    """The record paths of a manifest's entries: absolute paths as they are, relative ones relative to ``base``
    (the manifest's folder, or the ``data_dir`` given with it)."""
    return [str(e) if Path(str(e)).is_absolute() else str(Path(base) / str(e)) for e in entries]


def _read_manifest(path: Path) -> list[str]:
    """Record paths from a manifest: .txt (one path a line), .csv/.tsv (a path column), .jsonl (a path key).
    Relative paths are relative to the manifest's folder."""
    entries: list[str] = []
    suffix = path.suffix.lower()
    if suffix == ".txt":
        entries = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    elif suffix == ".jsonl":
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            entries.append(str(row[manifest_path_column(row, f"{path}:{number}")]))
    else:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            key = manifest_path_column(reader.fieldnames or [], path)
            entries = [row[key] for row in reader if row[key]]
    return manifest_paths(entries, path.parent)


def find_records(sources: str | os.PathLike | Sequence[str | os.PathLike], exclude: Sequence[str] = ()) -> list[str]:
    """List the records of directories, files and manifests, without duplicates.

    Args:
        sources: a directory (searched recursively for files with :data:`RECORD_EXTENSIONS`), a record file, a
            manifest (``.txt`` one path a line, ``.csv`` / ``.tsv`` with a ``filename`` (or ``path``, ``record``,
            ``file``) column, ``.jsonl`` with such a key; relative paths are relative to the manifest), or a list
            of these.
        exclude: glob patterns (``fnmatch`` on the full path, e.g. ``"*/records500/*"``) of records to leave out.

    Returns:
        Paths as strings: a WFDB / challenge record by its ``.hea`` (its ``.mat`` / ``.dat`` are not listed again),
        other formats by their file. Directory contents are sorted; the sources keep the given order.

    Raises:
        ValueError: if a source does not exist or a manifest lacks a path column.
    """
    from fnmatch import fnmatch

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in RECORD_EXTENSIONS and p.is_file()
                           and (p.suffix.lower() not in _SNIFFED_EXTENSIONS or detect_format(p) is not None))
            headers = {p.with_suffix("") for p in files if p.suffix.lower() == ".hea"}
            found += [str(p) for p in files if p.suffix.lower() == ".hea" or p.with_suffix("") not in headers]
        elif path.suffix.lower() in MANIFEST_EXTENSIONS and path.is_file():
            found += _read_manifest(path)
        elif path.exists() or path.with_suffix(".hea").exists():
            found.append(str(path))
        else:
            raise ValueError(f"data source {str(path)!r} does not exist; expected a directory, a record or a manifest")
    seen, unique = set(), []
    for record in found:
        key = str(Path(record).with_suffix("")) if Path(record).suffix.lower() in (".hea", ".mat", ".dat") else record
        if key not in seen and not any(fnmatch(record, pattern) for pattern in exclude):
            seen.add(key)
            unique.append(record)
    return unique


def read_ecg(
    path: str | os.PathLike,
    sampling_rate: float | None = None,
    lead_names: Sequence[str] | None = None,
    lazy: bool = False,
) -> ECGRecord:
    """Read one ECG file into an :class:`ECGRecord` (float32 ``(leads, samples)`` in mV).

    Args:
        path: a WFDB record (name without extension as ``wfdb`` takes it, or its ``.hea`` / ``.dat`` path), a
            PhysioNet challenge record (name, ``.hea`` or ``.mat``), a ``.npy`` / ``.npz`` array in mV of shape
            ``(leads, samples)`` (``(samples, leads)`` is transposed when only that reading fits the lead count),
            an ``.edf``/``.bdf`` file (needs ``pip install pyedflib``) or an ``.h5``/``.hdf5`` file (needs
            ``pip install h5py``; dataset ``signal``/``ecg``/``data`` or the only dataset, rate from the
            ``sampling_rate``/``fs`` attribute), or a clinical file recognised from its content whatever its
            extension (needs ``pip install "hubert-ecg[clinical]"``): GE MUSE XML, Philips Sierra XML (1.03
            XLI-compressed, 1.04.x), HL7 aECG, SCP-ECG, ISHNE Holter (beat annotations from a ``.ann`` beside it)
            or a DICOM 12-lead waveform; see :func:`hubert_ecg.clinical_io.read_clinical` for their metadata.
        sampling_rate: rate in Hz; required for ``.npy`` files (and files that do not store it). For files that
            store a rate it must agree with the stored one.
        lead_names: one name per lead. Defaults to the names stored in the file, or to :data:`STANDARD_LEADS`
            for 12-lead arrays without names. For files that store names, the given names replace them.

    Returns:
        ECGRecord with ``metadata`` holding ``age`` (float or None), ``sex`` ("M"/"F"/None), ``diagnoses``
        (list of str; SNOMED-CT codes from ``# Dx:`` for challenge records; empty for PTB-XL WFDB headers),
        ``source_format`` and, for WFDB/challenge headers, ``comments``, ``header_fields`` and ``units``; clinical
        files add ``acquisition_time``, ``device``, ``statements``, ``measurements``, ``derived_leads`` and, where
        the file has them, ``median_beat`` and (ISHNE) ``annotations`` (age and sex stay None).

    Raises:
        ValueError: naming the file, when it is missing, unreadable or corrupt, when the header does not match
            the signal (lead count or length), for an unknown extension, when a required sampling rate is missing
            or disagrees with the file, or when ``lead_names`` does not match the number of leads.
        ImportError: for EDF, HDF5 or clinical files when the optional reader package is not installed (names
            the extra to install).
    """
    path = Path(os.fspath(path)).expanduser()
    clinical = detect_format(path) if path.is_file() else None
    kind, resolved = ("clinical", path) if clinical is not None else _resolve(path)
    if kind == "dicom":  # a .dcm file without the 'DICM' preamble: read as DICOM, which names what is wrong
        kind, clinical = "clinical", "dicom"
    if sampling_rate is not None:
        sampling_rate = _check_rate(sampling_rate, f"sampling_rate={sampling_rate!r} given for {str(path)!r}")
    record = None
    if lazy and kind == "numpy" and resolved.suffix.lower() == ".npy":
        record = _open_npy_lazily(resolved, sampling_rate, lead_names)
    if record is not None:
        pass
    elif kind == "header":
        record = _read_wfdb(resolved, path, lazy)
    elif kind == "numpy":
        record = _read_numpy(resolved, sampling_rate, lead_names)
    elif kind == "edf":
        record = _read_edf(resolved)
    elif kind == "clinical":
        data = read_clinical(resolved, clinical)
        data["metadata"]["path"] = str(path)
        record = ECGRecord(data["signal"], data["sampling_rate"], data["lead_names"], data["metadata"],
                           record_name=path.stem)
    else:
        record = _read_hdf5(resolved, sampling_rate)

    _check_rate(record.sampling_rate, f"{str(path)!r}: its sampling rate")
    if sampling_rate is not None and not np.isclose(sampling_rate, record.sampling_rate):
        raise ValueError(
            f"{str(path)!r} stores a sampling rate of {record.sampling_rate:g} Hz but sampling_rate="
            f"{sampling_rate:g} was given; leave sampling_rate out for files that store their rate"
        )
    if lead_names is not None:
        lead_names = [str(n) for n in lead_names]
        if len(lead_names) != record.signal.shape[0]:
            raise ValueError(
                f"lead_names has {len(lead_names)} names but {str(path)!r} holds {record.signal.shape[0]} leads"
            )
        record.lead_names = lead_names
    return record


# --------------------------------------------------------------------------------------------------------------
# WFDB and challenge .mat
# --------------------------------------------------------------------------------------------------------------


def _units_to_mv(units: Sequence[str | None], path: Path) -> np.ndarray:
    factors = []
    for unit in units:
        key = (unit or "").strip().lower()
        if key not in _UNIT_TO_MV:
            raise ValueError(f"{str(path)!r}: cannot convert signal units {unit!r} to mV (expected mV, uV or V)")
        factors.append(_UNIT_TO_MV[key])
    return np.asarray(factors, dtype=np.float64)


def _signal_files_are_mat(base: Path) -> bool:
    """Whether the header's first signal line names a ``.mat`` file (a PhysioNet challenge record)."""
    try:
        text = Path(str(base) + ".hea").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return len(lines) > 1 and lines[1].split()[0].lower().endswith(".mat")


def _check_header_text(base: Path) -> None:
    """An empty header (no line but comments and blanks) gets its own message (wfdb says "list index out of
    range")."""
    header_path = Path(str(base) + ".hea")
    try:
        text = header_path.read_text(encoding="utf-8", errors="ignore")
    except OSError as err:
        raise ValueError(f"cannot read the WFDB header {str(header_path)!r}: {err}") from None
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise ValueError(
            f"the WFDB header {str(header_path)!r} is empty ({header_path.stat().st_size} bytes, no record line); "
            "expected a record line (name, number of signals, sampling rate, samples) and one line per signal"
        )


def _header_warnings(header, base: Path) -> list[str]:
    """Warnings about a header that reads but disagrees with its file: a record name other than the file's."""
    warnings = []
    if header.record_name and str(header.record_name) != base.name:
        warnings.append(
            f"the header {base.name + '.hea'!r} names the record {str(header.record_name)!r}, not {base.name!r} "
            "(a renamed or copied file?)"
        )
    for text in warnings:
        logger.warning(f"{str(base)}: {text}")
    return warnings


def _truncated_signal_file(header, base: Path) -> str | None:
    """A message when the header's signal file is shorter than the samples it describes, else None."""
    files = list(header.file_name or [])
    fmts = [str(f) for f in (header.fmt or [])]
    if not files or len(set(files)) != 1 or len(set(fmts)) != 1 or fmts[0] not in _WFDB_BYTES_PER_SAMPLE:
        return None
    if header.sig_len is None or any(k not in (None, 1) for k in (header.samps_per_frame or [])):
        return None
    dat = base.parent / files[0]
    if not dat.is_file():
        return f"WFDB record {str(base)!r}: its signal file {str(dat)!r} is missing"
    offset = int((header.byte_offset or [0])[0] or 0)
    per_frame = _WFDB_BYTES_PER_SAMPLE[fmts[0]] * header.n_sig
    expected = int(np.ceil(header.sig_len * per_frame)) + offset
    size = dat.stat().st_size
    if size >= expected:
        return None
    found = int((size - offset) // per_frame) if size > offset else 0
    return (
        f"WFDB record {str(base)!r}: the signal file {str(dat)!r} is truncated: the header expects {header.sig_len} "
        f"samples x {header.n_sig} leads (format {fmts[0]}, {expected} bytes), the file holds {size} bytes "
        f"({found} complete samples)"
    )


def _read_wfdb(base: Path, given: Path, lazy: bool = True) -> ECGRecord:
    """A WFDB record (header ``base.hea``): the header parsed once (wfdb parses a header slowly, ~5 ms, through
    pandas); a record whose signals all sit in one format-16 ``.dat`` file (PTB-XL, most PhysioNet databases) read
    from that file directly (:func:`_open_format16`: lazily when longer than :data:`LAZY_SAMPLES` and ``lazy``),
    any other through ``wfdb.rdrecord`` (:func:`_read_header_record`)."""
    try:
        import wfdb
    except ImportError as err:  # pragma: no cover - wfdb is a hard dependency
        raise ImportError("reading WFDB records needs the 'wfdb' package: pip install wfdb") from err
    _check_header_text(base)
    try:
        header = wfdb.rdheader(str(base))
    except Exception as err:
        raise ValueError(f"cannot read the WFDB header {str(base) + '.hea'!r}: {err}") from None
    record = _open_format16(base, given, header, lazy)
    return record if record is not None else _read_header_record(base, given, header)


def _read_header_record(base: Path, given: Path, header) -> ECGRecord:
    """A WFDB or challenge (``.mat``) record of any layout, its header ``header`` already parsed (``wfdb.rdheader``)."""
    import wfdb

    file_names = list(header.file_name or [])
    if not file_names or header.n_sig in (None, 0):
        raise ValueError(f"WFDB header {str(base) + '.hea'!r} lists no signals")
    fs = check_sampling_rate(header.fs, f"sampling frequency in {str(base) + '.hea'!r}")
    if all(name.lower().endswith(".mat") for name in file_names):
        signal, units = _read_challenge_mat(base, header)
        source_format = "challenge_mat"
    else:
        truncated = _truncated_signal_file(header, base)
        if truncated is not None:
            raise ValueError(truncated)
        try:
            rec = wfdb.rdrecord(str(base), physical=True)
        except Exception as err:
            raise ValueError(
                f"cannot read WFDB record {str(base)!r} (given as {str(given)!r}): {type(err).__name__}: {err}"
            ) from None
        signal = rec.p_signal
        if signal is None or signal.ndim != 2:
            raise ValueError(f"WFDB record {str(base)!r} holds no signal")
        if header.sig_len is not None and signal.shape[0] != header.sig_len:
            raise ValueError(
                f"WFDB record {str(base)!r}: header says {header.sig_len} samples but the signal file holds "
                f"{signal.shape[0]}"
            )
        signal = signal.T
        units = list(rec.units or ["mV"] * signal.shape[0])
        source_format = "wfdb"
    if signal.shape[0] != header.n_sig:
        raise ValueError(
            f"{str(base)!r}: header lists {header.n_sig} signals but the signal file holds {signal.shape[0]} leads"
        )
    factors = _units_to_mv(units, base)
    signal = (signal * factors[:, None]).astype(np.float32)
    metadata = _parse_comments(header.comments or [])
    metadata.update(source_format=source_format, units=list(units), path=str(given),
                    warnings=_header_warnings(header, base))
    names = [str(n) for n in (header.sig_name or [f"lead{i}" for i in range(signal.shape[0])])]
    return ECGRecord(
        signal=signal, sampling_rate=fs, lead_names=names, metadata=metadata, record_name=header.record_name
    )


def _open_format16(base: Path, given: Path, header, lazy: bool = True) -> ECGRecord | None:
    """A WFDB record whose signals all sit in one format-16 ``.dat`` file (no skew, offset or multiple samples per
    frame), read from it with numpy as ``wfdb.rdrecord(physical=True)`` reads it (``(digital - baseline) / gain``,
    the invalid sample -32768 as NaN): opened as a :class:`LazySignal` when longer than :data:`LAZY_SAMPLES` and
    ``lazy``, else read at once. None for any other record, or a signal file shorter than the header says (read by
    :func:`_read_header_record`, which names the problem)."""
    n_sig, sig_len = header.n_sig or 0, header.sig_len or 0
    files = set(header.file_name or [])
    if (
        n_sig == 0
        or sig_len == 0
        or len(files) != 1
        or any(str(f) != "16" for f in (header.fmt or []))
        or any(s not in (None, 0) for s in (header.skew or []))
        or any(b not in (None, 0) for b in (header.byte_offset or []))
        or any(k not in (None, 1) for k in (header.samps_per_frame or []))
        or header.fs is None
    ):
        return None
    dat = base.parent / files.pop()
    expected = sig_len * n_sig * 2
    if not dat.is_file() or dat.stat().st_size < expected:
        return None  # the full reader names the problem
    gains = np.asarray([g if g else 200.0 for g in header.adc_gain], dtype=np.float64)
    baselines = np.asarray(header.baseline or [0] * n_sig, dtype=np.float64)
    units = list(header.units or ["mV"] * n_sig)
    factors = _units_to_mv(units, base) / gains

    def read(a: int, b: int) -> np.ndarray:
        with open(dat, "rb") as handle:
            handle.seek(a * n_sig * 2)
            digital = np.fromfile(handle, dtype="<i2", count=(b - a) * n_sig).reshape(b - a, n_sig).T
        values = ((digital - baselines[:, None]) * factors[:, None]).astype(np.float32)
        values[digital == -32768] = np.nan  # WFDB's invalid sample of format 16
        return values

    is_lazy = lazy and sig_len > LAZY_SAMPLES
    metadata = _parse_comments(header.comments or [])
    metadata.update(source_format="wfdb", units=units, path=str(given), warnings=_header_warnings(header, base))
    if is_lazy:
        metadata["lazy"] = True
    names = [str(n) for n in (header.sig_name or [f"lead{i}" for i in range(n_sig)])]
    fs = check_sampling_rate(header.fs, f"sampling frequency in {str(base) + '.hea'!r}")
    signal = LazySignal(read, (n_sig, sig_len), str(dat)) if is_lazy else read(0, sig_len)
    return ECGRecord(signal=signal, sampling_rate=fs, lead_names=names, metadata=metadata,
                     record_name=header.record_name)


def _open_npy_lazily(path: Path, sampling_rate, lead_names) -> ECGRecord | None:
    """A long ``.npy`` record ``(leads, samples)`` (C or Fortran order) opened as a :class:`LazySignal`, or None."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
    except Exception:
        return None
    if len(shape) != 2 or not np.issubdtype(dtype, np.number) or np.iscomplexobj(np.zeros(0, dtype)):
        return None
    names = list(lead_names) if lead_names is not None else None
    expected = len(names) if names is not None else len(STANDARD_LEADS)
    if shape[0] != expected or shape[1] <= LAZY_SAMPLES or sampling_rate is None:
        return None  # (samples, leads) files, short records and missing rates: the full reader
    n_leads, n = shape

    def read(a: int, b: int) -> np.ndarray:
        out = np.empty((n_leads, b - a), dtype=np.float32)
        with open(path, "rb") as handle:
            if fortran:  # column-major: the samples of all leads, interleaved
                handle.seek(offset + a * n_leads * dtype.itemsize)
                out[:] = np.fromfile(handle, dtype=dtype, count=(b - a) * n_leads).reshape(b - a, n_leads).T
                return out
            for row in range(n_leads):
                handle.seek(offset + (row * n + a) * dtype.itemsize)
                out[row] = np.fromfile(handle, dtype=dtype, count=b - a)
        return out

    return ECGRecord(
        signal=LazySignal(read, shape, str(path)),
        sampling_rate=sampling_rate,
        lead_names=[str(x) for x in (names or STANDARD_LEADS)],
        metadata={"source_format": "npy", "path": str(path), "lazy": True},
        record_name=path.stem,
    )


def _read_challenge_mat(base: Path, header) -> tuple[np.ndarray, list[str]]:
    from scipy.io import loadmat

    mat_path = base.parent / header.file_name[0]
    if not mat_path.is_file():
        raise ValueError(f"challenge record {str(base)!r}: signal file {str(mat_path)!r} not found")
    try:
        content = loadmat(str(mat_path))
    except Exception as err:
        raise ValueError(
            f"cannot read the challenge .mat file {str(mat_path)!r}: {type(err).__name__}: {err}"
        ) from None
    if "val" not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"challenge .mat file {str(mat_path)!r} has no 'val' array (found {keys})")
    val = np.asarray(content["val"])
    if val.ndim != 2 or not np.issubdtype(val.dtype, np.number):
        raise ValueError(f"challenge .mat file {str(mat_path)!r}: 'val' must be a 2-D numeric array, got {val.shape}")
    n_sig, sig_len = header.n_sig, header.sig_len
    if val.shape[0] != n_sig and val.shape[1] == n_sig and val.shape[0] != val.shape[1]:
        val = val.T
    if val.shape[0] != n_sig or (sig_len is not None and val.shape[1] != sig_len):
        raise ValueError(
            f"challenge record {str(base)!r}: header {str(base) + '.hea'!r} describes {n_sig} leads x {sig_len} "
            f"samples but {str(mat_path)!r} holds 'val' of shape {val.shape}"
        )
    gains = np.asarray([g if g else 200.0 for g in (header.adc_gain or [200.0] * n_sig)], dtype=np.float64)
    baselines = np.asarray(header.baseline or [0] * n_sig, dtype=np.float64)
    if np.any(gains == 0):
        raise ValueError(f"challenge record {str(base)!r}: zero ADC gain in the header")
    signal = (val.astype(np.float64) - baselines[:, None]) / gains[:, None]
    units = [u or "mV" for u in (header.units or ["mV"] * n_sig)]
    return signal, units


# --------------------------------------------------------------------------------------------------------------
# numpy, EDF, HDF5
# --------------------------------------------------------------------------------------------------------------


def _orient(array: np.ndarray, n_names: int | None, path: Path) -> np.ndarray:
    if array.ndim != 2:
        raise ValueError(f"{str(path)!r}: expected an array of shape (leads, samples), got shape {array.shape}")
    expected = n_names if n_names is not None else len(STANDARD_LEADS)
    if array.shape[0] != expected and array.shape[1] == expected:
        array = array.T
    return array


def _read_numpy(path: Path, sampling_rate: float | None, lead_names: Sequence[str] | None) -> ECGRecord:
    stored_rate = stored_names = None
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except Exception as err:
        raise ValueError(f"cannot read the numpy file {str(path)!r}: {type(err).__name__}: {err}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            key = next((k for k in ("signal", "ecg", "val", "data", "x") if k in keys), None)
            array_keys = [k for k in keys if loaded[k].ndim >= 2]
            if key is None and len(array_keys) == 1:
                key = array_keys[0]
            if key is None:
                raise ValueError(
                    f"{str(path)!r}: cannot tell which array is the ECG among {keys}; expected a key 'signal' "
                    "(or 'ecg', 'val', 'data') or a single 2-D array"
                )
            array = loaded[key]
            for rate_key in ("sampling_rate", "fs"):
                if rate_key in keys:
                    stored_rate = float(loaded[rate_key])
            if "lead_names" in keys:
                stored_names = [str(n) for n in loaded["lead_names"].tolist()]
    else:
        array = loaded
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{str(path)!r}: expected a real numeric array in mV, got dtype {array.dtype}")
    names = list(lead_names) if lead_names is not None else stored_names
    array = _orient(array, len(names) if names is not None else None, path)
    rate = sampling_rate if sampling_rate is not None else stored_rate
    if rate is None:
        raise ValueError(
            f"{str(path)!r}: numpy files do not store a sampling rate; pass sampling_rate= (Hz) to read_ecg "
            "(hubert-ecg predict: --sampling_rate)"
        )
    if names is None:
        if array.shape[0] != len(STANDARD_LEADS):
            raise ValueError(
                f"{str(path)!r} holds {array.shape[0]} leads; pass lead_names= (one name per lead) to read_ecg "
                "(hubert-ecg predict: --lead_names)"
            )
        names = list(STANDARD_LEADS)
    if len(names) != array.shape[0]:
        raise ValueError(f"lead_names has {len(names)} names but {str(path)!r} holds {array.shape[0]} leads")
    return ECGRecord(
        signal=array.astype(np.float32),
        sampling_rate=rate,
        lead_names=[str(n) for n in names],
        metadata={"source_format": path.suffix.lower().lstrip("."), "path": str(path)},
        record_name=path.stem,
    )


def _read_edf(path: Path) -> ECGRecord:
    try:
        import pyedflib
    except ImportError as err:
        raise ImportError(
            f"reading EDF/BDF files such as {str(path)!r} needs the optional 'pyedflib' package: pip install pyedflib"
        ) from err
    try:
        with pyedflib.EdfReader(str(path)) as reader:
            n = reader.signals_in_file
            rates = [float(reader.getSampleFrequency(i)) for i in range(n)]
            labels = [reader.getLabel(i).strip() for i in range(n)]
            units = [reader.getPhysicalDimension(i).strip() for i in range(n)]
            signals = [reader.readSignal(i) for i in range(n)]
            header = reader.getHeader()
    except Exception as err:
        raise ValueError(f"cannot read the EDF file {str(path)!r}: {type(err).__name__}: {err}") from None
    if n == 0:
        raise ValueError(f"EDF file {str(path)!r} holds no signals")
    if len(set(rates)) != 1 or len({len(s) for s in signals}) != 1:
        raise ValueError(f"EDF file {str(path)!r}: signals have different sampling rates {sorted(set(rates))}")
    factors = _units_to_mv(units, path)
    signal = np.stack(signals).astype(np.float64) * factors[:, None]
    metadata = {
        "age": None,
        "sex": _parse_sex(header.get("sex") or header.get("gender")),
        "diagnoses": [],
        "units": units,
        "source_format": "edf",
        "path": str(path),
    }
    return ECGRecord(
        signal=signal.astype(np.float32),
        sampling_rate=rates[0],
        lead_names=labels,
        metadata=metadata,
        record_name=path.stem,
    )


def _read_hdf5(path: Path, sampling_rate: float | None) -> ECGRecord:
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"reading HDF5 files such as {str(path)!r} needs the optional 'h5py' package: pip install h5py"
        ) from err
    try:
        with h5py.File(str(path), "r") as handle:
            datasets = {k: v for k, v in handle.items() if isinstance(v, h5py.Dataset)}
            key = next((k for k in ("signal", "ecg", "data", "tracings") if k in datasets), None)
            if key is None and len(datasets) == 1:
                key = next(iter(datasets))
            if key is None:
                raise ValueError(
                    f"{str(path)!r}: cannot tell which dataset is the ECG among {sorted(datasets)}; expected "
                    "'signal' (or 'ecg', 'data') or a single dataset"
                )
            dataset = datasets[key]
            array = np.asarray(dataset[()])
            attrs = dict(dataset.attrs) | dict(handle.attrs)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"cannot read the HDF5 file {str(path)!r}: {type(err).__name__}: {err}") from None
    names = attrs.get("lead_names")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names is not None else None
    stored_rate = attrs.get("sampling_rate", attrs.get("fs"))
    rate = sampling_rate if sampling_rate is not None else stored_rate
    if rate is None:
        raise ValueError(f"{str(path)!r} stores no 'sampling_rate' attribute; pass sampling_rate= (Hz) to read_ecg "
                         "(hubert-ecg predict: --sampling_rate)")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{str(path)!r}: expected a numeric dataset in mV, got dtype {array.dtype}")
    array = _orient(array, len(names) if names is not None else None, path)
    if names is None:
        if array.shape[0] != len(STANDARD_LEADS):
            raise ValueError(
                f"{str(path)!r} holds {array.shape[0]} leads and no 'lead_names' attribute; pass lead_names="
            )
        names = list(STANDARD_LEADS)
    return ECGRecord(
        signal=array.astype(np.float32),
        sampling_rate=float(rate),
        lead_names=names,
        metadata={"source_format": "hdf5", "path": str(path)},
        record_name=path.stem,
    )
