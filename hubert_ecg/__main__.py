"""``python -m hubert_ecg COMMAND ...``: the same as the ``hubert-ecg`` console command."""

import sys

from hubert_ecg_cli import main

sys.exit(main())
