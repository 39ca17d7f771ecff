"""ECG lead names: the 12 standard leads of the model input and the package's one lead-name mapping.

Shared by :mod:`hubert_ecg.io` (readers) and :mod:`hubert_ecg.processing` (the feature extractor). It imports only
numpy, so that ``save_pretrained`` can copy it beside ``processing.py`` as remote code (transformers copies the
relative imports of a remote-code module).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = ["STANDARD_LEADS", "LEAD_SETS", "MISSING_LEADS", "DEFAULT_MISSING_LEADS", "normalize_lead_name", "map_leads",
           "check_missing_leads", "check_sampling_rate", "lead_set", "parse_lead_sets"]

#: The 12 standard leads in the order the released HuBERT-ECG weights expect them
#: (medRxiv doi 10.1101/2024.11.14.24317328, and the released preprocessing script).
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

#: The lead sets of the PhysioNet/CinC Challenge 2021 (Reyna et al., "Will two do?", CinC 2021), by name: the
#: number of leads. Each lists its leads in :data:`STANDARD_LEADS` order.
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "12": STANDARD_LEADS,
    "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
    "1": ("I",),
}

# Lead-name spellings seen in public ECG data sets, after lower-casing and removing spaces, '-', '_', '.' and a
# leading "lead": MIT-BIH's modified limb leads (MLI, MLII, MLIII) and the Brazilian DI/DII/DIII naming.
_LEAD_ALIASES = {
    "mli": "I",
    "mlii": "II",
    "mliii": "III",
    "di": "I",
    "dii": "II",
    "diii": "III",
}
_STANDARD_BY_KEY = {lead.lower(): lead for lead in STANDARD_LEADS}


#: what a record lacking some of the model's leads gets: ``"zero"`` (the leads zero-filled, a ``lead_mask``, the record
#: flagged) or ``"raise"`` (an error naming the record and the leads: a command skips and lists it)
MISSING_LEADS = ("zero", "raise")
#: the one default of every reader of records (pipelines, the commands, the training collators, the feature
#: extractor): records with any subset of the 12 leads are used, as the model was pretrained with
DEFAULT_MISSING_LEADS = "zero"


def check_missing_leads(value, name: str = "missing_leads") -> str:
    """``value`` if it is one of :data:`MISSING_LEADS`.

    Raises:
        ValueError: naming ``name`` (an argument or option, e.g. ``"--missing_leads"``) and the choices.
    """
    if value not in MISSING_LEADS:
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in MISSING_LEADS)}, got {value!r}")
    return value


def normalize_lead_name(name: str) -> str | None:
    """Map a lead name as a source spells it to its standard spelling, or None for a non-standard lead.

    ``"AVR"``, ``"avr"``, ``"aVR"``, ``"lead aVR"`` -> ``"aVR"``; ``"Lead I (Einthoven)"`` (DICOM) -> ``"I"``;
    ``"MLII"`` (MIT-BIH modified lead II) -> ``"II"``; Frank leads ``"vx"``, ``"vy"``, ``"vz"`` -> None (dropped).
    """
    key = re.sub(r"\(.*?\)", "", str(name)).strip().lower()  # DICOM: "Lead I (Einthoven)"
    for char in " -_.":
        key = key.replace(char, "")
    if key.startswith("lead") and len(key) > 4:
        key = key[4:]
    if key in _STANDARD_BY_KEY:
        return _STANDARD_BY_KEY[key]
    return _LEAD_ALIASES.get(key)


def map_leads(
    lead_names: Sequence[str] | None,
    num_rows: int,
    lead_order: Sequence[str] = STANDARD_LEADS,
    missing_leads: str = DEFAULT_MISSING_LEADS,
    where: str = "ecg",
) -> tuple[np.ndarray, np.ndarray]:
    """THE lead-name mapping of the package: which input row feeds each model lead.

    Names are matched through :func:`normalize_lead_name` (any case, MIT-BIH ``MLII``, DICOM ``Lead I (...)``);
    non-standard leads (Frank vx, vy, vz) are dropped. Without names the rows must be the ``lead_order`` leads.

    Args:
        lead_names: one name per input row, or None.
        num_rows: number of input rows (leads).
        lead_order: the model's leads, in order (default :data:`STANDARD_LEADS`).
        missing_leads: ``"raise"`` (a missing lead is an error) or ``"zero"`` (it is zero-filled downstream).
        where: how error messages name the input (a file name, ``ecg[3]``).

    Returns:
        ``(rows, present)``: int64 ``(len(lead_order),)`` the input row of every model lead (-1 where absent) and
        bool ``(len(lead_order),)`` True for the leads present.

    Raises:
        ValueError: naming ``where``, for names that do not match the rows, two names mapping to one lead, no
            standard lead at all, or missing leads with ``missing_leads="raise"`` (the message lists them).
    """
    check_missing_leads(missing_leads)
    order = list(lead_order)
    if lead_names is None:
        if num_rows != len(order):
            raise ValueError(
                f"{where} has {num_rows} leads but no lead_names; pass lead_names= (one per row) or give "
                f"{len(order)} leads in the order {order}"
                + (" (the array may be transposed: expected (leads, samples))" if num_rows > 1000 else "")
            )
        return np.arange(len(order)), np.ones(len(order), dtype=bool)
    names = [str(n) for n in lead_names]
    if len(names) != num_rows:
        raise ValueError(f"lead_names has {len(names)} names but {where} has {num_rows} leads (rows)")
    position: dict[str, int] = {}
    for row, name in enumerate(names):
        standard = normalize_lead_name(name)
        if standard is None:
            continue  # extra lead (e.g. Frank vx, vy, vz): dropped
        if standard in position:
            raise ValueError(
                f"{where}: leads {names[position[standard]]!r} and {name!r} both map to {standard}; "
                "expected each standard lead at most once"
            )
        position[standard] = row
    rows = np.asarray([position.get(lead, -1) for lead in order], dtype=np.int64)
    present = rows >= 0
    if not present.any():
        raise ValueError(f"{where} has none of the leads {order} (its leads: {names})")
    if not present.all() and missing_leads == "raise":
        missing = [lead for lead, ok in zip(order, present) if not ok]
        raise ValueError(
            f"{where} lacks the leads {missing} (it has {names}); HuBERT-ECG expects {order}. "
            "Pass missing_leads='zero' to zero-fill them (a lead_mask is returned)"
        )
    return rows, present


def check_sampling_rate(rate, name: str) -> float:
    """``rate`` as a float number of Hz.

    Raises:
        ValueError: naming ``name`` when ``rate`` is not a finite positive number.
    """
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number of Hz, got {rate!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of Hz, got {rate!r}")
    return value


def lead_set(spec) -> tuple[str, ...]:
    """The leads of a lead set: a name of :data:`LEAD_SETS` (``"6"``, or the int 6) or a list of lead names in any
    spelling (``["I", "MLII"]``), as standard names in :data:`STANDARD_LEADS` order.

    Raises:
        ValueError: naming the entry, for an unknown lead-set name, a non-standard lead name, a repeated lead, or
            an empty list.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        spec = str(int(spec))
    if isinstance(spec, str):
        if spec.strip() in LEAD_SETS:
            return LEAD_SETS[spec.strip()]
        raise ValueError(f"unknown lead set {spec!r}; expected one of {list(LEAD_SETS)} or a list of lead names")
    names = list(spec)
    if not names:
        raise ValueError("a lead set needs at least one lead; got an empty list")
    leads = []
    for name in names:
        standard = normalize_lead_name(name)
        if standard is None:
            raise ValueError(f"lead set: {name!r} is not a standard lead; expected names among {list(STANDARD_LEADS)}")
        if standard in leads:
            raise ValueError(f"lead set: lead {standard} given twice ({names})")
        leads.append(standard)
    return tuple(lead for lead in STANDARD_LEADS if lead in leads)


def parse_lead_sets(spec: str) -> list[str]:
    """``"12,6,2"`` (the ``--lead_sets`` flag) -> ``["12", "6", "2"]``: names of :data:`LEAD_SETS`, in the given
    order.

    Raises:
        ValueError: naming the bad entry, for a name that is not in :data:`LEAD_SETS`, a repeated or empty entry.
    """
    names = [part.strip() for part in str(spec).split(",")]
    out: list[str] = []
    for name in names:
        if name not in LEAD_SETS:
            raise ValueError(
                f"--lead_sets: {name!r} is not a lead set; expected comma-separated names among {list(LEAD_SETS)}, "
                "e.g. 12,6,4,3,2,1"
            )
        if name in out:
            raise ValueError(f"--lead_sets: {name!r} given twice in {spec!r}")
        out.append(name)
    return out
