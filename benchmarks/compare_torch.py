#!/usr/bin/python3
"""Times the PyTorch idioms for rspo's token reductions and prints one ratio table beside the
results of bench_kernels (benchmarks/kernels.cpp), read from its JSON output.

    build/benchmarks/bench_kernels --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \\
        --benchmark_out=build/benchmarks/kernels.json
    /usr/bin/python3 benchmarks/compare_torch.py build/benchmarks/kernels.json

Needs PyTorch (Debian: apt-get install python3-torch, for /usr/bin/python3). Same shapes, dtypes and
thread count (2) as the C++ benchmarks; each idiom runs once to warm up, then a few times, and the
median is reported. The C++ side contributes the median of its repetitions (or the single run).

Idioms (the gradient has the logits' dtype, as in bench_kernels):
  log-prob   log_softmax(z).gather(ids)   and   -cross_entropy(z, ids, reduction='none')
  KLs        kl_div(log_softmax(r), log_softmax(z), log_target=True).sum(-1) = KL(p||m) and the
             other way round = KL(m||p); kl_fwd computes both, sharing the log_softmaxes
  fused      log_softmax(z) once, then the gather and both KLs
  fwd        under torch.no_grad(); fwd_bwd: z.requires_grad_(), then backward through autograd
             with upstream gradients g (one per row), z.grad reset each call
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("compare_torch.py: PyTorch is missing; run it with /usr/bin/python3 "
             "(apt-get install python3-torch)")

SHAPES = [(2048, 32000), (512, 128256), (64, 32000)]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
THREADS = 2


# ---------------------------------------------------------------------------------------------
# The idioms: each takes (z, r, ids, g) and returns what it computed; the backward ones call
# backward themselves. g holds the upstream gradients (g_lp, g_r, g_f), one value per row.
# ---------------------------------------------------------------------------------------------
def logprob_gather(z, ids):
    return torch.log_softmax(z, dim=-1).gather(-1, ids[:, None]).squeeze(-1)


def logprob_ce(z, ids):
    return -F.cross_entropy(z, ids, reduction="none")


def reverse_kl(logp, logm):  # KL(p || m): kl_div(input, target) = sum target * (target - input)
    return F.kl_div(logm, logp, reduction="none", log_target=True).sum(-1)


def forward_kl(logp, logm):  # KL(m || p)
    return F.kl_div(logp, logm, reduction="none", log_target=True).sum(-1)


def backward(outputs, grads):
    torch.autograd.backward(outputs, grads)


def fwd(fn):
    def run(z, r, ids, g):
        with torch.no_grad():
            return fn(z, r, ids, g)
    return run


def fwd_bwd(fn):
    def run(z, r, ids, g):
        z.grad = None
        return fn(z.requires_grad_(), r, ids, g)
    return run


def kl_both(z, r, ids, g):
    logp, logm = torch.log_softmax(z, dim=-1), torch.log_softmax(r, dim=-1)
    return reverse_kl(logp, logm), forward_kl(logp, logm)


def fused(z, r, ids, g):
    logp, logm = torch.log_softmax(z, dim=-1), torch.log_softmax(r, dim=-1)
    return logp.gather(-1, ids[:, None]).squeeze(-1), reverse_kl(logp, logm), forward_kl(logp, logm)


def logprob_gather_bwd(z, r, ids, g):
    lp = logprob_gather(z, ids)
    backward([lp], [g[0]])
    return lp


def logprob_ce_bwd(z, r, ids, g):
    lp = logprob_ce(z, ids)
    backward([lp], [g[0]])
    return lp


def reverse_kl_bwd(z, r, ids, g):
    kl = reverse_kl(torch.log_softmax(z, dim=-1), torch.log_softmax(r, dim=-1))
    backward([kl], [g[1]])
    return kl


def forward_kl_bwd(z, r, ids, g):
    kl = forward_kl(torch.log_softmax(z, dim=-1), torch.log_softmax(r, dim=-1))
    backward([kl], [g[2]])
    return kl


def fused_bwd(z, r, ids, g):
    values = fused(z, r, ids, g)
    backward(list(values), list(g))
    return values


# (op as named by bench_kernels, idiom label, function)
IDIOMS = [
    ("logprob_fwd", "log_softmax+gather", fwd(lambda z, r, ids, g: logprob_gather(z, ids))),
    ("logprob_fwd", "-cross_entropy", fwd(lambda z, r, ids, g: logprob_ce(z, ids))),
    ("logprob_fwd_bwd", "log_softmax+gather", fwd_bwd(logprob_gather_bwd)),
    ("logprob_fwd_bwd", "-cross_entropy", fwd_bwd(logprob_ce_bwd)),
    ("kl_fwd", "kl_div x2", fwd(kl_both)),
    ("reverse_kl_fwd_bwd", "kl_div", fwd_bwd(reverse_kl_bwd)),
    ("forward_kl_fwd_bwd", "kl_div", fwd_bwd(forward_kl_bwd)),
    ("fused_fwd", "gather+kl_div x2", fwd(fused)),
    ("fused_fwd_bwd", "gather+kl_div x2", fwd_bwd(fused_bwd)),
]

OPS = ["logprob_fwd", "logprob_fwd_bwd", "kl_fwd", "reverse_kl_fwd_bwd", "forward_kl_fwd_bwd",
       "fused_fwd", "fused_fwd_bwd"]
INPUTS = {op: 1 if op.startswith("logprob") else 2 for op in OPS}


def make_data(rows, cols, dtype):
    """The distribution bench_kernels uses: z ~ 2.5 N(0,1), target raised by 6, r = z + 0.3 N(0,1)."""
    gen = torch.Generator().manual_seed(rows * 1_000_003 + cols)
    z = 2.5 * torch.randn(rows, cols, generator=gen)
    ids = torch.randint(cols, (rows,), generator=gen)
    z[torch.arange(rows), ids] += 6.0
    r = z + 0.3 * torch.randn(rows, cols, generator=gen)
    g = tuple(0.5 + torch.rand(rows, generator=gen) for _ in range(3))
    return z.to(dtype), r.to(dtype), ids, tuple(x.to(dtype) for x in g)


def time_ms(fn, args, repeats, statistic):
    fn(*args)  # warm-up (allocator, thread pool)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1e3)
    return min(times) if statistic == "min" else statistics.median(times)


# ---------------------------------------------------------------------------------------------
# bench_kernels' JSON
# ---------------------------------------------------------------------------------------------
def read_cpp(paths, statistic):
    """{benchmark name without the timer suffixes: real time in ms}, the chosen aggregate when repeated;
    a later file's entries replace an earlier one's (e.g. a rerun of some cases)."""
    to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    result, context = {}, {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        result.update(read_cpp_data(data, statistic, to_ms))
        context = data.get("context", context)
    return result, context


def read_cpp_data(data, statistic, to_ms):
    plain, aggregate = {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        # "rspo/<op>/<dtype>/<shape>/threads:<t>" + "/process_time/real_time" (the timers used)
        name = "/".join(p for p in b["run_name"].split("/") if p not in ("process_time", "real_time"))
        ms = b["real_time"] * to_ms[b["time_unit"]]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == statistic:
                aggregate[name] = ms
        else:
            plain.setdefault(name, []).append(ms)
    result = {name: statistics.median(v) for name, v in plain.items()}
    result.update(aggregate)
    return result


def cpp_row(cpp, op, dtype, shape, threads=THREADS):
    key = f"{op}/{dtype}/{shape}/threads:{threads}"
    rspo = cpp.get(f"rspo/{key}")
    scalar = cpp.get(f"scalar/{key}")
    k, w = INPUTS[op], op.endswith("_bwd")
    mem_names = [f"floor/memory_r{k}w{int(w)}/{dtype}/{shape}/threads:{threads}"]
    if w:
        mem_names.append(f"floor/memory_r{k}w1_nt/{dtype}/{shape}/threads:{threads}")
    mems = [cpp[n] for n in mem_names if n in cpp]
    mem = min(mems) if mems else None
    exp = cpp.get(f"floor/exp/{shape}/threads:{threads}")
    return rspo, scalar, mem, None if exp is None else exp * k


def fmt(x, spec, suffix=""):
    width = int(spec.split(".")[0]) + len(suffix)
    return "-".rjust(width) if x is None else format(x, spec) + suffix


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="+",
                        help="bench_kernels --benchmark_out=... (JSON); several are merged, later ones win")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per idiom (default: 3, or 7 for the small shape)")
    parser.add_argument("--shapes", nargs="*", default=None,
                        help="restrict to these NxV shapes (default: all three)")
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--statistic", default="median", choices=["median", "min"],
                        help="of the C++ repetitions (bench_kernels records both) and of the torch "
                             "calls: median (default) or min (steadier on a busy machine)")
    args = parser.parse_args()

    cpp, context = read_cpp(args.json, args.statistic)
    torch.set_num_threads(THREADS)
    shapes = [s for s in SHAPES if args.shapes is None or f"{s[0]}x{s[1]}" in args.shapes]

    header = (f"{'op':<19} {'dtype':<5} {'shape':<11} {'torch idiom':<19} {'rspo ms':>8} {'scalar ms':>9} "
              f"{'torch ms':>9} {'torch/rspo':>10} {'rspo/mem':>8} {'rspo/exp':>8}")
    rows = []
    for rows_, cols in shapes:
        shape = f"{rows_}x{cols}"
        repeats = args.repeats or (7 if rows_ * cols < 10_000_000 else 3)
        for dtype in args.dtypes:
            z, r, ids, g = make_data(rows_, cols, DTYPES[dtype])
            for op, label, fn in IDIOMS:
                try:
                    torch_ms = time_ms(fn, (z, r, ids, g), repeats, args.statistic)
                except RuntimeError as e:  # an op without a kernel for this dtype
                    print(f"  {op} {dtype} {shape} {label}: {str(e).splitlines()[0]}", file=sys.stderr)
                    torch_ms = None
                z.grad = None
                z.requires_grad_(False)
                rspo, scalar, mem, exp = cpp_row(cpp, op, dtype, shape)
                rows.append(f"{op:<19} {dtype:<5} {shape:<11} {label:<19} {fmt(rspo, '8.3f')} "
                            f"{fmt(scalar, '9.2f')} {fmt(torch_ms, '9.2f')} "
                            f"{fmt(ratio(torch_ms, rspo), '9.1f', 'x')} "
                            f"{fmt(ratio(rspo, mem), '8.2f')} {fmt(ratio(rspo, exp), '8.2f')}")
                print(rows[-1], file=sys.stderr, flush=True)  # progress
            del z, r, ids, g
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads, {args.statistic} of "
          f"{args.repeats or '3 (7 for 64x32000)'} calls; rspo and scalar: {args.statistic} of "
          f"bench_kernels' repetitions, {THREADS} threads; floors with {context.get('floor_isa', '?')}.")
    print("rspo/mem, rspo/exp: rspo's time over the memory floor (inputs read once, gradient written "
          "once) and over the exp floor (N*V exps per input matrix); 1.00 = at the floor.")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
