// isspacep.{shared,global,local} (__isShared / __isGlobal / __isLocal) on generic addresses of
// shared, global and local objects, through a __noinline__ function so the space is unknown at
// compile time. out[3 * t + k]: bit 0 shared, bit 1 global, bit 2 local, for k = shared object,
// global pointer, local array element.
#include <cstdint>

__device__ __noinline__ uint32_t classify(const void* p) {
  return (__isShared(p) ? 1u : 0u) | (__isGlobal(p) ? 2u : 0u) | (__isLocal(p) ? 4u : 0u);
}

extern "C" __global__ void isspacep_probe(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  __shared__ uint32_t s[32];
  const int t = threadIdx.x;
  uint32_t loc[8];
  for (int k = 0; k < 8; ++k) loc[k] = in[t] + (uint32_t)k;
  s[t] = in[t];
  __syncwarp();
  out[3 * t] = classify(&s[t]);
  out[3 * t + 1] = classify(in + t);
  out[3 * t + 2] = classify(&loc[in[t] & 7]) + (loc[in[t] & 7] - loc[0]) * 8u;
}
