// Generic addressing: __noinline__ device functions take plain pointers, so the compiler must use
// generic ld/st (no state space) on addresses that point into shared, global or local memory
// (cvta.shared / cvta.local / cvta.global windows). Also a struct passed by value
// (.param .align 8 .b8 p[24]) and read field by field. (isspacep lives in isspacep.cu.)
#include <cstdint>

__device__ __noinline__ void accumulate(uint32_t* p, uint32_t v) { *p += v; }
__device__ __noinline__ uint32_t sum_n(const uint32_t* p, int n) {
  uint32_t s = 0;
  for (int k = 0; k < n; ++k) s += p[k] * (uint32_t)(k + 1);
  return s;
}

struct Params {
  uint32_t mul;
  float scale;
  unsigned long long add;
  int16_t shift;
  uint8_t flag;
};

extern "C" __global__ void generic_ptr(const uint32_t* __restrict__ in, uint32_t* __restrict__ gsum, Params prm,
                                       uint32_t* __restrict__ out) {
  __shared__ uint32_t ssum[4];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  if (t < 4) ssum[t] = 0;
  __syncthreads();
  uint32_t loc[8];
  for (int k = 0; k < 8; ++k) loc[k] = in[i] ^ (uint32_t)k;
  const uint32_t v = in[i] * prm.mul + (uint32_t)prm.add;
  if (t < 4) accumulate(&ssum[t], v);  // generic load + store into shared (one thread per slot)
  __syncthreads();
  uint32_t* o = out + 8 * i;
  o[0] = 1u;
  o[1] = 2u;
  o[2] = 4u;
  o[3] = sum_n(loc, 1 + (t & 7));           // generic loads from local memory
  o[4] = sum_n(&ssum[0], 4);                // generic loads from shared memory
  o[5] = sum_n(in + blockIdx.x * blockDim.x, 4);  // generic loads from global memory
  o[6] = __float_as_uint(prm.scale * (float)prm.shift) ^ (uint32_t)(prm.add >> 32);
  o[7] = prm.flag ? (v >> (prm.shift & 31)) : 0u;
  if (t == 0) accumulate(gsum + blockIdx.x, ssum[1] + ssum[3]);  // generic store into global
}
