// Launch geometry and calls.
//  grid_ids: a 3-D grid of 3-D blocks; each thread writes %tid, %ctaid, %ntid, %nctaid (.x/.y/.z),
//    its linear ids and the result of a __noinline__ device function (a real PTX .func call with
//    .param arguments and a return value, called from a divergent branch and from converged
//    code) to out[16 * global_linear_id + k].
#include <cstdint>

__device__ __noinline__ uint32_t mix_fn(uint32_t a, uint32_t b, int rounds) {
  uint32_t h = a ^ 0x9e3779b9u;
  for (int r = 0; r < rounds; ++r) {
    h ^= b + 0x7f4a7c15u + (h << 6) + (h >> 2);
    b = b * 747796405u + 2891336453u;
  }
  return h;
}

extern "C" __global__ void grid_ids(uint32_t* __restrict__ out) {
  const uint32_t bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
  const uint32_t tx = threadIdx.x, ty = threadIdx.y, tz = threadIdx.z;
  const uint32_t nbx = gridDim.x, nby = gridDim.y, nbz = gridDim.z;
  const uint32_t ntx = blockDim.x, nty = blockDim.y, ntz = blockDim.z;
  const uint32_t block_lin = bx + nbx * (by + nby * bz);
  const uint32_t thread_lin = tx + ntx * (ty + nty * tz);
  const uint32_t g = block_lin * (ntx * nty * ntz) + thread_lin;
  uint32_t* o = out + 16 * g;
  o[0] = tx; o[1] = ty; o[2] = tz;
  o[3] = bx; o[4] = by; o[5] = bz;
  o[6] = ntx; o[7] = nty; o[8] = ntz;
  o[9] = nbx; o[10] = nby; o[11] = nbz;
  o[12] = g;
  uint32_t d = 0;
  if ((thread_lin % 3u) == 1u) d = mix_fn(g, block_lin, (int)(thread_lin % 5u));  // divergent call
  o[13] = d;
  o[14] = mix_fn(thread_lin, g, 3);  // converged call
  o[15] = nbz * 1000000u + nby * 10000u + nbx * 100u + ntz;
}
