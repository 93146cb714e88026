#include <rspo/version.hpp>

#include <catch2/catch_test_macros.hpp>

#include <string>

#ifndef RSPO_EXPECTED_VERSION
#error "RSPO_EXPECTED_VERSION must be defined by tests/CMakeLists.txt"
#endif

TEST_CASE("version.hpp matches the CMake project version", "[version]") {
  const std::string header_version = std::to_string(rspo::version_major) + "." +
                                     std::to_string(rspo::version_minor) + "." +
                                     std::to_string(rspo::version_patch);
  CHECK(header_version == RSPO_EXPECTED_VERSION);
}

TEST_CASE("version numbers are usable in constant expressions", "[version]") {
  static_assert(rspo::version_major >= 0 && rspo::version_minor >= 0 && rspo::version_patch >= 0);
  STATIC_CHECK(rspo::version_major == 0);  // 0.x: API not yet stable
}
