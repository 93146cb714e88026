#!/usr/bin/env python3
"""Times PyTorch's log-prob idiom on a CUDA device, eager and under torch.compile, at the shapes and
dtypes of bench_cuda_kernels (benchmarks/cuda_kernels.cu), and prints ms and GB/s; given that
program's JSON output, also the torch / rspo ratio table.

    build/benchmarks/bench_cuda_kernels --benchmark_filter=/8192x128256 --benchmark_repetitions=5 \\
        --benchmark_report_aggregates_only=true --benchmark_out=cuda_kernels.json
    python3 benchmarks/compare_torch_compile.py --json cuda_kernels.json --shapes 8192x128256

Needs a CUDA build of PyTorch (torch.compile: PyTorch >= 2.0 with Triton; where compiling fails the
eager figures are still printed). Without torch or a CUDA device it says so and exits 77.

Idiom (the one of benchmarks/compare_torch.py, whose helpers this script reuses):
  logprob_fwd      log_softmax(z).gather(ids) under torch.no_grad()
  logprob_fwd_bwd  the same with z.requires_grad_(), then backward through autograd with upstream
                   gradients g (one per row, the logits' dtype); z.grad reset each call
  compiled         torch.compile(log_softmax+gather, dynamic=False) (static shapes: the fairest
                   case for the compiler), recompiled for each shape and dtype; backward is
                   AOTAutograd's compiled backward

Timing as bench_cuda_kernels: CUDA events around one call; before it, the L2 is flushed (a write
of twice its size) and torch.cuda._sleep keeps the GPU busy while the host enqueues the call, so
the events time device work rather than Python and dispatcher overhead (a trainer overlaps that
with the GPU). The first call (which compiles) is timed separately and reported; then a few
warm-up calls, then --repeats timed calls, of which the median (or min) is reported.

GB/s counts what the op must move, as bench_cuda_kernels does: the logits read once, and for
forward+backward the gradient written once.
"""

import argparse
import importlib
import json
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("compare_torch_compile.py: PyTorch is not installed: nothing to measure; exiting with 77 (skipped)")
    sys.exit(77)

import compare_torch as cpu  # noqa: E402  (the CPU comparison: same idiom, JSON reader, formatting)

SHAPES = [(8192, 128256), (2048, 32000), (512, 128256)]  # bench_cuda_kernels' shapes, target first
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
OPS = ["logprob_fwd", "logprob_fwd_bwd"]
# ~1 ms at the clock rates of current datacenter GPUs: longer than the host needs to enqueue one
# eager forward+backward through autograd.
SLEEP_CYCLES = 2_000_000
WARMUP = 3


def make_data(rows, cols, dtype, device):
    """The distribution of bench_cuda_kernels (not its exact bits): z ~ 2.5 N(0,1), the target raised
    by 6, upstream gradients in [0.5, 1.5). Generated on the device: the target shape has 10^9 logits."""
    gen = torch.Generator(device=device).manual_seed(rows * 1_000_003 + cols)
    z = 2.5 * torch.randn(rows, cols, generator=gen, device=device)
    ids = torch.randint(cols, (rows,), generator=gen, device=device)
    z[torch.arange(rows, device=device), ids] += 6.0
    g = 0.5 + torch.rand(rows, generator=gen, device=device)
    return z.to(dtype), ids, g.to(dtype)


def idiom(op, compiled, mode):
    """The (z, r, ids, g) callable compare_torch's wrappers expect; r is unused here."""
    logprob = cpu.logprob_gather
    if compiled:
        logprob = torch.compile(logprob, dynamic=False, mode=mode)
    if op == "logprob_fwd":
        return cpu.fwd(lambda z, r, ids, g: logprob(z, ids))

    def forward_backward(z, r, ids, g):
        lp = logprob(z, ids)
        cpu.backward([lp], [g[0]])
        return lp

    return cpu.fwd_bwd(forward_backward)


