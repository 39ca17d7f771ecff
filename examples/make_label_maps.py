"""Writes ``hubert_ecg/label_maps/cardio_learning.json``: the 164 Cardio-Learning condition codes in output order,
each with a readable description and where that description came from.

    python examples/make_label_maps.py [--shared ../shared/data] [--output hubert_ecg/label_maps/cardio_learning.json]

Inputs (all under ``../shared/data``, see its README):

* ``label_maps/cardio_learning_labels.json``: the codes in column order, read from the authors' repository
  (Edoar-do/HuBERT-ECG, ``reproducibility/cardio-learning-labels.pkl``; its ``source`` field says how);
* ``ptbxl/scp_statements.csv``: PTB-XL's SCP-ECG statements (column ``description``) and its diagnostic classes and
  subclasses (PTB-XL, Wagner et al., Scientific Data 7, 154 (2020); CC BY 4.0);
* ``label_maps/dx_mapping_scored.csv`` and ``dx_mapping_unscored.csv``: the SNOMED CT tables of the
  PhysioNet/CinC Challenges 2020/2021 (columns ``Dx``, ``SNOMEDCTCode``, ``Abbreviation``; BSD 2-Clause, see
  ``LICENSE_evaluation-2021_repo.txt``).

Each code is described by the first rule that applies:

1. a PTB-XL statement of that name: its ``description``, verbatim (source ``PTB-XL scp_statements.csv``);
2. a PTB-XL diagnostic superclass or subclass of that name: a description written here, naming its member
   statements (source ``PTB-XL scp_statements.csv (diagnostic class|subclass)``);
3. a challenge abbreviation of that name (compared case-insensitively: the codes are upper-cased abbreviations,
   ``OldMI`` -> ``OLDMI``), or of its alias in :data:`ALIASES`: the ``Dx`` text, made readable by
   :data:`READABLE` / :func:`_readable` (the text as given is kept in ``challenge_dx``);
4. otherwise a standard clinical meaning written here (:data:`STANDARD`); those inferred from the code alone say so
   in their ``source``.

A code ``A|B`` names alternatives merged into one column (e.g. ``CRBBB|RBBB``): each part is described by these
rules, joined by " or ". Every code matched in the challenge tables (directly or through an alias) carries its
SNOMED CT code(s) in ``snomed_ct``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HUBERT_ECG_SHARED", REPO.parent / "shared")) / "data"
OUTPUT = REPO / "hubert_ecg" / "label_maps" / "cardio_learning.json"

#: code of this label set -> the challenge tables' abbreviation of the same condition. The Cardio-Learning codes
#: merge datasets that name a condition differently; these pairs are the synonyms a public CinC 2020 scoring
#: script for this very label set maps (CCR -> -ROT, CR -> +ROT, MoI -> 2AVB1, IIAVBII -> 2AVB2, CMI -> CMIS, IAVB ->
#: 1AVB, IIAVB -> 2AVB, CHB -> 3AVB, LAnFB -> LAFB, SB -> SBRAD, SA -> SARRH, LQT -> LNGQT, STE -> STE_,
#: STD -> STD_), and each pair names the same finding in both vocabularies.
ALIASES = {
    "-ROT": "CCR", "+ROT": "CR", "2AVB1": "MoI", "2AVB2": "IIAVBII", "CMIS": "CMI", "1AVB": "IAVB",
    "2AVB": "IIAVB", "3AVB": "CHB", "LAFB": "LAnFB", "SBRAD": "SB", "SARRH": "SA", "LNGQT": "LQT", "STE_": "STE",
    "STD_": "STD",
}

#: PTB-XL diagnostic classes and subclasses that are codes of this label set (rule 2): their meaning as PTB-XL
#: defines it (Wagner et al. 2020, Table 2), members read from scp_statements.csv at run time.
PTBXL_GROUPS = {
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
    "LAFB/LPFB": "left anterior or left posterior fascicular block",
    "ISCA": "ischemic ST-T changes in anterior leads",
    "ISCI": "ischemic ST-T changes in inferior leads",
}

#: codes whose PTB-XL meaning differs from the challenge abbreviation of the same name: no SNOMED CT code is
#: attached to them (the note says what the challenge code means)
CONFLICTS = ("AMI", "CD")

#: notes where two sources give one code different meanings
NOTES = {
    "AMI": "PTB-XL's AMI is anterior myocardial infarction; in the PhysioNet/CinC tables AMI is acute myocardial "
           "infarction (SNOMED CT 57054005). Cardio-Learning pools both sources under this one code.",
    "CD": "PTB-XL's diagnostic superclass CD (conduction disturbance) is meant here, as NORM, MI, STTC and HYP, the "
          "other four superclasses, are codes of this set too; in the PhysioNet/CinC tables CD is cardiac "
          "dysrhythmia (SNOMED CT 698247007).",
    "MI": "also the PhysioNet/CinC abbreviation of myocardial infarction (SNOMED CT 164865005).",
    "SAMITROP-DEATH": "an outcome of the cohort, not an ECG finding.",
}

#: readable forms of challenge Dx texts (the text itself is kept in challenge_dx)
READABLE = {
    "s t changes": "ST changes",
    "qwave abnormal": "abnormal Q wave",
    "fqrs wave": "fragmented QRS (fQRS)",
    "brugada": "Brugada pattern",
    "countercolockwise rotation": "counterclockwise rotation (of the heart's electrical axis, horizontal plane)",
    "clockwise rotation": "clockwise rotation (of the heart's electrical axis, horizontal plane)",
    "wolff parkinson white pattern": "Wolff-Parkinson-White pattern",
    "mobitz type i wenckebach atrioventricular block":
        "Mobitz type I (Wenckebach) second-degree atrioventricular block",
    "mobitz type II atrioventricular block": "Mobitz type II second-degree atrioventricular block",
    "t wave abnormal": "abnormal T wave",
    "u wave abnormal": "abnormal U wave",
    "r wave abnormal": "abnormal R wave",
    "st interval abnormal": "abnormal ST interval",
    "decreased qt interval": "short QT interval",
    "suspect arm ecg leads reversed": "suspected reversal of the arm leads",
    "poor R wave Progression": "poor R wave progression",
}
_ACRONYMS = {"qrs": "QRS", "qt": "QT", "pr": "PR", "st": "ST", "av": "AV", "ecg": "ECG", "t": "T", "p": "P",
             "r": "R", "u": "U", "ii": "II"}

#: rule 4: standard meanings written here. "inferred" marks a meaning read from the code alone (no source
#: states it); the others are unambiguous.
STANDARD = {
    "AVBHG": ("high-grade (advanced) atrioventricular block", "inferred"),
    "AVCR": ("atrioventricular conduction ratio statement (e.g. 2:1 or 4:1 AV conduction)", "inferred"),
    "AVBVC": ("atrioventricular block with variable conduction", "inferred"),
    "STTVH": ("ST-T changes secondary to ventricular hypertrophy (strain pattern)", "inferred"),
    "JEC": ("junctional escape complex (beat)", "inferred"),
    "TUF": ("T-U wave fusion", "inferred"),
    "EAMI": ("extensive anterior myocardial infarction", "inferred"),
    "PAC_NC": ("premature atrial complex, not conducted", "inferred"),
    "SAMITROP-DEATH": ("death during follow-up in the SaMi-Trop cohort (patients with Chagas disease)", ""),
    "VPC": ("ventricular premature complex", ""),
}


def _readable(text: str) -> str:
    """A challenge Dx text with single spaces and the usual capitals (QRS, QT, PR, ST, AV, T/P/R/U wave)."""
    text = " ".join(text.split())
    if text in READABLE:
        return READABLE[text]
    return " ".join(_ACRONYMS.get(word, word) for word in text.split(" "))


def _read_inputs(shared: Path):
    codes = json.loads((shared / "label_maps" / "cardio_learning_labels.json").read_text())
    statements, classes, subclasses = {}, {}, {}
    with open(shared / "ptbxl" / "scp_statements.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            statements[row[""]] = row["description"]
            if row["diagnostic_class"]:
                classes.setdefault(row["diagnostic_class"], []).append(row[""])
            if row["diagnostic_subclass"]:
                subclasses.setdefault(row["diagnostic_subclass"], []).append(row[""])
    snomed = {}
    for table in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        with open(shared / "label_maps" / table, newline="") as handle:
            for row in csv.DictReader(handle):
                snomed.setdefault(row["Abbreviation"].upper(), []).append(
                    {"abbreviation": row["Abbreviation"], "dx": row["Dx"], "snomed_ct": row["SNOMEDCTCode"],
                     "table": table})
    return codes, statements, classes, subclasses, snomed


def describe(code: str, statements, classes, subclasses, snomed) -> dict:
    """One code (no ``|``) -> ``description``, ``source`` and, where matched, ``snomed_ct`` / ``challenge_dx``."""
    out: dict = {}
    matches = snomed.get(code.upper()) or snomed.get(ALIASES.get(code, "").upper()) or []
    if code in CONFLICTS:
        matches = []
    if matches:
        out["snomed_ct"] = [m["snomed_ct"] for m in matches]
        out["challenge_dx"] = [m["dx"] for m in matches]
    if code in statements:
        out.update(description=statements[code], source="PTB-XL scp_statements.csv")
    elif code in classes or code in subclasses:
        kind, members = ("class", classes[code]) if code in classes else ("subclass", subclasses[code])
        out.update(description=f"{PTBXL_GROUPS[code]} (PTB-XL diagnostic {kind}: {', '.join(members)})",
                   source=f"PTB-XL scp_statements.csv (diagnostic {kind})")
    elif matches:
        via = f" via its synonym {ALIASES[code]}" if code.upper() != matches[0]["abbreviation"].upper() else ""
        out.update(description=_readable(matches[0]["dx"]),
                   source=f"PhysioNet/CinC 2020/2021 {matches[0]['table']}{via}")
    elif code in STANDARD:
        text, how = STANDARD[code]
        out.update(description=text, source="standard meaning" + (" (inferred from the code)" if how else ""))
    else:
        raise ValueError(f"no description for {code!r}: add it to STANDARD")
    return out


def build(shared: Path) -> dict:
    """The JSON document (see the module docstring)."""
    codes, statements, classes, subclasses, snomed = _read_inputs(shared)
    labels = []
    for code in codes["labels"]:
        parts = code.split("|")
        described = [describe(p, statements, classes, subclasses, snomed) for p in parts]
        entry = {"code": code}
        if len(parts) == 1:
            entry.update(described[0])
        else:
            entry["description"] = " or ".join(f"{d['description']} ({p})" for p, d in zip(parts, described))
            entry["source"] = "; ".join(f"{p}: {d['source']}" for p, d in zip(parts, described))
            codes_ = list(dict.fromkeys(c for d in described for c in d.get("snomed_ct", [])))
            if codes_:
                entry["snomed_ct"] = codes_
                entry["challenge_dx"] = list(dict.fromkeys(t for d in described for t in d.get("challenge_dx", [])))
        if code in NOTES:
            entry["note"] = NOTES[code]
        labels.append(entry)
    return {
        "name": "cardio-learning",
        "provenance": {
            "codes": codes["source"] + " " + codes.get("note", ""),
            "descriptions": [
                "PTB-XL scp_statements.csv, column description (PTB-XL 1.0.3; Wagner, P. et al. PTB-XL, a large "
                "publicly available electrocardiography dataset. Scientific Data 7, 154 (2020)); licence CC BY 4.0",
                "PTB-XL diagnostic classes and subclasses of scp_statements.csv, described here by their members",
                "PhysioNet/CinC Challenge 2020/2021 SNOMED CT mappings dx_mapping_scored.csv and "
                "dx_mapping_unscored.csv (physionetchallenges/evaluation-2021; Reyna, M. et al., CinC 2021); "
                "licence BSD 2-Clause; SNOMED CT codes in snomed_ct, the table's Dx text in challenge_dx",
                "standard meaning: written for this package; '(inferred from the code)' marks a meaning read "
                "from the code alone, which no source states",
            ],
            "generated_by": "examples/make_label_maps.py",
        },
        "labels": labels,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default ../shared/data)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    document = build(args.shared)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    sources = {}
    for entry in document["labels"]:
        key = "alternatives (A|B)" if "|" in entry["code"] else re.sub(r" via .*| \(diagnostic .*", "", entry["source"])
        sources[key] = sources.get(key, 0) + 1
    print(f"wrote {args.output}: {len(document['labels'])} labels; sources: {sources}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
