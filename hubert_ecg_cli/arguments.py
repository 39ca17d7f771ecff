"""The one command-line dialect of every ``hubert-ecg`` command, and the argument groups they share.

Every command declares its arguments as dataclass fields and parses them with :func:`parse`, on
``transformers.HfArgumentParser``:

* ``--field_name`` and ``--field-name`` are the same option, in every command;
* an optional leading YAML or JSON file of ``field: value`` pairs, then ``--field value`` flags that override it;
* a field with ``metadata={"positional": True}`` is a positional argument (``nargs`` and ``metavar`` from its
  metadata), e.g. the ``INPUT...`` of ``predict``;
* a field's ``metadata={"deprecated": ["--old"]}`` keeps an old spelling working for one release: it is read as the
  new one, with one line on stderr saying so;
* a field's ``__post_init__`` check (a ``ValueError``) is a usage error like an unknown option: the usage, one line
  ``PROG: error: ...`` on stderr, exit status 2.

Parsing imports neither torch nor the ``hubert_ecg`` package (whose import registers the model with transformers,
seconds on a small machine): a usage error is answered in about a second (most of it importing transformers). A command whose arguments include
transformers' ``TrainingArguments`` (which import torch) passes them as ``late_types``: its own fields are checked
first, before torch is imported.

The shared groups (:class:`ModelArguments`, :class:`BatchingArguments`, :class:`RecordArguments`,
:class:`WindowingArguments`) give one concept one name everywhere: ``--model``, ``--device``, ``--dtype``,
``--batch_size``, ``--sampling_rate``, ``--lead_names``, ``--missing_leads``, ``--stride_seconds``; one output
file is ``--output``, an output folder ``--output_dir``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transformers import HfArgumentParser

__all__ = [
    "BACKENDS",
    "DEFAULT_MISSING_LEADS",
    "DTYPES",
    "MISSING_LEADS",
    "BatchingArguments",
    "ECGArgumentParser",
    "HelpFormatter",
    "ModelArguments",
    "RecordArguments",
    "WindowingArguments",
    "build_parser",
    "config_values",
    "deprecated_spellings",
    "parse",
    "parse_tta_windows",
    "same_as",
]

#: ``--dtype`` values: ``auto`` is the fastest measured on this machine (:mod:`hubert_ecg.inference`)
DTYPES = ("auto", "float32", "bfloat16")
#: ``--backend`` values (:mod:`hubert_ecg.onnx_backend`); tests/test_cli.py checks they match the package's
BACKENDS = ("torch", "onnxruntime", "openvino")
#: ``--missing_leads`` values and default (:data:`hubert_ecg.leads.MISSING_LEADS`); tests/test_cli.py checks they match
MISSING_LEADS = ("zero", "raise")
DEFAULT_MISSING_LEADS = "zero"
#: the release after which the deprecated spellings stop working
DEPRECATED_UNTIL = "0.3"
#: more options than this: the usage line names none of them (``--help`` lists them all)
LONG_USAGE = 60


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` states each default once: argparse's ``(default: X)`` is added only where the field's own help
    does not already say what its default is (e.g. ``"(default: the bundled demo model)"`` for a ``None``), and
    not for positional arguments and switches."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        if "default" in help_.lower() or not action.option_strings or action.default in (None, False, []):
            return help_
        return super()._get_help_string(action)


class ECGArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` with positional fields (``metadata={"positional": True, "nargs": "+"}``) and deprecated
    spellings (``metadata={"deprecated": ["--old"]}``, read by :func:`parse`)."""

    @staticmethod
    def _parse_dataclass_field(parser, field_: dataclasses.Field):
        metadata = dict(field_.metadata)
        metadata.pop("deprecated", None)
        if metadata.pop("positional", False):
            kwargs = {"help": metadata.get("help"), "metavar": metadata.get("metavar")}
            if "nargs" in metadata:
                kwargs["nargs"] = metadata["nargs"]
            elif field_.default is not dataclasses.MISSING:
                kwargs["nargs"] = "?"
                kwargs["default"] = field_.default
            parser.add_argument(field_.name, **kwargs)
            return
        plain = copy.copy(field_)
        plain.metadata = types.MappingProxyType(metadata)
        HfArgumentParser._parse_dataclass_field(parser, plain)


