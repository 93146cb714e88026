# The optional libtorch part: rspo's torch adapters are header-only (include/rspo/adapters/torch.hpp,
# include/rspo/adapters/torch_sequence_policy.hpp), so libtorch is only needed to build their tests
# (tests/torch), the example examples/torch_rspo and the compiled example of docs/integration.md.
# Included by the top-level CMakeLists.txt after rspoCuda.cmake; sets the normal variables
# RSPO_TORCH (the torch parts are built) and RSPO_TORCH_CUDA (libtorch has CUDA and nvcc was found:
# the adapter's CUDA path is built too, its kernels in an nvcc-compiled bridge file; see
# include/rspo/adapters/torch.hpp) to ON or OFF. RSPO_TORCH also needs libtorch's headers to
# compile as C++20 with this compiler, which is tried once per build tree (libtorch 1.13's do with
# g++ 12, not with clang 14).
#
#   -DRSPO_TORCH=AUTO (default)  build the torch parts when libtorch is found
#   -DRSPO_TORCH=ON              require libtorch (configure fails without it)
#   -DRSPO_TORCH=OFF             never (as does -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON)
#
# Where libtorch is looked for: Torch_DIR or CMAKE_PREFIX_PATH if given, the system's package
# directories (Debian's libtorch-dev: /usr/lib/<triplet>/cmake/Torch), then the prefix that the
# Python interpreter's torch reports (torch.utils.cmake_prefix_path: a pip or conda install).

# rspo_torch_headers_compile(<result>): after find_package(Torch) found the target `torch`, sets the
# cache variable <result> to whether libtorch's headers compile as C++20 with this compiler (rspo
# is C++20; libtorch 1.13's ATen/core/List.h does with g++ 12 but not with clang 14 or nvcc). Tried
# once per build tree. benchmarks/CMakeLists.txt shares it by including this file with
# RSPO_TORCH_FUNCTIONS_ONLY set, which stops after the function.
function(rspo_torch_headers_compile result)
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)  # compile only: linking is not in question
  try_compile(${result}
    SOURCE_FROM_CONTENT rspo_torch_probe.cpp "#include <ATen/ATen.h>\nint probe() { return static_cast<int>(at::ones({1}).dim()); }\n"
    LINK_LIBRARIES torch
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_EXTENSIONS OFF)
endfunction()

if(RSPO_TORCH_FUNCTIONS_ONLY)
  return()
endif()

set(RSPO_TORCH AUTO CACHE STRING "Build rspo's libtorch parts (adapter tests, examples/torch_rspo): AUTO (when libtorch is found), ON or OFF")
set_property(CACHE RSPO_TORCH PROPERTY STRINGS AUTO ON OFF)

string(TOUPPER "$CACHE{RSPO_TORCH}" _rspo_torch_request)
if(_rspo_torch_request MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(_rspo_torch_request ON)
elseif(_rspo_torch_request MATCHES "^(OFF|NO|FALSE|N|0)$")
  set(_rspo_torch_request OFF)
elseif(NOT _rspo_torch_request STREQUAL "AUTO")
  message(FATAL_ERROR "rspo: RSPO_TORCH must be AUTO, ON or OFF, not '$CACHE{RSPO_TORCH}'")
endif()

# From here on RSPO_TORCH (a normal variable, shadowing the cache entry) says whether torch is used.
set(RSPO_TORCH OFF)
set(RSPO_TORCH_CUDA OFF)
if(_rspo_torch_request STREQUAL "OFF")
  message(STATUS "rspo: RSPO_TORCH=OFF: the torch parts are not built")
elseif(NOT RSPO_BUILD_TESTS AND NOT RSPO_BUILD_EXAMPLES)
  if(_rspo_torch_request STREQUAL "ON")
    message(STATUS "rspo: RSPO_TORCH=ON but RSPO_BUILD_TESTS and RSPO_BUILD_EXAMPLES are OFF: nothing torch to build")
  endif()
elseif(CMAKE_DISABLE_FIND_PACKAGE_Torch)
  if(_rspo_torch_request STREQUAL "ON")
    message(FATAL_ERROR "rspo: RSPO_TORCH=ON contradicts CMAKE_DISABLE_FIND_PACKAGE_Torch=ON")
  endif()
  message(STATUS "rspo: CMAKE_DISABLE_FIND_PACKAGE_Torch: the torch parts are not built")
else()
  find_package(Torch QUIET)
  if(NOT Torch_FOUND)
    # A pip/conda torch keeps its CMake package inside the Python package.
    find_package(Python3 COMPONENTS Interpreter QUIET)
    if(Python3_Interpreter_FOUND)
      execute_process(
        COMMAND "${Python3_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
        OUTPUT_VARIABLE _rspo_torch_prefix
        OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE _rspo_torch_python_rc
        ERROR_QUIET)
      if(_rspo_torch_python_rc EQUAL 0 AND IS_DIRECTORY "${_rspo_torch_prefix}")
        find_package(Torch QUIET PATHS "${_rspo_torch_prefix}" NO_DEFAULT_PATH)
      endif()
    endif()
  endif()
  if(Torch_FOUND AND TARGET torch)
    rspo_torch_headers_compile(RSPO_TORCH_HEADERS_COMPILE)
  endif()
  if(Torch_FOUND AND TARGET torch AND NOT RSPO_TORCH_HEADERS_COMPILE)
    if(_rspo_torch_request STREQUAL "ON")
      message(FATAL_ERROR "rspo: RSPO_TORCH=ON but libtorch ${Torch_VERSION}'s headers do not compile as "
                          "C++20 with ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
    endif()
    message(STATUS "rspo: libtorch ${Torch_VERSION}'s headers do not compile as C++20 with "
                   "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}; the torch parts are not built")
  elseif(Torch_FOUND AND TARGET torch)
    set(RSPO_TORCH ON)
    # A CUDA build of libtorch links c10_cuda (TorchConfig.cmake appends it to TORCH_LIBRARIES).
    if(RSPO_CUDA AND (TARGET torch_cuda OR TARGET c10_cuda OR TORCH_LIBRARIES MATCHES "c10_cuda"))
      set(RSPO_TORCH_CUDA ON)
    endif()
    message(STATUS "rspo: torch parts enabled (libtorch ${Torch_VERSION} from ${Torch_DIR}; "
                   "CUDA path: ${RSPO_TORCH_CUDA})")
  elseif(_rspo_torch_request STREQUAL "ON")
    message(FATAL_ERROR "rspo: RSPO_TORCH=ON but libtorch was not found (set Torch_DIR or "
                        "CMAKE_PREFIX_PATH to the directory holding TorchConfig.cmake)")
  else()
    message(STATUS "rspo: libtorch not found; the torch parts are not built")
  endif()
endif()
