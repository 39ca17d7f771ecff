"""ECGs per second and peak memory of HuBERTECGModel's inference paths against transformers' HubertModel.

Side by side in one process, on the same random 5 s inputs (``input_values`` (batch, 6000) in [-1, 1]) and the same
random weights, for the small / base / large presets at several batch sizes. Every timed round runs each path
once, in a rotating order (so that a neighbour's load falls on all of them alike); the table gives the median of
the rounds and the ratio to the reference.

Before the table, per preset: the FLOPs of one 5 s window (:func:`window_flops`, from the config: the five
convolutions, the feature projection, the positional convolution, and per encoder layer the four attention
projections, the attention products and the feed-forward layers; multiply-add = 2 FLOPs), and the machine's
measured matrix-product rate in float32 and bfloat16 (:func:`gemm_rate`: ``torch.nn.functional.linear`` of the
model's encoder shapes, the best of 10 runs).

Paths (rows):
* ``reference``: transformers' ``HubertModel``, eager attention, float32, under ``torch.no_grad``.
* ``default (measured: ...)``: ``HuBERTECGModel`` with the settings ``pipeline()`` uses when given no dtype
  (:func:`hubert_ecg.inference.tuned_settings`, measured on this machine now, not read from the cache).
* ``sdpa fp32``: ``HuBERTECGModel`` (SDPA) through ``hubert_ecg.inference.run_model`` (``inference_mode``).
* ``bf16``: the same with ``optimize_for_inference(dtype="bfloat16")``: weights in bf16 but the positional
  convolution, which the model keeps in float32 (``_keep_in_fp32_modules_strict``), as
  ``from_pretrained(..., dtype=torch.bfloat16)`` and ``pipeline(..., dtype=torch.bfloat16)`` give.
* ``bf16, positional conv in bf16``: ``model.to(torch.bfloat16)`` only, so the positional convolution runs in bf16
  too (wrong on AMX CPUs for 2, 4 or 8 channels per group; right for the released sizes): the cost of keeping it in
  float32 is the ratio of these two rows.
* ``autocast bf16``: float32 weights under ``torch.autocast(bfloat16)`` (``run_model(..., autocast="bfloat16")``).
* ``bf16 + compile`` (``--compile``): ``torch.compile`` of the bf16 model (compilation time not counted).
* ``onnxruntime fp32`` (CPU only; ``--no-onnx`` to skip): the classifier exported by ``hubert_ecg.export``
  (same backbone plus mean pooling and a 5-label linear head, a negligible cost).
* ``openvino fp32`` (CPU only, when openvino is installed; ``--no-openvino`` to skip): the same ``.onnx`` file
  compiled by OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT="f32"`` and torch's thread count
  (``hubert_ecg.onnx_backend.ExportedGraph``, what ``backend="openvino"`` runs).

Columns: ECGs/s (median over rounds), x reference, GFLOP/s (FLOPs per window x ECGs/s), the fraction of the
measured matrix-product rate of the path's dtype (float32 paths against the float32 rate, bfloat16 ones against the
bfloat16 rate), peak memory (CPU: peak resident memory of the process above
the level before the call, MiB, from /proc/self/status VmHWM after resetting it, measured in a child process whose
allocator returns freed memory at once; not measured for compiled paths; GPU: ``max_memory_allocated`` above the
weights, MiB) and max |difference| to the reference (``last_hidden_state``; for onnxruntime and openvino, logits
against the PyTorch classifier in float32).

Absolute figures from a CPU shared with other jobs are noisy; compare ratios. On a GPU (``--device cuda``) the
figures are absolute and the device's name is printed.

Presets: ``small``, ``base``, ``large`` (:data:`hubert_ecg.configuration.PRESETS`) and ``demo`` (the bundled demo
model's architecture).

Usage: ``python benchmarks/inference.py [--quick] [--presets small,base] [--batch-sizes 1,8,64] [--runs 5]
[--threads N] [--compile] [--no-onnx] [--no-openvino] [--device cpu|cuda]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

# CPU peak memory is measured in a child process (``--memory-child``) in which freed buffers go back to the OS at
# once, so that the resident size follows the live memory and its peak (VmHWM) measures one call. glibc reads this
# at start-up: the child re-executes itself once with it set. The timings run in the parent with the default
# allocator: returning every buffer to the OS costs the fast paths up to 30 % of their speed.
MEMORY_CHILD = "--memory-child"
if __name__ == "__main__" and MEMORY_CHILD in sys.argv and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
    os.execv(sys.executable, [sys.executable] + sys.argv)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import HubertConfig, HubertModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from hubert_ecg import HuBERTECGConfig, HuBERTECGForSequenceClassification, HuBERTECGModel  # noqa: E402
from hubert_ecg.inference import (  # noqa: E402
    InferenceSettings,
    apply_settings,
    measure_settings,
    optimize_for_inference,
    run_model,
)



def machine_name(device: str) -> str:
    """CPU model, cores and bf16 units (from /proc/cpuinfo), or the GPU's name."""
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    model, flags = platform.processor() or "unknown CPU", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "unknown CPU", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    units = [name for name in ("amx_bf16", "avx512_bf16", "avx512f") if f" {name}" in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{model}, {cores} cores ({', '.join(units) or 'no bf16 units'}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


class PeakMemory:
    """Peak memory of one call in MiB: CPU resident memory above the level before the call, or CUDA allocations."""

    def __init__(self, device: str):
        self.device = device

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def measure(self, fn) -> float | None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - before) / 2**20
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
        except OSError:
            return None
        before = self._status("VmRSS")
        fn()
        peak = self._status("VmHWM")
        return None if before is None or peak is None else max(0, peak - before) / 2**20


def preset_config(preset: str) -> HuBERTECGConfig:
    """The config of a preset, or of the bundled demo model for ``"demo"``."""
    if preset == "demo":
        from hubert_ecg import demo_model_path

        return HuBERTECGConfig.from_pretrained(demo_model_path())
    return HuBERTECGConfig.from_preset(preset, num_labels=5)


def frames_per_window(config: HuBERTECGConfig, samples: int = 6000) -> list[int]:
    """Output lengths of the feature encoder's convolutions for ``samples`` inputs (no padding)."""
    lengths, length = [], samples
    for kernel, stride in zip(config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        lengths.append(length)
    return lengths


def window_flops(config: HuBERTECGConfig, samples: int = 6000) -> float:
    """FLOPs of one forward pass of the backbone on one window of ``samples`` (multiply-add = 2 FLOPs; norms,
    activations and softmax left out: under 1 % here)."""
    lengths = frames_per_window(config, samples)
    channels = [1] + list(config.conv_dim)
    flops = sum(2 * n * c_out * c_in * k for n, c_in, c_out, k in
                zip(lengths, channels[:-1], channels[1:], config.conv_kernel))
    frames, hidden = lengths[-1], config.hidden_size
    flops += 2 * frames * config.conv_dim[-1] * hidden  # feature projection
    flops += 2 * frames * hidden * (hidden // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings
    per_layer = 2 * frames * (4 * hidden * hidden + 2 * hidden * config.intermediate_size)
    per_layer += 2 * 2 * frames * frames * hidden  # scores and weighted sum
    return flops + config.num_hidden_layers * per_layer


def gemm_rate(config: HuBERTECGConfig, dtype: torch.dtype, device: str, batch: int = 32, runs: int = 10) -> float:
    """The machine's matrix-product rate in GFLOP/s for ``dtype``: the best of ``runs`` products (after a warm-up)
    of each of the model's two encoder shapes, ``(batch * frames, hidden) @ (hidden, intermediate)`` (feed-forward)
    and ``(batch * frames, hidden) @ (hidden, hidden)`` (attention projections), through ``F.linear`` as the model
    runs them; the higher of the two. The best, not the median: the rate the hardware reaches, which a model's
    forward pass can approach but (on a machine shared with others) rarely exceed."""
    rows = batch * frames_per_window(config)[-1]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = 0.0
    with torch.inference_mode():
        for width in (config.intermediate_size, config.hidden_size):
            a = torch.randn(rows, config.hidden_size, device=device, dtype=dtype)
            w = torch.randn(width, config.hidden_size, device=device, dtype=dtype)
            for i in range(runs + 1):
                sync()
                start = time.perf_counter()
                torch.nn.functional.linear(a, w)
                sync()
                if i:
                    best = max(best, 2 * rows * config.hidden_size * width / (time.perf_counter() - start) / 1e9)
    return best


def reference_model(config: HuBERTECGConfig) -> HubertModel:
    """transformers' HubertModel, eager attention, float32, with the same architecture as ``config``."""
    fields = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "auto_map", "architectures")}
    ref_config = HubertConfig(**{k: v for k, v in fields.items() if k in HubertConfig().to_dict()})
    ref_config._attn_implementation = "eager"
    return HubertModel(ref_config).eval()


def build_paths(preset: str, device: str, use_compile: bool, use_onnx: bool, tmp: Path,
                default_settings: InferenceSettings | None = None, use_openvino: bool = True) -> dict:
    """name -> (callable(x) -> output tensor on the CPU in float32, kind) for one preset, same weights."""
    torch.manual_seed(0)
    config = preset_config(preset)
    ref = reference_model(config).to(device)
    state = ref.state_dict()

    def ours(**options):
        model = HuBERTECGModel(config)
        model.load_state_dict(state, strict=False)  # masked_spec_embed etc. unused at inference
        return optimize_for_inference(model, device=device, **options)

    def all_bf16():
        model = HuBERTECGModel(config)
        model.load_state_dict(state, strict=False)
        return model.to(device=device, dtype=torch.bfloat16).eval()

    def call_ref(x):
        with torch.no_grad():
            return ref(x).last_hidden_state

    paths = {"reference (HubertModel eager fp32)": (call_ref, "hidden")}
    default = ours()
    settings = default_settings or measure_settings(default)
    print(f"# {preset}: default settings measured on this machine: {settings.describe()}", file=sys.stderr)
    apply_settings(default, settings)
    paths[f"default ({settings.name})"] = (lambda x, m=default: run_model(m, x), "hidden")
    fp32 = ours()
    paths["sdpa fp32"] = (lambda x, m=fp32: run_model(m, x), "hidden")
    bf16_ok = not device.startswith("cuda") or torch.cuda.is_bf16_supported()
    if bf16_ok:
        bf16 = ours(dtype="bfloat16")
        paths["bf16"] = (lambda x, m=bf16: run_model(m, x), "hidden")
        bf16_pos = all_bf16()
        paths["bf16, positional conv in bf16"] = (lambda x, m=bf16_pos: run_model(m, x), "hidden")
        paths["autocast bf16"] = (lambda x, m=fp32: run_model(m, x, autocast="bfloat16"), "hidden")
        if use_compile:
            compiled = ours(dtype="bfloat16", compile=True)
            paths["bf16 + torch.compile"] = (lambda x, m=compiled: run_model(m, x), "hidden")
    if use_compile:
        compiled32 = ours(compile=True)
        paths["fp32 + torch.compile"] = (lambda x, m=compiled32: run_model(m, x), "hidden")
    if use_onnx and not device.startswith("cuda"):
        try:
            import onnxruntime as ort

            from hubert_ecg.export import export_onnx
        except ImportError as error:
            print(f"# onnxruntime row skipped: {error}", file=sys.stderr)
        else:
            classifier = HuBERTECGForSequenceClassification(config).eval()
            classifier.hubert_ecg.load_state_dict(state, strict=False)
            path = tmp / f"{preset}.onnx"
            export_onnx(classifier, path, check=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            paths["onnxruntime fp32 (classifier)"] = (
                lambda x, s=session: torch.from_numpy(s.run(["logits"], {"input_values": x.numpy()})[0]),
                ("logits", classifier),
            )
            if use_openvino:
                try:  # the same .onnx file, compiled by OpenVINO's CPU plugin in float32 (as backend="openvino")
                    from hubert_ecg.onnx_backend import ExportedGraph

                    graph = ExportedGraph(path, "openvino", {"INFERENCE_NUM_THREADS": torch.get_num_threads()})
                except ImportError as error:
                    print(f"# openvino row skipped: {error}", file=sys.stderr)
                else:
                    paths["openvino fp32 (classifier)"] = (
                        lambda x, g=graph: torch.from_numpy(g.run("logits", x.numpy())), ("logits", classifier),
                    )
    return paths


def _inputs(batch: int, device: str) -> torch.Tensor:
    return (torch.rand(batch, 6000, generator=torch.Generator().manual_seed(batch)) * 2 - 1).to(device)


def memory_child(args) -> int:
    """``--memory-child``: peak memory of every path (compiled ones left out), one JSON line per batch size."""
    import json

    memory = PeakMemory(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            dtype, attention, first_conv = args.default_settings.split("/")
            settings = InferenceSettings(dtype=dtype, attn_implementation=attention, input_conv=first_conv)
            paths = build_paths(preset, args.device, False, not args.no_onnx, Path(tmp), settings,
                                not args.no_openvino)
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                x = _inputs(batch, args.device)
                peaks = {}
                for name, (fn, _) in paths.items():
                    fn(x)  # warm-up: one-off allocations (oneDNN primitives, ONNX Runtime arena) are not counted
                    peaks[name] = memory.measure(lambda: fn(x))
                print(json.dumps({"preset": preset, "batch": batch, "peaks": peaks}), flush=True)
    return 0


def peak_memory_in_child(args, preset: str, default_settings: str) -> dict:
    """(batch, path) -> peak MiB for one preset, from a ``--memory-child`` process; {} if it fails."""
    import json
    import subprocess

    command = [sys.executable, __file__, MEMORY_CHILD, "--presets", preset, "--batch-sizes", args.batch_sizes,
               "--device", args.device, "--default-settings", default_settings] + \
              (["--no-onnx"] if args.no_onnx else []) + (["--no-openvino"] if args.no_openvino else [])
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"# peak memory not measured: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}
    peaks = {}
    for line in done.stdout.splitlines():
        entry = json.loads(line)
        peaks.update({(entry["batch"], name): value for name, value in entry["peaks"].items()})
    return peaks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="small,base,large")
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (minutes of compilation)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime and openvino rows")
    parser.add_argument("--no-openvino", action="store_true", help="skip the openvino row")
    parser.add_argument("--quick", action="store_true", help="small preset, batch 1 and 8, 3 rounds")
    parser.add_argument(MEMORY_CHILD, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--default-settings", default="float32/sdpa/matmul", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    hf_logging.set_verbosity_error()  # here, not at import: importing this module (tests do) changes nothing
    if args.quick:
        args.presets, args.batch_sizes, args.runs = "small", "1,8", 3
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if args.memory_child:
        return memory_child(args)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    print(f"# machine: {machine_name(args.device)}")
    print(f"# inputs: random (batch, 6000) = 5 s of 12 leads at 100 Hz; random weights; {args.runs} rounds, median")
    header = ("| preset | batch | path | ECGs/s | x reference | GFLOP/s | of GEMM rate | peak memory (MiB) "
              "| max abs diff |")
    rows = [header, "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            config = preset_config(preset)
            flops = window_flops(config)
            rates = {"fp32": gemm_rate(config, torch.float32, args.device),
                     "bf16": gemm_rate(config, torch.bfloat16, args.device)}
            print(f"# {preset}: {flops / 1e9:.3f} GFLOP per 5 s window; measured GEMM rate "
                  f"{rates['fp32']:.0f} GFLOP/s fp32, {rates['bf16']:.0f} GFLOP/s bf16", flush=True)
            paths = build_paths(preset, args.device, args.compile, not args.no_onnx, Path(tmp),
                                use_openvino=not args.no_openvino)
            default_name = next(name for name in paths if name.startswith("default ("))
            results = []
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                x = _inputs(batch, args.device)
                repeats = max(1, 4 // batch)  # small batches: several calls per timing
                outputs, peaks, times = {}, {}, {name: [] for name in paths}
                for name, (fn, kind) in paths.items():
                    fn(x)  # warm-up (and compilation)
                    if cuda:
                        peaks[name] = PeakMemory(args.device).measure(lambda: fn(x))
                    outputs[name] = fn(x).float().cpu()
                expected_logits = None
                names = list(paths)
                for round_ in range(args.runs):
                    for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                        fn = paths[name][0]
                        sync()
                        start = time.perf_counter()
                        for _ in range(repeats):
                            fn(x)
                        sync()
                        times[name].append((time.perf_counter() - start) / repeats)
                ref_name = names[0]
                ref_time = statistics.median(times[ref_name])
                for name in names:
                    kind = paths[name][1]
                    if kind == "hidden":
                        diff = (outputs[name] - outputs[ref_name]).abs().max().item()
                    else:  # onnxruntime / openvino logits against the PyTorch classifier in float32
                        if expected_logits is None:
                            with torch.inference_mode():
                                expected_logits = kind[1](input_values=x.cpu()).logits
                        diff = (outputs[name] - expected_logits).abs().max().item()
                    median = statistics.median(times[name])
                    results.append((batch, name, batch / median, ref_time / median, peaks.get(name), diff))
                    print(f"# {preset} batch {batch} {name}: {batch / median:.2f} ECGs/s", flush=True)
            del paths
            if not cuda:
                child = peak_memory_in_child(args, preset, default_name[len("default ("):-1])
                results = [(b, n, e, r, child.get((b, n)), d) for b, n, e, r, _, d in results]
            for batch, name, ecgs, ratio, peak, diff in results:
                peak = "-" if peak is None else f"{peak:.0f}"
                gflops = flops * ecgs / 1e9
                low = "bf16" in name or "bfloat16" in name
                fraction = gflops / rates["bf16" if low else "fp32"]
                rows.append(f"| {preset} | {batch} | {name} | {ecgs:.2f} | {ratio:.2f} | {gflops:.1f} | "
                            f"{fraction:.0%} {'bf16' if low else 'fp32'} | {peak} | {diff:.1e} |")
                print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
