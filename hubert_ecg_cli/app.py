"""``hubert-ecg app [--model M] [--host 127.0.0.1] [--port 7860] [--max_file_size 100mb]``: serve the local web app
(:func:`hubert_ecg.app.build_app`) until interrupted. Needs the ``[app]`` extra (gradio, matplotlib).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .arguments import ModelArguments, parse, same_as

PROG = "hubert-ecg app"
DESCRIPTION = (
    "A local web app: upload ECG files, see the ranked labels with scores, the 12-lead plot and the attributions of "
    "a label. Without --model: the bundled demo model (a demonstration, not a clinical tool). Exit status: 0 when "
    "the server stops, 2 for usage errors (a model that cannot be loaded)."
)
#: the largest upload per file by default (:data:`hubert_ecg.app.MAX_FILE_SIZE`; tests/test_app.py checks it)
MAX_FILE_SIZE = "100mb"

__all__ = ["AppArguments", "main"]


@dataclass
class AppArguments:
    """Which model the app serves, and where."""

    model: str | None = same_as(ModelArguments, "model")
    host: str = field(default="127.0.0.1", metadata={
        "help": "address to bind (default 127.0.0.1: this machine only)"})
    port: int = field(default=7860, metadata={"help": "port"})
    max_file_size: str = field(default=MAX_FILE_SIZE, metadata={"help": "largest upload per file, e.g. 20mb, 1gb"})

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be between 1 and 65535, got {self.port}")


def main(argv: list[str] | None = None) -> int:
    """``hubert-ecg app``: serve the app until interrupted. Returns 2 (one line on stderr) for a model that cannot
    be loaded."""
    (args,) = parse(argv, (AppArguments,), PROG, DESCRIPTION)
    from hubert_ecg.app import _pipeline, build_app

    try:
        _pipeline(args.model)  # fail here, not in the page, for a model that cannot be loaded
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    app = build_app(args.model)
    # gradio's own start-up lines (and its hint to make the app public) are left out: one line says where it is
    app.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size, share=False,
               quiet=True, prevent_thread_lock=True)
    print(f"{PROG}: serving on {app.local_url} (Ctrl+C stops it); a demonstration, not a clinical tool")
    app.block_thread()
    return 0
