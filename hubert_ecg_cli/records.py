"""The one bad-record rule of the ``hubert-ecg`` commands, and their exit statuses.

A command never stops at a record it cannot use (unreadable, too short, a lead it needs missing, a ``--start``
past its end): it goes on with the others, lists every such record on stderr with the reason, one line each, and
exits 1. Exit 2 is a usage error: bad arguments, a model that cannot be loaded, a missing extra, an unreadable
manifest, an output name with the wrong suffix: things that are wrong whatever the records hold.

```python
bad = BadRecords("hubert-ecg measure", noun="file")
for name in names:
    try:
        ...
    except RECORD_ERRORS as err:
        bad.add(name, err)
return bad.report(total=len(names), verb="measured")      # 0, or 1 after the listing
```
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

__all__ = [
    "EXIT_BAD_RECORDS",
    "EXIT_OK",
    "EXIT_USAGE",
    "RECORD_ERRORS",
    "BadRecords",
    "record_error",
    "run_command",
    "usage_error",
]

EXIT_OK, EXIT_BAD_RECORDS, EXIT_USAGE = 0, 1, 2
#: what reading, checking and windowing a record raise when the record cannot be used: the readers raise
#: ``ValueError`` for what a file holds and ``OSError`` for the file itself. Nothing else is caught: another
#: exception is a bug and shows its traceback.
RECORD_ERRORS = (ValueError, OSError)


def _naming(name: str, error) -> str:
    """The reason, with the record's name once (messages of the readers often name the file already)."""
    message = str(error)
    return message if str(name) in message else f"{name}: {message}"


class BadRecords:
    """The records a command could not use, listed the one way (see the module docstring).

    Args:
        prog: the command, e.g. ``"hubert-ecg predict"``; starts every line.
        noun: what the command calls its inputs in the listing (``"input"``, ``"record"``, ``"file"``).
    """

    def __init__(self, prog: str, noun: str = "input"):
        self.prog, self.noun = prog, noun
        #: ``(name, reason)`` pairs in the order noted, each once (a dict keeps the order and finds one in O(1))
        self._items: dict[tuple[str, str], None] = {}

    def add(self, name, error) -> None:
        """Note one record that could not be used: ``error`` an exception or a reason (str)."""
        self._items[(str(name), str(error))] = None

    def extend(self, items) -> None:
        """Note several ``(name, reason)`` pairs (e.g. ``NoUsableRecords.skipped``)."""
        for name, reason in items:
            self.add(name, reason)

    def __len__(self) -> int:
        return len(self._items)

    def report(self, total: int | None = None, verb: str = "scored", stream=None) -> int:
        """Print the listing on ``stream`` (stderr) and return the exit status: 0 when nothing was noted, else 1.

        ``total``: how many inputs there were (the listing says "K of N"; when all K failed it adds "no <noun>
        could be <verb>"); None: "K <noun>(s)"."""
        if not self._items:
            return EXIT_OK
        stream = stream or sys.stderr
        k = len(self._items)
        of = f"{k} of {total}" if total is not None else f"{k}"
        print(f"{self.prog}: skipped {of} {self.noun}(s):", file=stream)
        for name, reason in self._items:
            print(f"  {name}: {reason}", file=stream)
        if total is not None and k >= total:
            print(f"{self.prog}: no {self.noun} could be {verb}", file=stream)
        return EXIT_BAD_RECORDS


def record_error(prog: str, name, error, stream=None) -> int:
    """A one-record command's bad record: one line ``prog: name: reason`` on stderr; returns 1."""
    print(f"{prog}: {_naming(name, error)}", file=stream or sys.stderr)
    return EXIT_BAD_RECORDS


def usage_error(prog: str, error, stream=None) -> int:
    """A usage error: one line ``prog: error: message`` on stderr; returns 2."""
    print(f"{prog}: error: {error}", file=stream or sys.stderr)
    return EXIT_USAGE


def run_command(argv: Sequence[str] | None, arguments_class: type, prog: str, run: Callable,
                description: str | None = None) -> int:
    """The ``main`` of a one-dataclass command (``hubert-ecg cluster``, ``pretrain``, ``windows``, ...).

    Parses ``argv`` (default: ``sys.argv[1:]``) into ``arguments_class`` with :func:`hubert_ecg_cli.arguments.parse`
    (a usage error exits 2 there, before the package is imported) and calls ``run(arguments)``.

    Returns:
        The exit code: the one ``run`` returns when it returns an int (e.g. 1: some records were skipped), else 0;
        1 when ``run`` raised :class:`hubert_ecg.io.NoUsableRecords` (the records listed on stderr); 2 when ``run``
        raised another ``ValueError`` (bad arguments or data), whose message is printed as ``"{prog}: error: ..."``.
    """
    from .arguments import parse

    (args,) = parse(argv, (arguments_class,), prog, description)
    return run_reporting(prog, lambda: run(args))


def run_reporting(prog: str, call: Callable[[], object]) -> int:
    """``call()`` under the one bad-record rule: its exit code when it returns an int, else 0; 1 when it raised
    :class:`hubert_ecg.io.NoUsableRecords` (the records listed on stderr); 2 when it raised another ``ValueError``
    (bad arguments or data), printed as ``"{prog}: error: ..."``."""
    from hubert_ecg.io import NoUsableRecords

    try:
        code = call()
    except NoUsableRecords as error:  # the one bad-record rule: listed, exit 1
        bad = BadRecords(prog, noun="record")
        bad.extend(error.skipped)
        return bad.report(error.total)
    except ValueError as error:
        return usage_error(prog, error)
    return code if isinstance(code, int) else 0