def deprecated_spellings(dataclass_types: Sequence[type]) -> dict[str, str]:
    """``{old option: new option}`` from the fields' ``metadata["deprecated"]``."""
    renamed = {}
    for dtype in dataclass_types:
        for field_ in dataclasses.fields(dtype):
            for old in field_.metadata.get("deprecated", ()):
                renamed[old] = f"--{field_.name}"
    return renamed


def build_parser(dataclass_types: Sequence[type], prog: str, description: str | None = None) -> ECGArgumentParser:
    """The parser of a command: :class:`ECGArgumentParser` with :class:`HelpFormatter`, abbreviations off, a help of
    its own for every ``--no_FIELD`` complement of a boolean field that defaults to True, and a one-line usage for a
    command with more than :data:`LONG_USAGE` options."""
    parser = ECGArgumentParser(list(dataclass_types), prog=prog, description=description,
                               formatter_class=HelpFormatter, allow_abbrev=False)
    if len(parser._actions) > LONG_USAGE:  # transformers' TrainingArguments: a usage of 150 lines before an error
        _short_usage(parser)
    for action in parser._actions:
        negative = [s for s in action.option_strings if s.startswith("--no_")]
        if negative and action.const is False:
            action.help = f"turn off --{negative[0][len('--no_'):]}"
            action.default = argparse.SUPPRESS
    return parser


def _short_usage(parser: ECGArgumentParser) -> None:
    parser.usage = (f"{parser.prog} [CONFIG.yaml|CONFIG.json] [--field value ...]  (`{parser.prog} --help` lists the "
                    "fields)")


