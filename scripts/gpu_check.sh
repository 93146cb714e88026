#!/usr/bin/env bash
# The one prepared GPU check (docs/performance.md, "GPU"). On a machine with a CUDA GPU it runs, in
# this order of importance, each under a time limit:
#   1. the CUDA kernel tests (tests/cuda: test_cuda_kernels) on the device;
#   2. bench_cuda_kernels at the target shape 8192x128256, 5 repetitions;
#   3. benchmarks/compare_torch_compile.py at that shape, if a CUDA-capable torch is importable;
#   4. bench_cuda_kernels at the other shapes, 3 repetitions, with the time left;
# writes every log and JSON under $OUT (or build/gpu_check/), and ends with a summary and tables.
#
#   scripts/gpu_check.sh             run the check (on the GPU machine)
#   scripts/gpu_check.sh --prepare   build both programs for sm_90 here (no GPU needed) into
#                                    build/gpu_check-prebuilt/, for a GPU machine that lacks the
#                                    tools, or whose time is better not spent compiling
#
# Binaries: build/gpu_check-prebuilt/ when it exists and was built from the same sources (a hash of
# include/, tests/cuda/ and benchmarks/cuda_kernels.cu); else they are built on the spot in
# build/gpu_check-build/ (only the two targets, CMAKE_CUDA_ARCHITECTURES=90, -j16), which needs
# cmake >= 3.25, nvcc, Eigen 3.4, xtl, xsimd, Catch2 3 (tests) and Google Benchmark (bench); what
# is missing is named. The prebuilt programs link the CUDA 13 runtime (needs a driver >= 580);
# their non-system libraries are copied beside them.
#
# Environment: OUT (output folder), RSPO_GPU_CHECK_BUDGET_S (the whole run, build included;
# default 360), RSPO_JOBS (default 16; 2 for --prepare), CUDA_ARCHS (default 90, the H100/H200),
# RSPO_GPU_CHECK_BUILD and RSPO_GPU_CHECK_PREBUILT (the two folders, relative to the repository).
set -uo pipefail  # not -e: a failing step is recorded and the next one still runs

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
archs="${CUDA_ARCHS:-90}"
jobs="${RSPO_JOBS:-16}"
budget="${RSPO_GPU_CHECK_BUDGET_S:-360}"
build_dir="${RSPO_GPU_CHECK_BUILD:-build/gpu_check-build}"
prebuilt="${RSPO_GPU_CHECK_PREBUILT:-build/gpu_check-prebuilt}"
target_filter="/8192x128256"
other_filter="/(2048x32000|512x128256)"
start=$SECONDS
summary=()
original_ld_path="${LD_LIBRARY_PATH:-}"

say() { printf '%s\n' "$*"; }
section() { printf '\n==== %s ====\n' "$*"; }
remaining() { echo $((budget - (SECONDS - start))); }

# Hash of what the two programs are compiled from: a prebuilt copy is used only if it matches.
source_stamp() {
  find include tests/cuda benchmarks/cuda_kernels.cu -type f \
    \( -name '*.hpp' -o -name '*.cuh' -o -name '*.cu' -o -name '*.h' \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

find_nvcc() {
  if command -v nvcc >/dev/null 2>&1; then
    command -v nvcc
  elif [ -x /usr/local/cuda/bin/nvcc ]; then
    echo /usr/local/cuda/bin/nvcc
  fi
}

# cmake_ok: cmake exists and is >= 3.25 (the project's minimum).
cmake_ok() {
  command -v cmake >/dev/null 2>&1 || return 1
  local v
  v="$(cmake --version | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')"
  [ -n "$v" ] && [ "$(printf '%s\n3.25\n' "$v" | sort -V | head -1)" = "3.25" ]
}

# missing_packages <log>: what a failed CMake configure could not find.
missing_packages() {
  local found
  found="$({
    grep -oE 'provided by "[^"]+"' "$1" | cut -d'"' -f2
    grep -oE 'Could NOT find [A-Za-z0-9_]+' "$1" | awk '{print $4}'
    grep -q 'No CMAKE_CUDA_COMPILER' "$1" && echo nvcc
  } 2>/dev/null | sort -u | tr '\n' ' ')"
  echo "${found:-nothing named by CMake} "
}

