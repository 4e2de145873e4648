// A histogram in dynamic shared memory (extern __shared__, size given at launch): the block
// zeroes nbins counters, counts its grid-stride share of the input with atom.shared.add, then
// flushes the non-zero bins to the global histogram with atom.global.add. Also reports
// %dynamic_smem_size through inline asm so the launch's dynamic size is checked. A static
// __shared__ counter next to the dynamic array checks that the two do not overlap.
#include <cstdint>

extern "C" __global__ void histogram_dyn(const uint32_t* __restrict__ data, int n, int nbins,
                                         uint32_t* __restrict__ hist, uint32_t* __restrict__ dyn_size,
                                         uint32_t* __restrict__ total) {
  extern __shared__ uint32_t sh[];
  __shared__ uint32_t count;
  if (threadIdx.x == 0) count = 0;
  for (int b = threadIdx.x; b < nbins; b += blockDim.x) sh[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    uint32_t v = data[i];
    atomicAdd(&sh[(v * 2654435761u >> 7) % (uint32_t)nbins], 1u);
    atomicAdd(&count, 1u);
  }
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(total, count);
  for (int b = threadIdx.x; b < nbins; b += blockDim.x) {
    uint32_t c = sh[b];
    if (c) atomicAdd(&hist[b], c);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    uint32_t d;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(d));
    *dyn_size = d;
  }
}
