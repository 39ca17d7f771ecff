"""docs/visualisation.md runs as written from the clone root: its plot and explain commands and Python examples on
the shared records (the files they write, the shapes its comments give), the ``gradio_client`` example against the
app launched here (the table its comments show), and the commands that draw the page's pictures (into the test's
folder)."""

import contextlib
import socket

import pytest

pytest.importorskip("matplotlib")

from doc_pages import check_shown_values, fenced_blocks, run_commands  # noqa: E402

PAGE = "visualisation.md"


def _magic(path, start: bytes) -> bool:
    return path.read_bytes().startswith(start)


def test_plot_commands(docs_workdir, capsys):
    run_commands(fenced_blocks(PAGE, "bash")[0], capsys)
    assert _magic(docs_workdir / "ecg.png", b"\x89PNG") and _magic(docs_workdir / "ecg.pdf", b"%PDF")


def test_plot_python_example(docs_workdir):
    exec(compile(fenced_blocks(PAGE, "python")[0], "docs/visualisation.md", "exec"), {})
    assert b"<svg" in (docs_workdir / "ecg.svg").read_bytes()[:1000]


@pytest.mark.slow
def test_explain_commands(docs_workdir, capsys):
    pytest.importorskip("captum")
    printed = run_commands(fenced_blocks(PAGE, "bash")[1], capsys)
    assert printed.rstrip() == fenced_blocks(PAGE, "")[0].rstrip()
    assert _magic(docs_workdir / "mi.png", b"\x89PNG") and _magic(docs_workdir / "occlusion.pdf", b"%PDF")
    assert (docs_workdir / "occlusion.npz").is_file()


@pytest.mark.slow
def test_explain_python_example(docs_workdir):
    pytest.importorskip("captum")
    namespace = {}
    exec(compile(fenced_blocks(PAGE, "python")[1], "docs/visualisation.md", "exec"), namespace)
    exp = namespace["exp"]  # what its comments say
    assert exp.values.shape == (12, 1000) and str(exp.values.dtype) == "float32"
    assert exp.window_values.shape == (2, 12, 500) and list(exp.window_starts) == [0.0, 5.0]
    assert exp.delta.shape == (2,) and exp.lead_importance.shape == (12,)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_gradio_client_example_gets_the_table_shown(docs_workdir):
    """The example as written but for the app's port: the app is launched here on a free one (7860 may be taken)."""
    pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")
    from hubert_ecg.app import build_app

    code = fenced_blocks(PAGE, "python")[2]
    assert "http://127.0.0.1:7860/" in code
    app = build_app()
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        namespace = {}
        code = code.replace("http://127.0.0.1:7860/", f"http://127.0.0.1:{port}/")
        exec(compile(code, "docs/visualisation.md", "exec"), namespace)
        assert check_shown_values(code, namespace) == 2  # the headers and the first two rows, as shown
        assert namespace["messages"].startswith("Scored 1 of 1 record(s)")
    finally:
        app.close()


def test_the_pictures_commands(docs_workdir, capsys):
    """The commands that draw docs/images/ecg.png and explain_mi.png (written into the test's docs/images)."""
    pytest.importorskip("captum")
    import matplotlib.image
    import numpy as np

    from doc_pages import DOCS

    run_commands(fenced_blocks(PAGE, "bash")[3], capsys)
    for name in ("ecg.png", "explain_mi.png"):  # the pictures in docs/images are these commands' output
        drawn, shown = (matplotlib.image.imread(folder / name) for folder in (docs_workdir / "docs" / "images",
                                                                              DOCS / "images"))
        assert drawn.shape == shown.shape and np.array_equal(drawn, shown), name
