"""Clinical ECG interchange files: detection from content, and reading through ``ecgdatakit``.

Formats: GE MUSE XML (``"muse-xml"``), Philips Sierra / PageWriter XML 1.03 (XLI-compressed) and 1.04.x
(``"philips-sierra-xml"``), HL7 aECG (``"hl7-aecg"``), SCP-ECG (``"scp-ecg"``), ISHNE Holter (``"ishne"``, with the
beat annotations of a ``.ann`` file beside it) and DICOM 12-lead waveforms (``"dicom"``).

:func:`detect_format` looks at the first bytes of a file (magic numbers, the XML root element) and needs nothing
outside numpy. :func:`read_clinical` decodes the file with ``ecgdatakit`` (Apache-2.0; the ``[clinical]`` extra),
imported lazily, and returns plain data that :func:`hubert_ecg.io.read_ecg` wraps in an ``ECGRecord``; this module
imports nothing of the package but :mod:`hubert_ecg.leads`, so ``io`` and this module never import each other.
What we read ourselves: the ISHNE ``.ann`` annotation file (no maintained reader under numpy 2), the checks that turn
a truncated or wrongly checksummed file into one ``ValueError``, and the mapping onto the package's metadata schema.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .leads import STANDARD_LEADS, normalize_lead_name

__all__ = ["CLINICAL_FORMATS", "detect_format", "read_clinical"]

#: ``source_format`` values of the clinical readers -> what the file is, for messages
CLINICAL_FORMATS = {
    "muse-xml": "a GE MUSE XML file (<RestingECG>)",
    "philips-sierra-xml": "a Philips Sierra/PageWriter XML file (<restingecgdata>)",
    "hl7-aecg": "an HL7 aECG file (<AnnotatedECG>)",
    "scp-ecg": "an SCP-ECG file (EN 1064: Section 0 at byte 7)",
    "ishne": "an ISHNE Holter file (magic 'ISHNE1.0')",
    "dicom": "a DICOM waveform file ('DICM' at byte 128)",
}
_INSTALL = 'pip install "hubert-ecg[clinical]"'
_SNIFF = 4096
# the device's statements that carry a person's name (MUSE: "Confirmed by Doe, John (123456) on ..."): left out
_PERSON_STATEMENT = re.compile(r"^\s*(confirmed|overread|over-read|reviewed|edited|referred|interpreted)\s+by\b", re.I)
_LIMB_FORMULAS = {  # Einthoven / Goldberger, from the stored leads I and II (mV)
    "III": lambda i, ii: ii - i,
    "aVR": lambda i, ii: -(i + ii) / 2,
    "aVL": lambda i, ii: i - ii / 2,
    "aVF": lambda i, ii: ii - i / 2,
}


def _xml_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and (head[0] == 0 or head[1] == 0)):
        for codec in ("utf-16", "utf-16-le", "utf-16-be"):
            try:
                return head[: len(head) // 2 * 2].decode(codec, errors="ignore")
            except UnicodeDecodeError:
                continue
    return head.decode("utf-8", errors="ignore")


def _is_scp(head: bytes) -> bool:
    """EN 1064: CRC (2 bytes), record size (4), then Section 0 whose first pointer names Section 0 at byte 7."""
    if len(head) < 32:
        return False
    size, sec_id, sec_len = (int.from_bytes(head[a:b], "little") for a, b in ((2, 6), (8, 10), (10, 14)))
    return (sec_id == 0 and sec_len >= 26 and (sec_len - 16) % 10 == 0 and size >= 6 + sec_len
            and head[22:24] == b"\0\0" and int.from_bytes(head[28:32], "little") == 7)


def detect_format(path: str | Path) -> str | None:
    """The clinical format of a file from its content, or None.

    Args:
        path: a file (a missing file or a directory gives None).

    Returns:
        One of :data:`CLINICAL_FORMATS`' keys, or None when the first 4 KiB match none of them (XML of another
        kind included).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF)
    except OSError:
        return None
    if head.startswith(b"ISHNE1.0"):
        return "ishne"
    if head[128:132] == b"DICM":
        return "dicom"
    if _is_scp(head):
        return "scp-ecg"
    text = _xml_text(head)
    if "<" not in text:
        return None
    if re.search(r"<restingecgdata[\s>]", text):
        return "philips-sierra-xml"
    if re.search(r"<RestingECG[\s>]", text, re.I):
        return "muse-xml"
    if re.search(r"<([A-Za-z_][\w.-]*:)?AnnotatedECG\b", text):
        return "hl7-aecg"
    return None


def _number(value) -> float | None:
    match = re.match(r"\s*(-?\d+(?:\.\d+)?)", str(value)) if value is not None else None
    return float(match.group(1)) if match else None