# build_here <log dir> [<limit s>]: configures and builds test_cuda_kernels and bench_cuda_kernels
# in $build_dir, each build step within <limit> seconds (0, the default: no limit); sets tests_bin /
# bench_bin to what was built. Returns 1 if neither was.
build_here() {
  local logs="$1" limit="${2:-0}" nvcc gen=() cc=()
  tests_bin="" bench_bin=""
  export LD_LIBRARY_PATH="$original_ld_path"  # not the prebuilt set's runtime for these programs
  nvcc="$(find_nvcc)"
  if ! cmake_ok; then
    say "cannot build here: cmake >= 3.25 is missing ($(cmake --version 2>/dev/null | head -1 || echo 'no cmake'))"
    return 1
  fi
  if [ -z "$nvcc" ]; then
    say "cannot build here: nvcc is missing (not in PATH, not /usr/local/cuda/bin/nvcc)"
    return 1
  fi
  cc=(-DCMAKE_CUDA_COMPILER="$nvcc")
  if command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/tests/CMakeCache.txt" ]; then gen=(-G Ninja); fi
  # Release, no -Werror (a different compiler's new warning must not stop a measurement), no torch.
  if cmake -S . -B "$build_dir/tests" "${gen[@]}" "${cc[@]}" -DCMAKE_BUILD_TYPE=Release \
       -DRSPO_CUDA=ON -DRSPO_BUILD_EXAMPLES=OFF -DRSPO_TORCH=OFF -DRSPO_WARNINGS_AS_ERRORS=OFF \
       -DCMAKE_CUDA_ARCHITECTURES="$archs" >"$logs/configure_tests.log" 2>&1 &&
     timeout "$limit" cmake --build "$build_dir/tests" --target test_cuda_kernels -j "$jobs" \
       >"$logs/build_tests.log" 2>&1; then
    tests_bin="$build_dir/tests/tests/cuda/test_cuda_kernels"
  else
    say "test_cuda_kernels not built; missing: $(missing_packages "$logs/configure_tests.log")(logs: $logs/configure_tests.log, build_tests.log)"
  fi
  gen=()
  if command -v ninja >/dev/null 2>&1 && [ ! -f "$build_dir/bench/CMakeCache.txt" ]; then gen=(-G Ninja); fi
  if cmake -S benchmarks -B "$build_dir/bench" "${gen[@]}" "${cc[@]}" -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" \
       >"$logs/configure_bench.log" 2>&1 &&
     timeout "$limit" cmake --build "$build_dir/bench" --target bench_cuda_kernels -j "$jobs" \
       >"$logs/build_bench.log" 2>&1; then
    bench_bin="$build_dir/bench/bench_cuda_kernels"
  else
    say "bench_cuda_kernels not built; missing: $(missing_packages "$logs/configure_bench.log")(logs: $logs/configure_bench.log, build_bench.log)"
  fi
  [ -n "$tests_bin" ] || [ -n "$bench_bin" ]
}

