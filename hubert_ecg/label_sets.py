"""Named label sets of released HuBERT-ECG classifiers: the condition codes in output order, with descriptions.

```python
from hubert_ecg.label_sets import load_label_set
cardio = load_label_set("cardio-learning")
cardio.labels[:3]              # ('PAC|SVPB', 'AVCR', 'RAH')
cardio.descriptions["IRBBB"]   # 'incomplete right bundle branch block'
cardio.sources["IRBBB"]        # 'PTB-XL scp_statements.csv'
config.id2label, config.label_descriptions = cardio.id2label(), cardio.descriptions
```

``"cardio-learning"``: the 164 conditions of the authors' classifiers fine-tuned on Cardio-Learning
(``hubert_ecg_{size}_cardio_learning``). The codes and their order are the columns of the Cardio-Learning dataframe
after ``filename``, ``age`` and ``sex``, as the authors' repository gives them (Edoar-do/HuBERT-ECG @ 0ddc912,
``reproducibility/cardio-learning-labels.pkl``); output ``i`` of such a classifier is ``labels[i]``, assuming its head
follows that column order. Descriptions (``label_maps/cardio_learning.json``, written by
``examples/make_label_maps.py``): PTB-XL's ``scp_statements.csv`` (Wagner et al., Scientific Data 7, 154 (2020);
CC BY 4.0) for PTB-XL statements and diagnostic (sub)classes; the PhysioNet/CinC Challenge 2020/2021 SNOMED CT
tables (BSD 2-Clause) for the challenge abbreviations, with their SNOMED CT codes in the JSON; a standard clinical
meaning for the rest, marked "(inferred from the code)" where no source states it. ``sources`` says which, per code.

This module is the lowest layer: it imports only the standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["LABEL_SET_NAMES", "LabelSet", "load_label_set"]

#: name -> package data file (under hubert_ecg/label_maps/)
_FILES = {"cardio-learning": "cardio_learning.json"}
LABEL_SET_NAMES: tuple[str, ...] = tuple(_FILES)


@dataclass(frozen=True)
class LabelSet:
    """A classifier's labels in output order, with a readable description of each and where it came from.

    Attributes:
        name: the label set's name (one of :data:`LABEL_SET_NAMES`).
        labels: the codes in output order (``labels[i]`` is output ``i``).
        descriptions: code -> readable clinical description.
        sources: code -> where the description came from (a file of PTB-XL or of the PhysioNet/CinC Challenges,
            or ``"standard meaning"``).
    """

    name: str
    labels: tuple[str, ...]
    descriptions: dict[str, str]
    sources: dict[str, str]

    def id2label(self) -> dict[int, str]:
        """``{output index: code}``, for a config's ``id2label``."""
        return dict(enumerate(self.labels))


def load_label_set(name: str) -> LabelSet:
    """The label set ``name`` (one of :data:`LABEL_SET_NAMES`), read from the package data.

    Raises:
        ValueError: for an unknown ``name`` (the message names the argument and the known names).
    """
    if name not in _FILES:
        raise ValueError(f"load_label_set: unknown name {name!r}; known label sets: {', '.join(LABEL_SET_NAMES)}")
    text = resources.files(__package__).joinpath("label_maps", _FILES[name]).read_text(encoding="utf-8")
    entries = json.loads(text)["labels"]
    return LabelSet(
        name=name,
        labels=tuple(e["code"] for e in entries),
        descriptions={e["code"]: e["description"] for e in entries},
        sources={e["code"]: e["source"] for e in entries},
    )
