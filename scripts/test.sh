#!/usr/bin/env bash
# Builds and tests rspo. Build trees live under build/ (git-ignored).
#
#   scripts/test.sh               Release build (-Werror) in build/release, run ctest
#   scripts/test.sh --sanitize    Debug (-Og) + ASan/UBSan build in build/sanitize, run ctest
#   scripts/test.sh --clang       Release build with clang++ in build/clang, run ctest
#   scripts/test.sh --package     install build/release into build/install, build and run
#                                 tests/package against it
#   scripts/test.sh --benchmarks  build benchmarks/ in build/benchmarks, smoke-run each one
#
# Several flags may be given; they run in the order given. RSPO_JOBS overrides -j (default 2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="${RSPO_JOBS:-2}"

section() { printf '\n==== %s ====\n' "$*"; }

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# configure <source dir> <build dir> [cmake args...]
# Picks Ninja when available, but only for a fresh build dir (CMake refuses to switch generators).
configure() {
  local src="$1" dir="$2"
  shift 2
  local gen=()
  if [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    gen=(-G Ninja)
  fi
  cmake -S "$src" -B "$dir" "${gen[@]}" "$@"
}

# build_and_test <build dir>: build everything, then run ctest (failing if no tests were found,
# so broken test discovery cannot pass silently).
build_and_test() {
  local dir="$1"
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs"
}

configure_release() {
  configure . build/release -DCMAKE_BUILD_TYPE=Release -DRSPO_WARNINGS_AS_ERRORS=ON
}

run_release() {
  section "Release build + tests (build/release)"
  configure_release
  build_and_test build/release
}

run_sanitize() {
  section "ASan + UBSan build + tests (build/sanitize, Debug = -Og)"
  configure . build/sanitize -DCMAKE_BUILD_TYPE=Debug -DRSPO_SANITIZE=ON -DRSPO_WARNINGS_AS_ERRORS=ON
  # halt_on_error/abort: make any report fail the test; detect_leaks: ASan's leak checker.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    build_and_test build/sanitize
}

run_clang() {
  section "Release build + tests with clang++ (build/clang)"
  if ! command -v clang++ >/dev/null 2>&1; then
    echo "clang++ not found; skipping the clang build."
    return 0
  fi
  configure . build/clang -DCMAKE_BUILD_TYPE=Release -DRSPO_WARNINGS_AS_ERRORS=ON \
    -DCMAKE_CXX_COMPILER=clang++
  build_and_test build/clang
}

run_package() {
  section "Install + find_package consumer (build/install, build/package)"
  configure_release
  # Fresh prefix and consumer build, so stale files from an earlier install cannot hide a bug.
  rm -rf build/install build/package
  cmake --install build/release --prefix build/install
  local prefix="$root/build/install"
  local f
  for f in include/rspo/version.hpp lib/cmake/rspo/rspoConfig.cmake \
           lib/cmake/rspo/rspoConfigVersion.cmake lib/cmake/rspo/rspoTargets.cmake; do
    if [ ! -f "$prefix/$f" ]; then
      echo "error: installed package lacks $f" >&2
      exit 1
    fi
  done
  configure tests/package build/package -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  # Make sure the consumer really used the package we just installed.
  local found
  found="$(sed -n 's/^rspo_DIR:PATH=//p' build/package/CMakeCache.txt)"
  if [ "$found" != "$prefix/lib/cmake/rspo" ]; then
    echo "error: consumer found rspo in '$found', expected $prefix/lib/cmake/rspo" >&2
    exit 1
  fi
  build_and_test build/package
}

run_benchmarks() {
  section "Benchmarks build + smoke run (build/benchmarks)"
  configure benchmarks build/benchmarks -DCMAKE_BUILD_TYPE=Release
  cmake --build build/benchmarks -j "$jobs"
  local count
  count="$(ctest --test-dir build/benchmarks -N | sed -n 's/^Total Tests: //p')"
  if [ "${count:-0}" -eq 0 ]; then
    echo "No benchmarks registered (benchmarks/CMakeLists.txt); nothing to run."
    return 0
  fi
  # Serially and verbosely: each benchmark runs briefly (--benchmark_min_time=0.01, see
  # benchmarks/CMakeLists.txt) and its table ends up in the log.
  ctest --test-dir build/benchmarks --output-on-failure -V -j 1
}

requested="$*"
if [ "$#" -eq 0 ]; then
  set -- --release
fi
for arg in "$@"; do
  case "$arg" in
    --release) run_release ;;
    --sanitize) run_sanitize ;;
    --clang) run_clang ;;
    --package) run_package ;;
    --benchmarks) run_benchmarks ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done
section "OK: scripts/test.sh ${requested:-(release)}"
