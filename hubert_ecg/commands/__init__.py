"""One module per ``hubert-ecg`` command: its arguments and its ``main(argv) -> exit code`` (see hubert_ecg_cli.py)."""
