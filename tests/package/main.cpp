// Consumer smoke test for an installed rspo (see tests/package/CMakeLists.txt).
// Exit code 0 = the installed package is usable.
#include <rspo/version.hpp>

#include <cstdio>

namespace {

// Each check returns true on success and prints why on failure. Add real computations here
// (e.g. include <rspo/rspo.hpp> and solve a small problem) as the library grows.
bool check_version() {
  if (rspo::version_major != 0) {
    std::fprintf(stderr, "unexpected rspo::version_major %d\n", rspo::version_major);
    return false;
  }
  return true;
}

}  // namespace

int main() {
  bool ok = true;
  ok = check_version() && ok;
  std::printf("rspo %d.%d.%d package test: %s\n", rspo::version_major, rspo::version_minor,
              rspo::version_patch, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