def config_values(path: str | Path, known: set[str] | None = None, renamed: dict[str, str] | None = None,
                  prog: str | None = None, noted: Sequence[str] = ()) -> dict:
    """The ``field: value`` pairs of a YAML or JSON configuration file.

    ``renamed``: ``{old option: new option}`` (:func:`deprecated_spellings`): a key spelled the old way (e.g.
    ``model_name_or_path:``) is read as the new field, with one line on stderr saying so (``prog`` starts it),
    unless its old option is in ``noted`` (said already).

    Raises:
        ValueError: for a missing or unreadable file, a file that is not a mapping, or fields not in ``known``
            (None: not checked).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"configuration file not found: {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as err:
        raise ValueError(f"cannot read the configuration file {str(path)!r}: {type(err).__name__}: {err}") from None
    values = values or {}
    if not isinstance(values, dict):
        raise ValueError(f"configuration file {str(path)!r} must hold a mapping of argument names to values")
    for old, new in (renamed or {}).items():
        key, new_key = old.lstrip("-").replace("-", "_"), new.lstrip("-")
        if key in values and key != new_key:
            if old not in noted:
                print(f"{prog or 'hubert-ecg'}: {key} in {path.name} is deprecated and goes in {DEPRECATED_UNTIL}: "
                      f"use {new_key}", file=sys.stderr)
            values.setdefault(new_key, values.pop(key))
    unknown = sorted(set(values) - known) if known is not None else []
    if unknown:
        raise ValueError(f"configuration file {str(path)!r} has unknown fields {unknown}")
    # nested mappings (e.g. `config_overrides: {hidden_size: 128}`) are JSON strings on the command line
    return {key: json.dumps(value) if isinstance(value, dict) else value for key, value in values.items()}


def _renamed(argv: list[str], renamed: dict[str, str], prog: str) -> list[str]:
    out = []
    for token in argv:
        option, eq, value = token.partition("=")
        if option in renamed:
            print(f"{prog}: {option} is deprecated and goes in {DEPRECATED_UNTIL}: use {renamed[option]}",
                  file=sys.stderr)
            token = renamed[option] + eq + value
        out.append(token)
    return out


def _parse_with(parser: ECGArgumentParser, argv: list[str], values: dict, known_only: bool) -> tuple:
    """The dataclass instances of ``argv`` over ``values`` (a configuration file's); a usage error exits 2. With
    ``known_only``, options the parser does not know are left for a later parser."""
    from transformers.utils import logging as hf_logging

    # commands keep stderr for their notes, warnings and listings: no "Loading weights" bars of transformers (the
    # Trainer's own progress bar is tqdm's, and --disable_tqdm governs it)
    hf_logging.disable_progress_bar()
    if values:
        parser.set_defaults(**values)
        for action in parser._actions:  # a field given in the file is no longer required on the command line
            if action.dest in values:
                action.required = False
                if not action.option_strings:
                    action.nargs = "*" if action.nargs in ("+", "*") else "?"
    try:
        *outputs, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as err:  # a field's own check (__post_init__)
        parser.error(str(err))
    if remaining and not known_only:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    return tuple(outputs)


def _late_cache_file(prog: str, kind: str) -> Path:
    """Where what a command's ``late_types`` give is cached (``kind``: ``"options"``, or ``"help-<columns>"``), per
    installed transformers and per source of hubert_ecg and of the commands (``$HUBERT_ECG_CACHE/cli/``, else under
    ``$XDG_CACHE_HOME/hubert_ecg`` or ``~/.cache/hubert_ecg``): any change of either gives a new file, so a cached
    text never goes stale."""
    import hashlib
    import importlib.metadata
    import importlib.util
    import os

    folder = os.environ.get("HUBERT_ECG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
        / "hubert_ecg"
    digest = hashlib.sha1(importlib.metadata.version("transformers").encode())
    for package in ("hubert_ecg", "hubert_ecg_cli"):
        spec = importlib.util.find_spec(package)  # finds the package without importing it
        for path in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return Path(folder) / "cli" / f"{prog.replace(' ', '-')}-{digest.hexdigest()[:16]}.{kind}.json"


def _write_cache(path: Path, content) -> None:
    """Write ``content`` as JSON to ``path`` atomically (the processes of a launch may write it at once)."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(content), encoding="utf-8")
        temporary.replace(path)
    except OSError:  # a read-only cache: the next run builds it again, nothing else changes
        pass


def _read_cache(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _late_placeholders(parser: ECGArgumentParser, specs: list[dict]) -> None:
    """Options that stand for ``late_types``' (cached ``specs``): they take the same number of values and are not
    checked; the real parser checks them once torch is imported."""
    _short_usage(parser)
    for index, spec in enumerate(specs):
        common = {"dest": f"_late_{index}", "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
        if spec["nargs"] == 0:
            parser.add_argument(*spec["options"], action="store_true", **common)
        else:
            parser.add_argument(*spec["options"], nargs=spec["nargs"], const=spec["const"], **common)


def _write_late_options(path: Path, parser: ECGArgumentParser, own: set[str], renamed: dict[str, str]) -> None:
    """Cache the options of ``parser`` not in ``own`` (the late types'), and the late types' deprecated spellings."""
    specs = []
    for action in parser._actions:
        if action.dest in own or not action.option_strings:
            continue
        const = action.const if isinstance(action.const, (bool, int, float, str, type(None))) else None
        specs.append({"options": list(action.option_strings), "nargs": action.nargs, "const": const})
    _write_cache(path, {"options": specs, "renamed": renamed})


def parse(argv: Sequence[str] | None, dataclass_types: Sequence[type], prog: str, description: str | None = None,
          late_types: Callable[[], Sequence[type]] | None = None) -> tuple:
    """Parse a command's ``argv`` into one instance of each of ``dataclass_types``.

    Args:
        argv: ``[CONFIG.yaml|CONFIG.json] [ARGS...]``; None: ``sys.argv[1:]``.
        dataclass_types: the command's argument dataclasses, shared groups first.
        prog: the command's name for ``--help`` and messages, e.g. ``"hubert-ecg predict"``.
        description: the first paragraph of ``--help``.
        late_types: called only once ``dataclass_types`` parsed without error (or for ``--help``): more dataclasses
            whose import is heavy (``TrainingArguments``: torch). Their instances follow in the returned tuple. Their
            option names and the help are cached after the first run (:func:`_late_cache_file`), so that from then
            on ``--help`` and an unknown option too are answered before torch is imported; their values are checked
            after it.

    Returns:
        One dataclass instance per type, in order.

    Raises:
        SystemExit: 0 after ``--help``; 2 after a usage error (the usage and ``PROG: error: ...`` on stderr): an
            unknown option, a missing or malformed value, a field's own check, an unreadable configuration file.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    types_ = list(dataclass_types)
    config = argv.pop(0) if argv and argv[0].endswith((".yaml", ".yml", ".json")) else None
    wants_help = "-h" in argv or "--help" in argv
    if late_types is not None and wants_help:  # the help of every field, cached as the late options are
        import shutil

        cache = _late_cache_file(prog, f"help-{shutil.get_terminal_size().columns}")
        text = _read_cache(cache)
        if not isinstance(text, str):
            text = build_parser(types_ + list(late_types()), prog, description).format_help()
            _write_cache(cache, text)
        sys.stdout.write(text)
        raise SystemExit(0)
    parser = build_parser(types_, prog, description)
    argv = _renamed(argv, deprecated_spellings(types_), prog)
    values = {}
    if config is not None:  # the field names are checked once every field is known
        try:
            known = {action.dest for action in parser._actions} if late_types is None else None
            values = config_values(config, known, deprecated_spellings(types_), prog)
        except ValueError as err:
            parser.error(str(err))
    if late_types is None:
        return _parse_with(parser, argv, values, known_only=False)
    own = {action.dest for action in parser._actions}
    noted = deprecated_spellings(types_)
    cache = _late_cache_file(prog, "options")
    late_options = _read_cache(cache)
    if not (isinstance(late_options, dict) and {"options", "renamed"} <= set(late_options)):
        late_options = None
    if late_options is not None:  # every option known before torch: an unknown one is answered at once
        _late_placeholders(parser, late_options["options"])
        argv = _renamed(argv, late_options["renamed"], prog)
    _parse_with(parser, argv, {k: v for k, v in values.items() if k in own}, known_only=late_options is None)
    early_types = list(types_)
    types_ += list(late_types())
    parser = build_parser(types_, prog, description)
    if late_options is None:
        late_renamed = {old: new for old, new in deprecated_spellings(types_).items()
                        if old not in deprecated_spellings(early_types)}
        _write_late_options(cache, parser, own, late_renamed)
    argv = _renamed(argv, deprecated_spellings(types_), prog)
    if config is not None:
        try:
            values = config_values(config, {action.dest for action in parser._actions}, deprecated_spellings(types_),
                                   prog, noted)
        except ValueError as err:
            parser.error(str(err))
    return _parse_with(parser, argv, values, known_only=False)


# --- the shared argument groups ---------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    """Where the model comes from and how it runs: ``--model``, ``--device``, ``--dtype``."""

    _argument_group_name = "model"

    model: str | None = field(default=None, metadata={
        "help": "hub id or save_pretrained directory (default: the bundled demo model, a demonstration, not a "
                "clinical tool)",
        "deprecated": ["--model_name_or_path", "--model-name-or-path"]})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cpu or cuda:0 (default: the "
                                                                  "GPU when there is one)"})
    dtype: Literal[DTYPES] = field(default="auto", metadata={
        "help": "model precision (default auto: the fastest measured on this machine, scores within 0.02 of "
                "float32; see `hubert-ecg tune`)"})


@dataclass
class BatchingArguments:
    """How many 5 s windows go through the model at once: ``--batch_size``."""

    _argument_group_name = "batching"

    batch_size: int = field(default=16, metadata={"help": "windows per model call"})

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be a positive integer, got {self.batch_size}")


@dataclass
class RecordArguments:
    """How a record is read: ``--sampling_rate`` and ``--lead_names`` of files that do not carry them (.npy), and
    what to do with leads the model needs but a record lacks (``--missing_leads``)."""

    _argument_group_name = "records"

    sampling_rate: float | None = field(default=None, metadata={
        "help": "rate in Hz of .npy inputs (files that store a rate must agree)"})
    lead_names: str | None = field(default=None, metadata={
        "help": "comma-separated lead names of .npy inputs, e.g. I,II,V1 (default: the 12 standard leads in order)"})
    missing_leads: Literal[MISSING_LEADS] = field(default=DEFAULT_MISSING_LEADS, metadata={
        "help": "a lead the model needs that a record lacks: zero (fill with zeros, as the lead masking of "
                "training does) or raise (skip the record)"})

    def __post_init__(self):
        if self.sampling_rate is not None and not self.sampling_rate > 0:
            raise ValueError(f"--sampling_rate must be a positive number of Hz, got {self.sampling_rate}")
        if self.lead_names is not None and not self.lead_list:
            raise ValueError("--lead_names must list lead names separated by commas, e.g. I,II,V1")

    @property
    def lead_list(self) -> list[str] | None:
        """``--lead_names`` as a list (None when not given)."""
        if self.lead_names is None:
            return None
        return [name.strip() for name in self.lead_names.split(",") if name.strip()]


@dataclass
class WindowingArguments:
    """Which 5 s windows of a record are used: ``--stride_seconds``."""

    _argument_group_name = "windows"

    stride_seconds: float | None = field(default=None, metadata={
        "help": "seconds between the starts of consecutive 5 s windows (default 5: windows side by side)",
        "deprecated": ["--stride"]})

    def __post_init__(self):
        if self.stride_seconds is not None and not self.stride_seconds > 0:
            raise ValueError(f"--stride_seconds must be a positive number of seconds, got {self.stride_seconds}")


def parse_tta_windows(value, stride_seconds=None) -> int | str:
    """``--tta_windows`` of evaluate and calibrate as given (``"0"``, ``"8"``, ``"all"``) as the library takes it
    (:func:`hubert_ecg.training.evaluate.tta_window_choice`): 0, a positive number of windows or ``"all"``.

    Raises:
        ValueError: naming the option, for anything else, or for ``--stride_seconds`` without ``--tta_windows all``
            or not positive.
    """
    text = str(value).strip().lower()
    if text == "all":
        if stride_seconds is not None and not stride_seconds > 0:
            raise ValueError(f"--stride_seconds must be a positive number of seconds, got {stride_seconds}")
        return "all"
    number = int(text) if text.isdigit() else -1
    if number < 0:
        raise ValueError(f"--tta_windows must be 0, a positive number of windows or 'all', got {value!r}")
    if stride_seconds is not None:
        raise ValueError(f"--stride_seconds spaces the windows of --tta_windows all; got --tta_windows {value}")
    return number


def same_as(group: type, name: str, **metadata):
    """A field with the same name, default, help and semantics as ``name`` of the shared ``group`` (e.g.
    ``ModelArguments.model``), for a command that uses that field and not the group's others; without the group's
    deprecated spellings (they belong to the commands that had them) unless ``metadata`` gives them again."""
    shared = {f.name: f for f in dataclasses.fields(group)}[name]
    merged = {k: v for k, v in shared.metadata.items() if k != "deprecated"} | metadata
    return field(default=shared.default, metadata=merged)


@dataclass
class RecordFileArguments:
    """``--sampling_rate`` and ``--lead_names`` of :class:`~hubert_ecg_cli.arguments.RecordArguments`, for the
    commands that read one record and fill no missing lead (``plot``, ``explain``: a lead the record lacks is drawn
    empty or zero-filled), so they carry no ``--missing_leads``."""

    _argument_group_name = "records"

    sampling_rate: float | None = same_as(RecordArguments, "sampling_rate")
    lead_names: str | None = same_as(RecordArguments, "lead_names")

    __post_init__ = RecordArguments.__post_init__
    lead_list = RecordArguments.lead_list
