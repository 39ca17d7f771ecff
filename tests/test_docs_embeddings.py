"""docs/embeddings.md runs as written from the clone root: embed, probe and plot-embeddings on the example manifests
with the bundled demo model print what the page shows (about a minute: marked slow); the pipeline example gives the
vectors its comments describe."""

import re

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pyarrow")

from doc_pages import fenced_blocks, run_commands  # noqa: E402

PAGE = "embeddings.md"


@pytest.mark.slow
def test_embed_probe_and_plot_print_what_the_page_shows(docs_workdir, capsys):
    printed = run_commands(fenced_blocks(PAGE, "bash")[1], capsys)
    assert printed.rstrip() == fenced_blocks(PAGE, "")[0].rstrip()
    assert (docs_workdir / "train.png").read_bytes().startswith(b"\x89PNG")


def test_pipeline_example_gives_the_vectors_described(docs_workdir):
    (code,) = fenced_blocks(PAGE, "python")
    code = re.sub(r"^(embed(?:\.embed_details)?\(.*?\))(?=\s*#|$)", r"_results.append(\1)", code, flags=re.M)
    namespace = {"_results": []}
    exec(compile(code, "docs/embeddings.md", "exec"), namespace)
    one, several, details = namespace["_results"]
    assert isinstance(one, np.ndarray) and one.dtype == np.float32 and one.shape == (128,)
    assert len(several) == 3 and all(v.shape == (128,) for v in several)
    assert [set(d) >= {"name", "embedding", "windows", "frames", "flags", "error"} for d in details] == [True, True]
    np.testing.assert_allclose(details[0]["embedding"], one, atol=1e-5)
