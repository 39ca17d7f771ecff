"""A tiny SCP-ECG (EN 1064 / ISO 11073-91064) writer for the tests: no public SCP-ECG fixture with a licence we can
ship was found, so the reader is tested on files written from the standard's layout.

Written: Section 0 (pointers), 1 (acquisition date and time, tags 25/26), 3 (lead definitions, all simultaneous),
6 (rhythm data: uncompressed int16 amplitudes, no Huffman table (Section 2 absent), no reference-beat subtraction),
7 (global measurements: RR/PP and one block of wave boundaries and axes) and 8 (textual statements). Every section
and the record carry a CRC-CCITT (polynomial 0x1021, initial 0xFFFF) of the bytes after the CRC field.
"""

from __future__ import annotations

import binascii
import struct

import numpy as np

#: EN 1064 Section 3 lead codes of the 12 standard leads
LEAD_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
              "III": 61, "aVR": 62, "aVL": 63, "aVF": 64}


def _crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def _section(section_id: int, body: bytes) -> bytes:
    if len(body) % 2:
        body += b"\0"  # sections have an even length
    reserved = b"SCPECG" if section_id == 0 else b"\0" * 6
    rest = struct.pack("<HIBB", section_id, 16 + len(body), 20, 20) + reserved + body
    return struct.pack("<H", _crc(rest)) + rest


def synthetic_ecg(rate: int = 500, seconds: float = 10.0) -> tuple[np.ndarray, list[str]]:
    """12 leads (mV) of a beat every 0.8 s: a 1.2 mV Gaussian QRS on lead II, smaller on the others."""
    t = np.arange(int(rate * seconds)) / rate
    beat = sum(np.exp(-0.5 * ((t - c) / 0.012) ** 2) for c in np.arange(0.4, seconds, 0.8))
    names = list(LEAD_CODES)
    gains = np.linspace(0.3, 1.2, len(names))[::-1]
    gains[names.index("II")] = 1.2
    return (gains[:, None] * beat[None, :]).astype(np.float64), names


def write_scp(path, signal_mv: np.ndarray, lead_names: list[str], rate: int = 500,
              statements=("Sinus rhythm", "Normal ECG"), avm_nv: int = 5000) -> bytes:
    """Write ``signal_mv`` (leads, samples) as an SCP-ECG file; returns its bytes."""
    samples = signal_mv.shape[1]
    digital = np.round(signal_mv * 1e6 / avm_nv).astype("<i2")
    sections = {}
    sections[1] = bytes([25]) + struct.pack("<H", 4) + struct.pack("<HBB", 2024, 3, 1) \
        + bytes([26]) + struct.pack("<H", 3) + bytes([9, 30, 0]) + bytes([255]) + struct.pack("<H", 0)
    sections[3] = bytes([len(lead_names), 0x04 | (len(lead_names) << 3)]) + b"".join(
        struct.pack("<IIB", 1, samples, LEAD_CODES[name]) for name in lead_names)
    data = [digital[i].tobytes() for i in range(len(lead_names))]
    sections[6] = struct.pack("<HHBB", avm_nv, 1_000_000 // rate, 0, 0) \
        + b"".join(struct.pack("<H", len(d)) for d in data) + b"".join(data)
    sections[7] = struct.pack("<BBHH", 1, 0, 800, 800) + struct.pack("<5H3h", 100, 200, 250, 340, 650, 45, 60, 40)
    text = [s.encode("latin-1") + b"\0" for s in statements]
    sections[8] = bytes([0]) + struct.pack("<HBB", 2024, 3, 1) + bytes([9, 30, 0, len(text)]) + b"".join(
        bytes([i + 1]) + struct.pack("<H", len(t)) + t for i, t in enumerate(text))
    ids = list(range(12))
    pointer_size = 16 + 10 * len(ids)
    position = 6 + pointer_size  # bytes before the next section
    pointers, blobs = [], []
    for sid in ids:
        if sid == 0:
            pointers.append(struct.pack("<HII", 0, pointer_size, 7))
        elif sid in sections:
            blob = _section(sid, sections[sid])
            pointers.append(struct.pack("<HII", sid, len(blob), position + 1))
            blobs.append(blob)
            position += len(blob)
        else:
            pointers.append(struct.pack("<HII", sid, 0, 0))
    record = _section(0, b"".join(pointers)) + b"".join(blobs)
    size = 6 + len(record)
    body = struct.pack("<I", size) + record
    content = struct.pack("<H", _crc(body)) + body
    with open(path, "wb") as handle:
        handle.write(content)
    return content
