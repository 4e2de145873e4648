// Warp votes and warp-level collectives, converged and inside divergent branches.
//  warp_vote: __ballot_sync / __all_sync / __any_sync with the full mask; __activemask inside a
//    data-dependent branch (lanes whose value is odd) and votes with that mask there;
//    __match_any_sync / __match_all_sync on small keys; __reduce_add/min/max/and/or/xor_sync
//    (redux.sync), %laneid via inline asm. 16 u32 results per thread.
#include <cstdint>

extern "C" __global__ void warp_vote(const uint32_t* __restrict__ in, uint32_t* __restrict__ out,
                                     uint32_t* __restrict__ counter) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned full = 0xffffffffu;
  const uint32_t v = in[t];
  uint32_t lane;
  asm("mov.u32 %0, %%laneid;" : "=r"(lane));
  uint32_t* o = out + 16 * t;
  o[0] = __ballot_sync(full, v & 1u);
  o[1] = __all_sync(full, v > 0x08000000u);
  o[2] = __any_sync(full, v < 0x02000000u);
  o[3] = __match_any_sync(full, v & 7u);
  int pred;
  o[4] = __match_all_sync(full, v & 0x80000000u, &pred);
  o[5] = (uint32_t)pred;
  o[6] = __reduce_add_sync(full, v & 0xffffu);
  o[7] = __reduce_min_sync(full, v);
  o[8] = (uint32_t)__reduce_max_sync(full, (int)v);
  o[9] = __reduce_and_sync(full, v | 0x0f0f0f0fu);
  o[10] = __reduce_or_sync(full, v & 0x11111111u);
  o[11] = __reduce_xor_sync(full, v);
  o[12] = lane;
  uint32_t m = 0, b = 0, r = 0;
  if (v & 1u) {
    // divergent region: only the odd lanes are here
    m = __activemask();
    b = __ballot_sync(m, v & 2u);
    r = __reduce_add_sync(m, v >> 24);
    atomicAdd(counter, 1u);  // keeps this a real branch
  }
  o[13] = m;
  o[14] = b;
  o[15] = r;
}
