"""docs/preprocessing.md runs as written from the clone root: the feature extractor on a real record gives the
inputs its comment describes."""

import torch

from doc_pages import fenced_blocks

PAGE = "preprocessing.md"


def test_extractor_example_gives_the_inputs_described(docs_workdir):
    (code,) = fenced_blocks(PAGE, "python")
    assert "# -> input_values (2, 6000) float32, attention_mask (2, 6000)" in code
    namespace = {}
    exec(compile(code, "docs/preprocessing.md", "exec"), namespace)
    inputs = namespace["inputs"]
    assert tuple(inputs["input_values"].shape) == (2, 6000) and inputs["input_values"].dtype == torch.float32
    assert tuple(inputs["attention_mask"].shape) == (2, 6000)