def _measurements(record, source_format: str) -> dict[str, dict[str, Any]]:
    """ecgdatakit's global measurements (and the few it keeps as annotations) -> name -> {"value", "unit"}."""
    gm, notes = record.measurements, record.annotations
    out: dict[str, dict[str, Any]] = {}

    def put(name, value, unit, **extra):
        if value is not None and name not in out:
            out[name] = {"value": float(value), "unit": unit, **extra}

    put("heart_rate", gm.heart_rate, "bpm")
    put("atrial_rate", _number(notes.get("AtrialRate", notes.get("atrialrate"))), "bpm")
    if source_format != "muse-xml":  # MUSE stores no RR interval; ecgdatakit computes one from the rate
        put("rr_interval", gm.rr_interval, "ms")
    put("pr_interval", gm.pr_interval, "ms")
    put("qrs_duration", gm.qrs_duration, "ms")
    put("qt_interval", gm.qt_interval, "ms")
    # QTc: Bazett's where the file names it, else the corrected QT the device reports without naming a formula
    # (MUSE QTCorrected, Philips qtc/meanqtc, aECG MDC_ECG_TIME_PD_QTc, DICOM "QTc Interval"), else Fridericia's
    unstated = next((notes[k] for k in ("QTCorrected", "qtc", "MDC_ECG_TIME_PD_QTc", "QTc Interval") if k in notes),
                    None)
    put("qtc", gm.qtc_bazett, "ms", formula="Bazett")
    put("qtc", _number(unstated), "ms")
    put("qtc", gm.qtc_fridericia, "ms", formula="Fridericia")
    put("p_axis", gm.p_axis, "deg")
    put("qrs_axis", gm.qrs_axis, "deg")
    put("t_axis", gm.t_axis, "deg")
    return out


def _standard_order(names: list[str]) -> list[int]:
    rank = {lead: i for i, lead in enumerate(STANDARD_LEADS)}
    return sorted(range(len(names)), key=lambda i: (rank.get(names[i], len(rank)), i))


def _stack(leads, path: Path, what: str) -> tuple[np.ndarray, float, list[str]]:
    rates = {float(lead.sampling_rate) for lead in leads}
    lengths = {len(lead.samples) for lead in leads}
    if len(rates) != 1:
        raise ValueError(f"{str(path)!r}: the {what} leads have different sampling rates {sorted(rates)}")
    for lead in leads:
        if lead.is_raw or (lead.units or "mV") != "mV":
            raise ValueError(f"{str(path)!r}: the file gives no scale to mV for lead {lead.label!r} ({what})")
    length = min(lengths)
    names = [normalize_lead_name(lead.label) or str(lead.label) for lead in leads]
    signal = np.stack([np.asarray(lead.samples[:length], dtype=np.float64) for lead in leads])
    order = _standard_order(names)
    return signal[order], rates.pop(), [names[i] for i in order]


