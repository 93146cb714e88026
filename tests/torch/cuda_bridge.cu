// The CUDA kernels behind the torch adapter's CUDA path, compiled by nvcc without libtorch (see
// include/rspo/adapters/torch.hpp): built into test_torch_adapter when RSPO_TORCH_CUDA is on.
#define RSPO_TORCH_CUDA_IMPLEMENTATION
#include <rspo/adapters/torch.hpp>