# ---------------------------------------------------------------------------------------------
# --prepare: build here, copy the programs and their non-system libraries into $prebuilt.
# ---------------------------------------------------------------------------------------------
prepare() {
  jobs="${RSPO_JOBS:-2}"
  mkdir -p build/gpu_check-prepare-logs
  section "Building test_cuda_kernels and bench_cuda_kernels for sm_${archs} in $build_dir"
  build_here build/gpu_check-prepare-logs || exit 1
  if [ -z "$tests_bin" ] || [ -z "$bench_bin" ]; then
    say "error: both programs are needed for a prebuilt set" >&2
    exit 1
  fi
  rm -rf "$prebuilt"
  mkdir -p "$prebuilt/bin" "$prebuilt/lib"
  cp "$tests_bin" "$bench_bin" "$prebuilt/bin/"
  # The CUDA runtime and Google Benchmark are not on every GPU machine; the C/C++ runtime is.
  local lib
  for lib in $(ldd "$prebuilt"/bin/* | awk '/=>/ {print $3}' | grep -E 'libcudart|libbenchmark' | sort -u); do
    cp -L "$lib" "$prebuilt/lib/"
  done
  source_stamp >"$prebuilt/stamp"
  {
    echo "built $(date -u +%FT%TZ) on $(uname -n) for sm_${archs}"
    "$(find_nvcc)" --version | tail -1
    c++ --version | head -1
  } >"$prebuilt/info.txt"
  section "Prebuilt set ready: $prebuilt ($(du -sh "$prebuilt" | cut -f1))"
  say "Carry it to the GPU machine with the run tool's carry: [\"$prebuilt\"]; then run scripts/gpu_check.sh there."
  ls -la "$prebuilt/bin" "$prebuilt/lib"
}

# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------
# run_step <name> <cap s> <log> <command...>: runs the command with a limit of min(cap, the time
# left), its output to the terminal and <log>, and records the outcome in the summary.
run_step() {
  local name="$1" cap="$2" log="$3" left limit t0 rc what
  shift 3
  left="$(remaining)"
  limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 15 ]; then
    summary+=("$name: not run (the time budget is spent)")
    return 99
  fi
  section "$name (limit ${limit}s)"
  t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  case "$rc" in
    0) what="ok" ;;
    77) what="skipped (exit 77: no device usable)" ;;
    124 | 137) what="TIMED OUT at ${limit}s" ;;
    *) what="FAILED (exit $rc)" ;;
  esac
  summary+=("$name: $what in $((SECONDS - t0))s; log: $log")
  return "$rc"
}

check() {
  local out="${OUT:-$root/build/gpu_check}" gpu_seen=0 using="" stamp torch_ok=0 rc
  mkdir -p "$out"
  section "Environment (also in $out/env.txt)"
  {
    echo "date: $(date -u +%FT%TZ); host: $(uname -n); cores: $(nproc); budget: ${budget}s"
    if command -v nvidia-smi >/dev/null 2>&1; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory,clocks.max.sm --format=csv
      nvidia-smi
    else
      echo "nvidia-smi: missing"
    fi
    echo "nvcc: $( (n="$(find_nvcc)"; [ -n "$n" ] && "$n" --version | tail -1) || echo missing)"
    echo "cmake: $(cmake --version 2>/dev/null | head -1 || echo missing)$(cmake_ok || echo ' (need >= 3.25)')"
    echo "c++: $(c++ --version 2>/dev/null | head -1 || echo missing)"
    echo "python3: $(python3 --version 2>&1 || echo missing)"
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1
  } >"$out/env.txt" 2>&1
  sed -n '1,3p' "$out/env.txt"
  grep -E '^(nvcc|cmake|c\+\+|python3|torch|nvidia-smi)' "$out/env.txt"
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu_seen=1; fi

  section "Programs"
  tests_bin="" bench_bin=""
  if [ -f "$prebuilt/stamp" ]; then
    stamp="$(source_stamp)"
    if [ "$(cat "$prebuilt/stamp")" = "$stamp" ]; then
      local missing=""
      if command -v ldd >/dev/null 2>&1; then
        missing="$(LD_LIBRARY_PATH="$root/$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$prebuilt"/bin/* 2>&1 | grep 'not found' || true)"
      fi
      if [ -z "$missing" ]; then
        tests_bin="$prebuilt/bin/test_cuda_kernels"
        bench_bin="$prebuilt/bin/bench_cuda_kernels"
        using="prebuilt"
        export LD_LIBRARY_PATH="$root/$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        say "using $prebuilt ($(head -1 "$prebuilt/info.txt"))"
      else
        say "$prebuilt: libraries missing on this machine: $missing"
      fi
    else
      say "$prebuilt is stale (built from other sources than these): not used; rerun --prepare"
    fi
  else
    say "no $prebuilt (scripts/gpu_check.sh --prepare builds one where the tools are; carry it here)"
  fi
  local build_limit=$(($(remaining) < 200 ? $(remaining) : 200))
  if [ -z "$using" ]; then
    local t0=$SECONDS
    say "building here (each build step within ${build_limit}s)..."
    if build_here "$out" "$build_limit"; then using="built here"; fi
    summary+=("build here: ${using:-FAILED} in $((SECONDS - t0))s")
  fi

  # 1. Tests. A prebuilt set that sees no device on a machine that has one: its CUDA 13 runtime is
  # probably newer than the driver; build here instead, if possible, and try again.
  if [ -n "$tests_bin" ]; then
    run_step "CUDA kernel tests (test_cuda_kernels)" 120 "$out/test_cuda_kernels.txt" "$tests_bin"
    rc=$?
    if [ "$rc" -eq 77 ] && [ "$using" = "prebuilt" ] && [ "$gpu_seen" -eq 1 ]; then
      say "the prebuilt programs see no device although nvidia-smi lists one (driver older than CUDA 13?): building here"
      build_limit=$(($(remaining) < 200 ? $(remaining) : 200))
      if build_here "$out" "$build_limit"; then
        using="built here"
        [ -n "$tests_bin" ] && run_step "CUDA kernel tests, rebuilt" 120 "$out/test_cuda_kernels.txt" "$tests_bin"
      fi
    fi
  else
    summary+=("CUDA kernel tests: not run (no test_cuda_kernels)")
  fi

  # 2. The benchmark at the target shape.
  if [ -n "$bench_bin" ]; then
    run_step "bench_cuda_kernels at 8192x128256" 180 "$out/bench_target.txt" "$bench_bin" \
      "--benchmark_filter=$target_filter" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
      --benchmark_min_time=0.2 "--benchmark_out=$out/cuda_kernels_target.json" --benchmark_out_format=json
  else
    summary+=("bench_cuda_kernels: not run (not built)")
  fi

  # 3. torch eager and torch.compile at the target shape.
  if env LD_LIBRARY_PATH="$original_ld_path" python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    torch_ok=1
  fi
  if [ "$torch_ok" -eq 1 ]; then
    local json=()
    [ -s "$out/cuda_kernels_target.json" ] && json=(--json "$out/cuda_kernels_target.json")
    # torch with the machine's own library path: not the prebuilt set's CUDA runtime.
    run_step "torch eager vs torch.compile at 8192x128256" 180 "$out/torch_compile.txt" \
      env LD_LIBRARY_PATH="$original_ld_path" python3 benchmarks/compare_torch_compile.py "${json[@]}" --shapes 8192x128256 --repeats 20 \
      --out "$out/torch_compile.json"
  else
    summary+=("torch comparison: not run (no importable torch with CUDA; see $out/env.txt)")
  fi

  # 4. The other shapes, with what is left.
  if [ -n "$bench_bin" ]; then
    run_step "bench_cuda_kernels at 2048x32000 and 512x128256" 150 "$out/bench_other.txt" "$bench_bin" \
      "--benchmark_filter=$other_filter" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      --benchmark_min_time=0.1 "--benchmark_out=$out/cuda_kernels_other.json" --benchmark_out_format=json
  fi

  section "Summary (${SECONDS}s of ${budget}s; programs: ${using:-none}; outputs in $out)"
  printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
  # The tables again, last, where a truncated log tail still shows them.
  local f
  for f in "$out/bench_target.txt" "$out/bench_other.txt"; do
    [ -f "$f" ] && sed -n '/^rspo CUDA kernels on/,$p' "$f" | tee -a "$out/summary.txt"
  done
  [ -f "$out/torch_compile.txt" ] && sed -n '/^torch .* on /,$p' "$out/torch_compile.txt" | tee -a "$out/summary.txt"
  return 0
}

case "${1:-}" in
  --prepare) prepare ;;
  "") check ;;
  -h | --help) sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
  *)
    echo "unknown argument: $1" >&2
    exit 2
    ;;
esac
