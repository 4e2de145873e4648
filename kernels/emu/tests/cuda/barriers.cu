// CTA barriers beyond plain __syncthreads.
//  sync_reductions: __syncthreads_count / __syncthreads_and / __syncthreads_or (bar.red.popc.u32,
//    bar.red.and.pred, bar.red.or.pred) over data-dependent predicates; 3 results per thread.
//  named_barriers: producer/consumer hand-off through named barriers in inline asm. Warps 0-1
//    (producers) fill a shared buffer and `bar.arrive 1, 128`; warps 2-3 (consumers)
//    `bar.sync 1, 128`, read it, and write the result. Then all four warps meet at
//    `bar.sync 2, 128`, warps 2-3 write back a second buffer and `bar.arrive 3, 128`, warps 0-1
//    `bar.sync 3, 128` and read that. blockDim.x must be 128.
#include <cstdint>

extern "C" __global__ void sync_reductions(const uint32_t* __restrict__ in, uint32_t* __restrict__ out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const uint32_t v = in[t];
  const int c = __syncthreads_count(v & 1u);
  const int a = __syncthreads_and(v != 0x12345678u);
  const int o = __syncthreads_or((v & 0xfffu) == 0x7u);
  out[3 * t] = (uint32_t)c;
  out[3 * t + 1] = (uint32_t)a;
  out[3 * t + 2] = (uint32_t)o;
}

extern "C" __global__ void __launch_bounds__(128) named_barriers(const uint32_t* __restrict__ in,
                                                                 uint32_t* __restrict__ out) {
  __shared__ uint32_t buf[64];
  __shared__ uint32_t back[64];
  const int t = threadIdx.x;
  const uint32_t* src = in + blockIdx.x * 128;
  uint32_t* dst = out + blockIdx.x * 128;
  if (t < 64) {
    buf[t] = src[t] * 3u + 1u;
    asm volatile("bar.arrive 1, 128;" ::: "memory");
  } else {
    asm volatile("bar.sync 1, 128;" ::: "memory");
    dst[t] = buf[(t - 64) ^ 5] + src[t];
  }
  asm volatile("bar.sync 2, 128;" ::: "memory");
  if (t >= 64) {
    back[t - 64] = src[t] ^ 0xdeadbeefu;
    asm volatile("bar.arrive 3, 128;" ::: "memory");
  } else {
    asm volatile("bar.sync 3, 128;" ::: "memory");
    dst[t] = back[63 - t] + buf[t];
  }
}