def _derive_limb_leads(signal: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Leads III, aVR, aVL, aVF computed from I and II where the file stores I and II but not them."""
    if "I" not in names or "II" not in names:
        return signal, names, []
    i, ii = signal[names.index("I")], signal[names.index("II")]
    derived = [lead for lead in _LIMB_FORMULAS if lead not in names]
    if not derived:
        return signal, names, []
    signal = np.concatenate([signal, np.stack([_LIMB_FORMULAS[lead](i, ii) for lead in derived])])
    names = names + derived
    order = _standard_order(names)
    return signal[order], [names[k] for k in order], derived


def read_ishne_annotations(path: str | Path) -> dict[str, Any]:
    """Beat annotations of an ISHNE ``.ann`` file (Badilini 1998, ISHNE Holter standard output file format).

    Layout: the 522-byte ISHNE header (magic ``"ANN  1.0"``, CRC, fixed block whose first int32 is the size of the
    variable block), the variable block, a uint32 ``first sample``, then 4-byte annotations (label char,
    internal-use char, uint16 samples since the previous annotation).

    Returns:
        ``{"file": name, "samples": [int, ...], "labels": [str, ...]}``: the sample index (at the ECG's rate) and
        the label (``N`` normal, ``V`` ventricular, ``S`` supraventricular, ``X`` artefact, ...) of each beat;
        annotations after a ``!`` (a gap whose length the file does not give) are left out.

    Raises:
        ValueError: naming the file when it is not an ISHNE annotation file or is cut inside the header.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"ANN  1.0") or len(data) < 526:
        raise ValueError(f"{str(path)!r} is not an ISHNE annotation file (expected the magic 'ANN  1.0' and a "
                         f"522-byte header; got {len(data)} bytes)")
    start = 522 + max(0, int.from_bytes(data[10:14], "little", signed=True))
    if start + 4 > len(data):
        raise ValueError(f"{str(path)!r}: the ISHNE annotation file ends inside its header ({len(data)} bytes)")
    position = int.from_bytes(data[start:start + 4], "little")
    body = np.frombuffer(data[start + 4:start + 4 + (len(data) - start - 4) // 4 * 4],
                         dtype=[("label", "u1"), ("internal", "u1"), ("toc", "<u2")])
    samples, labels = [], []
    for label, toc in zip(body["label"], body["toc"]):
        if chr(label) == "!":
            break
        position += int(toc)
        samples.append(position)
        labels.append(chr(label))
    return {"file": path.name, "samples": samples, "labels": labels}


def _check_ishne(record, path: Path, rows: int) -> None:
    declared = int(record.raw_metadata.get("ecg_size") or 0)
    if declared > rows:
        raise ValueError(f"{str(path)!r}: the ISHNE header declares {declared} samples per lead but the file holds "
                         f"{rows} (a truncated file?)")


def read_clinical(path: str | Path, source_format: str) -> dict[str, Any]:
    """Read a clinical ECG file with ``ecgdatakit`` into plain data for an ``ECGRecord``.

    Args:
        path: the file.
        source_format: its format, as :func:`detect_format` says.

    Returns:
        ``{"signal": float32 (leads, samples) mV, "sampling_rate": Hz, "lead_names": [...], "metadata": {...}}``
        with the rhythm (not the median beat), standard lead names in the order I, II, III, aVR, aVL, aVF,
        V1-V6, and metadata ``source_format``, ``acquisition_time`` (ISO 8601 or None), ``device`` (str or
        None), ``statements`` (list of str; statements naming a person, such as "Confirmed by ...", are left
        out), ``measurements`` (name -> ``{"value", "unit"}``, plus ``"formula"`` for a QTc whose formula the file
        names), ``derived_leads`` (the leads computed from I and II because the file does not store them),
        ``median_beat`` (``{"signal", "sampling_rate", "lead_names"}`` where the file has one) and, for ISHNE with
        a ``.ann`` beside it, ``annotations`` (see :func:`read_ishne_annotations`).

    Raises:
        ValueError: naming the file and the format expected, for a file that is truncated, fails its checksum,
            declares more samples than it holds, or cannot be decoded.
        ImportError: when ``ecgdatakit`` (the ``[clinical]`` extra) is not installed.
    """
    path = Path(path)
    expected = CLINICAL_FORMATS[source_format]
    try:
        from ecgdatakit import FileParser
        from ecgdatakit.exceptions import ChecksumWarning

        if source_format == "dicom":
            import pydicom  # noqa: F401  (ecgdatakit's DICOM reader needs it; say so before parsing)
    except ImportError as err:
        raise ImportError(f"reading {str(path)!r} ({expected}) needs the optional clinical readers: {_INSTALL}") from err
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = FileParser.parse(path, units="mV")  # detects the format from content too, scales to mV
    except ImportError as err:
        raise ImportError(f"reading {str(path)!r} ({expected}) needs the optional clinical readers: {_INSTALL} "
                          f"({err})") from err
    except Exception as err:
        raise ValueError(f"cannot read {str(path)!r} as {expected}: {err}") from None
    found = _EDK_NAMES.get(record.file_format.parser)
    if found != source_format:
        raise ValueError(f"{str(path)!r} looks like {expected} but decodes as {record.file_format.name or 'another format'}")
    for item in caught:
        text = str(item.message)
        if issubclass(item.category, ChecksumWarning) or "truncated" in text.lower():
            raise ValueError(f"cannot read {str(path)!r} as {expected}: {text}")
    if not record.leads:
        raise ValueError(f"{str(path)!r} ({expected}) holds no rhythm waveform")
    signal, rate, names = _stack(record.leads, path, "rhythm")
    if source_format == "ishne":
        _check_ishne(record, path, signal.shape[1])
    signal, names, derived = _derive_limb_leads(signal, names)

    device = record.recording.device
    device_text = " ".join(part for part in (device.manufacturer, device.model) if part).strip()
    statements = [text for text, _ in record.interpretation.statements if text and not _PERSON_STATEMENT.match(text)]
    metadata: dict[str, Any] = {
        "source_format": source_format,
        "acquisition_time": record.recording.date.isoformat() if record.recording.date else None,
        "device": device_text or None,
        "statements": statements,
        "measurements": _measurements(record, source_format),
        "derived_leads": derived,
    }
    if record.median_beats:
        beat, beat_rate, beat_names = _stack(record.median_beats, path, "median beat")
        metadata["median_beat"] = {"signal": beat.astype(np.float32), "sampling_rate": beat_rate,
                                   "lead_names": beat_names}
    if source_format == "ishne" and path.with_suffix(".ann").is_file():
        metadata["annotations"] = read_ishne_annotations(path.with_suffix(".ann"))
    return {"signal": signal.astype(np.float32), "sampling_rate": rate, "lead_names": names, "metadata": metadata}


# ecgdatakit's parser classes -> our source_format (the parser ecgdatakit picks must be the format we detected)
_EDK_NAMES = {
    "GEMuseXMLParser": "muse-xml",
    "SierraXMLParser": "philips-sierra-xml",
    "HL7aECGParser": "hl7-aecg",
    "SCPECGParser": "scp-ecg",
    "ISHNEHolterParser": "ishne",
    "DICOMWaveformParser": "dicom",
}
