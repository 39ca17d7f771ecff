"""The README's quick tour runs as written on the records in ../shared (its one download, the released small model,
is replaced by the same architecture with random weights: tests never touch the network)."""

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_LINE = 'AutoModel.from_pretrained("Edoardo-BS/hubert-ecg-small")'


def test_quick_tour_runs_and_says_what_it_gets(data_dir, monkeypatch):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme.split("## Quick tour", 1)[1], re.S).group(1)
    assert HUB_LINE in code
    code = code.replace(HUB_LINE, 'AutoModel.from_config(hubert_ecg.HuBERTECGConfig.from_preset("small"))')
    monkeypatch.chdir(REPO_ROOT)  # the tour's paths are relative to a clone beside ../shared
    namespace = {}
    exec(compile(code.replace("../shared", str(data_dir.parent)), "README.md quick tour", "exec"), namespace)

    record, clf, model, inputs = (namespace[name] for name in ("record", "clf", "model", "inputs"))
    assert record.signal.shape == (12, 5000) and record.sampling_rate == 500.0  # as the comments say
    top = clf(record)[0]
    assert top["label"] == "NORM" and round(top["score"], 2) == 0.98 and top["positive"] is True
    assert tuple(model(**inputs).last_hidden_state.shape) == (1, 93, 512)
