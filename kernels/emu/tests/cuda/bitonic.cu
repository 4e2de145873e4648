// A bitonic sorting network in shared memory: each block sorts 2*blockDim.x (key, value) pairs,
// keys u32 ascending, ties broken by value, with compare-exchange stages separated by
// __syncthreads (two elements per thread, the partner found with an xor of the stage stride).
// Static shared memory, sized for up to 1024 elements per block.
#include <cstdint>

__device__ __forceinline__ bool greater(uint32_t ka, uint32_t va, uint32_t kb, uint32_t vb) {
  return ka > kb || (ka == kb && va > vb);
}

extern "C" __global__ void bitonic_sort(const uint32_t* __restrict__ keys_in, uint32_t* __restrict__ keys_out,
                                        uint32_t* __restrict__ vals_out) {
  __shared__ uint32_t sk[1024];
  __shared__ uint32_t sv[1024];
  const int n = 2 * blockDim.x;
  const int base = blockIdx.x * n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    sk[i] = keys_in[base + i];
    sv[i] = i;
  }
  __syncthreads();
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      // thread t handles the pair (i, i + stride) where i skips the upper half of each stride block
      const int t = threadIdx.x;
      const int i = 2 * t - (t & (stride - 1));
      const int j = i + stride;
      const bool up = (i & size) == 0;
      const uint32_t ki = sk[i], kj = sk[j], vi = sv[i], vj = sv[j];
      if (greater(ki, vi, kj, vj) == up) {
        sk[i] = kj; sk[j] = ki;
        sv[i] = vj; sv[j] = vi;
      }
      __syncthreads();
    }
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    keys_out[base + i] = sk[i];
    vals_out[base + i] = sv[i];
  }
}
