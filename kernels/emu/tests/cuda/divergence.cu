// Control flow and per-thread local memory.
//  divergent_loops: per-lane data-dependent trip counts (a Collatz walk capped at `cap` steps),
//    nested divergence (an inner loop whose bound depends on the lane, inside an if inside the
//    outer loop), break and continue, and a warp shuffle after everything reconverges.
//  local_array: a 24-entry per-thread array indexed with data-dependent indices (lives in .local
//    memory with %SPL), filled, permuted by an in-place insertion sort, and read back at indices
//    taken from the input.
//  masked_shfl: shuffles and a popc of __activemask() inside both sides of a data-dependent
//    if/else, each with the branch's own lane mask (legal: every source lane is in the mask).
#include <cstdint>

extern "C" __global__ void divergent_loops(const uint32_t* __restrict__ in, int n, int cap,
                                           uint32_t* __restrict__ out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  uint32_t steps = 0, acc = 0, x = t < n ? in[t] : 1u;
  if (t < n) {
    uint32_t v = x % 1000u + 1u;
    for (int it = 0; it < cap; ++it) {
      if (v == 1u) break;
      ++steps;
      if (v & 1u) {
        v = 3u * v + 1u;
        // nested divergence: inner trip count depends on the value
        for (uint32_t k = 0; k < (v & 7u); ++k) {
          if (k == 5u) continue;
          acc += k * v;
        }
        continue;
      }
      v >>= 1;
      if ((v & 15u) == 3u) acc ^= v << 3;
    }
    acc += v;
  }
  // everyone reconverges here
  const uint32_t nb = __shfl_down_sync(0xffffffffu, steps, 1);
  if (t < n) {
    out[3 * t] = steps;
    out[3 * t + 1] = acc;
    out[3 * t + 2] = nb;
  }
}

extern "C" __global__ void local_array(const uint32_t* __restrict__ in, int n, uint32_t* __restrict__ out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n) return;
  uint32_t arr[24];
  const uint32_t s = in[t];
  for (int i = 0; i < 24; ++i) arr[i] = (s >> (i % 8)) * 2654435761u + (uint32_t)i;
  // scatter with data-dependent indices
  for (int i = 0; i < 24; ++i) {
    const uint32_t j = (s + (uint32_t)i * 7u) % 24u;
    const uint32_t tmp = arr[i];
    arr[i] = arr[j];
    arr[j] = tmp;
  }
  // insertion sort on the prefix of length 8 + s % 17
  const int len = 8 + (int)(s % 17u);
  for (int i = 1; i < len; ++i) {
    const uint32_t key = arr[i];
    int j = i - 1;
    while (j >= 0 && arr[j] > key) {
      arr[j + 1] = arr[j];
      --j;
    }
    arr[j + 1] = key;
  }
  out[4 * t] = arr[s % 24u];
  out[4 * t + 1] = arr[(s >> 8) % 24u];
  out[4 * t + 2] = arr[0];
  out[4 * t + 3] = arr[len - 1];
}

extern "C" __global__ void masked_shfl(const uint32_t* __restrict__ in, uint32_t* __restrict__ out,
                                       uint32_t* __restrict__ counter) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const uint32_t v = in[t];
  uint32_t r;
  if (v % 3u != 0u) {
    const unsigned m = __activemask();
    const int leader = __ffs(m) - 1;
    r = __shfl_sync(m, v, leader) + __shfl_xor_sync(m, v, 0) * 3u;
    atomicAdd(counter, 1u);
  } else {
    const unsigned m = __activemask();
    r = (uint32_t)__popc(m) * 1000u + __shfl_sync(m, v, 31 - __clz(m));
    atomicAdd(counter + 1, 1u);
  }
  out[t] = r;
}
