#pragma once

// rspo's version. Keep in sync with project(... VERSION ...) in the top-level CMakeLists.txt;
// configuring fails if the two differ.

namespace rspo {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;

}  // namespace rspo
