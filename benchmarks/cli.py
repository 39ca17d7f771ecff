"""Start-up time of the ``hubert-ecg`` command against ``import torch``, side by side in one run.

    python benchmarks/cli.py [--repeats 5]

Each row is the median wall time of ``--repeats`` fresh processes (this machine's Python, the installed package).
The router (``hubert_ecg_cli``) lists the commands without importing anything heavy; a command parses its arguments
(transformers' ``HfArgumentParser``, which imports transformers but not torch) before it imports the package, so
its ``--help`` and a usage error need neither torch nor the package. ``finetune`` and ``pretrain`` include
transformers' ``TrainingArguments`` (torch) in their help; their own fields are checked before torch is imported.
"""

import argparse
import statistics
import subprocess
import sys
import time

CASES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
    ("python -c 'import hubert_ecg'", [sys.executable, "-c", "import hubert_ecg"]),
    ("hubert-ecg --help", [sys.executable, "-m", "hubert_ecg_cli", "--help"]),
    ("hubert-ecg predict --help", [sys.executable, "-m", "hubert_ecg_cli", "predict", "--help"]),
    ("hubert-ecg finetune --help", [sys.executable, "-m", "hubert_ecg_cli", "finetune", "--help"]),
    ("hubert-ecg pretrain --help", [sys.executable, "-m", "hubert_ecg_cli", "pretrain", "--help"]),
    ("hubert-ecg predict --bogus (usage)", [sys.executable, "-m", "hubert_ecg_cli", "predict", "x", "--bogus"]),
    ("hubert-ecg finetune --bogus (usage)", [sys.executable, "-m", "hubert_ecg_cli", "finetune", "--bogus"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="processes per row (default 5)")
    args = parser.parse_args()
    rows = []
    for name, command in CASES:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        rows.append((name, statistics.median(times)))
    torch_time = rows[1][1]
    print(f"{'command':<38} {'median s':>9} {'vs import torch':>16}")
    for name, seconds in rows:
        print(f"{name:<38} {seconds:>9.3f} {seconds / torch_time:>15.2f}x")


if __name__ == "__main__":
    main()
