"""``python -m hubert_ecg_cli COMMAND ...`` (e.g. under ``accelerate launch -m``): the ``hubert-ecg`` command."""

import sys

from hubert_ecg_cli import main

sys.exit(main())