class timer:
    """CUDA-event timing of one call at a time with a cold L2 and the host's launch latency hidden."""

    def __init__(self, device):
        props = torch.cuda.get_device_properties(device)
        l2 = getattr(props, "L2_cache_size", 0) or (128 << 20)  # older torch: assume <= 128 MiB
        self.flush = torch.empty(2 * l2, dtype=torch.uint8, device=device)
        self.sleep = getattr(torch.cuda, "_sleep", None)
        self.note = (f"L2 flush {2 * l2 >> 20} MiB; " +
                     (f"torch.cuda._sleep({SLEEP_CYCLES}) before each call" if self.sleep else
                      "torch.cuda._sleep is missing: host launch latency is included"))

    def times_ms(self, fn, args, repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        out = []
        for _ in range(repeats):
            self.flush.zero_()
            if self.sleep:
                self.sleep(SLEEP_CYCLES)
            start.record()
            fn(*args)
            stop.record()
            stop.synchronize()
            out.append(start.elapsed_time(stop))
        return out


def measure(fn, args, t, repeats, statistic):
    """(first call s, ms) of fn; raises what fn raises."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn(*args)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t.times_ms(fn, args, WARMUP)
    times = t.times_ms(fn, args, repeats)
    return first, (min(times) if statistic == "min" else statistics.median(times))


def read_rspo(paths, statistic):
    """{'<op>/<dtype>/<shape>': ms} of rspo's ops in bench_cuda_kernels' JSON files (later files win),
    and the device the first file names. Its timers are manual (CUDA events): the names end in
    /manual_time, which compare_torch's reader does not know, so they are dropped here first."""
    to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    result, device = {}, None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            b["run_name"] = "/".join(p for p in b["run_name"].split("/") if p != "manual_time")
        for name, ms in cpu.read_cpp_data(data, statistic, to_ms).items():
            if name.startswith("rspo/"):
                result[name[len("rspo/"):]] = ms
        device = device or data.get("context", {}).get("cuda_device")
    return result, device


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", nargs="*", default=[],
                        help="bench_cuda_kernels --benchmark_out=... files; adds the rspo columns")
    parser.add_argument("--shapes", nargs="*", default=None, help="NxV shapes (default: all three)")
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (default 20)")
    parser.add_argument("--statistic", default="median", choices=["median", "min"],
                        help="of the timed calls and of bench_cuda_kernels' repetitions")
    parser.add_argument("--mode", default="default",
                        help="torch.compile mode (default, reduce-overhead, max-autotune, ...)")
    parser.add_argument("--no-compile", action="store_true", help="time eager only")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"compare_torch_compile.py: torch {torch.__version__} has no usable CUDA device "
              f"(torch.version.cuda = {torch.version.cuda}): nothing to measure; exiting with 77 (skipped)")
        sys.exit(77)

    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    rspo, rspo_device = read_rspo(args.json, args.statistic) if args.json else ({}, None)
    if rspo_device and not rspo_device.startswith(name):
        print(f"warning: the JSON was measured on '{rspo_device}', this is '{name}'", file=sys.stderr)
    shapes = [s for s in SHAPES if args.shapes is None or f"{s[0]}x{s[1]}" in args.shapes]
    compile_ok = hasattr(torch, "compile") and not args.no_compile
    # For reset(); not every version imports it with torch.
    dynamo = importlib.import_module("torch._dynamo") if compile_ok else None
    t = timer(device)

    results = []
    for rows, cols in shapes:
        shape = f"{rows}x{cols}"
        for dtype in args.dtypes:
            if dynamo is not None:
                dynamo.reset()  # a fresh cache per shape and dtype: no recompile limit, no reuse
            z, ids, g = make_data(rows, cols, DTYPES[dtype], device)
            data = (z, None, ids, (g,))
            for op in OPS:
                row = {"op": op, "dtype": dtype, "shape": shape,
                       "bytes": rows * cols * z.element_size() * (2 if op.endswith("_bwd") else 1)}
                for label, compiled in (("eager", False), ("compiled", True)):
                    if compiled and not compile_ok:
                        continue
                    try:
                        first, ms = measure(idiom(op, compiled, args.mode), data, t, args.repeats,
                                            args.statistic)
                        row[label] = ms
                        row[label + "_first_call_s"] = first
                    except Exception as e:  # noqa: BLE001  (a failed compile or OOM: report, go on)
                        row[label + "_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                        print(f"  {op} {dtype} {shape} {label}: {row[label + '_error']}", file=sys.stderr)
                    z.grad = None
                    z.requires_grad_(False)
                row["rspo"] = rspo.get(f"{op}/{dtype}/{shape}")
                results.append(row)
                # Progress, with the figures: a run cut short by a time limit still shows them.
                print(f"  {op} {dtype} {shape}: eager {cpu.fmt(row.get('eager'), '0.3f')} ms, compiled "
                      f"{cpu.fmt(row.get('compiled'), '0.3f')} ms (first call "
                      f"{cpu.fmt(row.get('compiled_first_call_s'), '0.1f')} s), rspo "
                      f"{cpu.fmt(row['rspo'], '0.3f')} ms", file=sys.stderr, flush=True)
            del z, ids, g, data
            torch.cuda.empty_cache()

    def gbs(row, key):
        ms = row.get(key)
        return None if ms is None else row["bytes"] / (ms * 1e-3) / 1e9

    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {name}; {args.statistic} of "
          f"{args.repeats} calls; {t.note}; torch.compile: "
          f"{'mode=' + args.mode + ', dynamic=False' if compile_ok else 'not used'}")
    if rspo:
        print(f"rspo: bench_cuda_kernels' {args.statistic} ({', '.join(args.json)})")
    print(f"{'op':<16} {'dtype':<5} {'shape':<12} {'eager ms':>9} {'compiled ms':>11} {'compile s':>9} "
          f"{'rspo ms':>8} {'eager GB/s':>10} {'comp GB/s':>9} {'rspo GB/s':>9} {'eager/rspo':>10} "
          f"{'comp/rspo':>9}")
    for row in results:
        print(f"{row['op']:<16} {row['dtype']:<5} {row['shape']:<12} {cpu.fmt(row.get('eager'), '9.3f')} "
              f"{cpu.fmt(row.get('compiled'), '11.3f')} {cpu.fmt(row.get('compiled_first_call_s'), '9.1f')} "
              f"{cpu.fmt(row['rspo'], '8.3f')} {cpu.fmt(gbs(row, 'eager'), '10.1f')} "
              f"{cpu.fmt(gbs(row, 'compiled'), '9.1f')} {cpu.fmt(gbs(row, 'rspo'), '9.1f')} "
              f"{cpu.fmt(cpu.ratio(row.get('eager'), row['rspo']), '9.2f', 'x')} "
              f"{cpu.fmt(cpu.ratio(row.get('compiled'), row['rspo']), '8.2f', 'x')}")
    errors = [(row, k) for row in results for k in row if k.endswith("_error")]
    for row, k in errors:
        print(f"  {row['op']} {row['dtype']} {row['shape']} {k[:-6]}: {row[k]}")
    print("x/rspo > 1: rspo is faster. compile s: the first compiled call, compilation included.")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"torch": torch.__version__, "cuda": torch.version.cuda, "device": name,
                       "statistic": args.statistic, "repeats": args.repeats, "timing": t.note,
                       "compile_mode": args.mode if compile_ok else None, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
