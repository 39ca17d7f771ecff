"""docs/demo-model.md: its command (examples/train_demo.sh, 38 min of training and evaluation, marked not run, as is
the cross-validation of the recipes) states the time the page, the model card and the README give."""

import re

from doc_pages import REPO_ROOT, page_blocks

PAGE = "demo-model.md"


def test_train_demo_script_states_the_measured_time():
    block, cross_validation = [b for b in page_blocks(PAGE) if b.kind == "bash"]
    assert block.text.startswith("examples/train_demo.sh") and block.not_run
    assert cross_validation.text.startswith("examples/demo_model/cross_validate.sh") and cross_validation.not_run
    page = (REPO_ROOT / "docs" / PAGE).read_text(encoding="utf-8")
    script = (REPO_ROOT / "examples" / "train_demo.sh").read_text(encoding="utf-8")
    card = (REPO_ROOT / "hubert_ecg" / "demo" / "model" / "README.md").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    training = re.search(r"(\d+) min wall on 2 CPU cores", page).group(1)
    whole = re.search(r"the whole script about (\d+) min", page).group(1)
    header = "\n".join(line for line in script.splitlines() if line.startswith("#"))
    assert f"{training} min wall on 2 CPU cores" in header and f"whole script about {whole} min" in " ".join(
        header.replace("#", " ").split())
    assert f"Training: {training} min wall on 2 CPU cores" in card
    assert f"`examples/train_demo.sh` in {training} min on 2 CPU cores" in " ".join(readme.split())
