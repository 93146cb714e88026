# The optional CUDA part: rspo's CUDA kernels are header-only (include/rspo/kernels/cuda/*.cuh),
# so CUDA is only needed to build their tests (tests/cuda). Included by the top-level
# CMakeLists.txt; sets the normal variable RSPO_CUDA to ON or OFF for the rest of the build.
#
#   -DRSPO_CUDA=AUTO (default)  build the CUDA tests when a working CUDA compiler is found
#   -DRSPO_CUDA=ON              require one (configure fails without it)
#   -DRSPO_CUDA=OFF             never
#
# Architectures: CMAKE_CUDA_ARCHITECTURES if given (or the CUDAARCHS environment variable), else
# 80;90 (A100, H100/H200): two targets keep the test's compile time small.
#
# benchmarks/CMakeLists.txt shares the architectures default through the function below; with an
# installed rspo it includes this file with RSPO_CUDA_FUNCTIONS_ONLY set, which stops after it.

# rspo_cuda_default_architectures(): before enable_language(CUDA), sets the cache entry
# CMAKE_CUDA_ARCHITECTURES to 80;90 unless the user chose architectures (the variable or CUDAARCHS);
# otherwise CMake would take nvcc's own default, which is neither of the GPUs rspo targets.
function(rspo_cuda_default_architectures)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
    set(CMAKE_CUDA_ARCHITECTURES 80 90 CACHE STRING "CUDA architectures for rspo's CUDA targets")
  endif()
endfunction()

if(RSPO_CUDA_FUNCTIONS_ONLY)
  return()
endif()

set(RSPO_CUDA AUTO CACHE STRING "Build rspo's CUDA kernel tests: AUTO (when nvcc is found), ON or OFF")
set_property(CACHE RSPO_CUDA PROPERTY STRINGS AUTO ON OFF)

string(TOUPPER "$CACHE{RSPO_CUDA}" _rspo_cuda_request)
if(_rspo_cuda_request MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(_rspo_cuda_request ON)
elseif(_rspo_cuda_request MATCHES "^(OFF|NO|FALSE|N|0)$")
  set(_rspo_cuda_request OFF)
elseif(NOT _rspo_cuda_request STREQUAL "AUTO")
  message(FATAL_ERROR "rspo: RSPO_CUDA must be AUTO, ON or OFF, not '$CACHE{RSPO_CUDA}'")
endif()

# From here on RSPO_CUDA (a normal variable, shadowing the cache entry) says whether CUDA is used.
set(RSPO_CUDA OFF)
if(_rspo_cuda_request STREQUAL "OFF")
  message(STATUS "rspo: RSPO_CUDA=OFF: the CUDA tests are not built")
elseif(NOT RSPO_BUILD_TESTS)
  if(_rspo_cuda_request STREQUAL "ON")
    message(STATUS "rspo: RSPO_CUDA=ON but RSPO_BUILD_TESTS is OFF: nothing CUDA to build")
  endif()
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    rspo_cuda_default_architectures()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(RSPO_CUDA ON)
    message(STATUS "rspo: CUDA tests enabled (${CMAKE_CUDA_COMPILER}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(_rspo_cuda_request STREQUAL "ON")
    message(FATAL_ERROR "rspo: RSPO_CUDA=ON but no working CUDA compiler was found "
                        "(set CMAKE_CUDA_COMPILER or CUDACXX)")
  else()
    message(STATUS "rspo: no CUDA compiler found; the CUDA tests are not built")
  endif()
endif()
