// Atomics on global and shared memory.
//  atomics_global: every thread applies add (u32 ticket, u64, f32 with exactly representable
//                  values), min/max (s32, u32), and/or/xor (u32), exch, inc/dec with a wrap
//                  limit, a 32-bit atomicCAS loop (multiply by an odd factor) and a 64-bit
//                  atomicCAS loop (add) to a handful of global counters; the values returned by
//                  the ticket add, exch and inc are stored per thread (their multisets are
//                  deterministic, their order is not); red.global.add.u32 via inline asm.
//  atomics_shared: the same operations on shared-memory counters (atom.shared.*, plus
//                  atom.shared.add.u64), combined per
//                  block and written to out[blockIdx.x * 16 + k].
#include <cstdint>

struct Counters {
  uint32_t ticket;      // add u32 (+1)
  uint32_t addu;        // add u32
  unsigned long long addu64;
  float addf;           // add f32
  int mins;             // min s32
  int maxs;             // max s32
  uint32_t minu;        // min u32
  uint32_t maxu;        // max u32
  uint32_t and_;        // and
  uint32_t or_;         // or
  uint32_t xor_;        // xor
  uint32_t exch;        // exch
  uint32_t inc;         // atomicInc(limit)
  uint32_t dec;         // atomicDec(limit)
  uint32_t mul;         // CAS loop: *= odd
  uint32_t red;         // red.global.add (inline asm, no return value)
  unsigned long long cas64;  // CAS loop on 64 bits: += v
};

__device__ __forceinline__ void cas_mul(uint32_t* p, uint32_t f) {
  uint32_t old = *p, assumed;
  do {
    assumed = old;
    old = atomicCAS(p, assumed, assumed * f);
  } while (old != assumed);
}
__device__ __forceinline__ void cas_add64(unsigned long long* p, unsigned long long v) {
  unsigned long long old = *p, assumed;
  do {
    assumed = old;
    old = atomicCAS(p, assumed, assumed + v);
  } while (old != assumed);
}

extern "C" __global__ void atomics_global(const uint32_t* __restrict__ a, const int* __restrict__ s,
                                          const float* __restrict__ f, int n, uint32_t inc_limit,
                                          uint32_t dec_limit, Counters* c, uint32_t* tickets,
                                          uint32_t* exch_old, uint32_t* inc_old) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint32_t x = a[i];
  const int y = s[i];
  tickets[i] = atomicAdd(&c->ticket, 1u);
  atomicAdd(&c->addu, x);
  atomicAdd(&c->addu64, (unsigned long long)x * 977u);
  atomicAdd(&c->addf, f[i]);
  atomicMin(&c->mins, y);
  atomicMax(&c->maxs, y);
  atomicMin(&c->minu, x);
  atomicMax(&c->maxu, x);
  atomicAnd(&c->and_, x | 0x00ff0f00u);
  atomicOr(&c->or_, x & 0x10204080u);
  atomicXor(&c->xor_, x);
  exch_old[i] = atomicExch(&c->exch, x);
  inc_old[i] = atomicInc(&c->inc, inc_limit);
  atomicDec(&c->dec, dec_limit);
  cas_mul(&c->mul, x | 1u);
  cas_add64(&c->cas64, ((unsigned long long)x << 20) + (unsigned)y);
  asm volatile("red.global.add.u32 [%0], %1;" ::"l"(&c->red), "r"(x >> 16) : "memory");
}

// out[blockIdx.x * 16 + k]; one block handles blockDim.x consecutive elements (all valid).
extern "C" __global__ void atomics_shared(const uint32_t* __restrict__ a, const int* __restrict__ s,
                                          const float* __restrict__ f, uint32_t inc_limit,
                                          uint32_t* __restrict__ out, uint32_t* __restrict__ tickets) {
  __shared__ uint32_t cu[12];
  __shared__ int ci[2];
  __shared__ float cf;
  __shared__ unsigned long long c64;
  __shared__ unsigned long long a64;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (threadIdx.x == 0) {
    cu[0] = 0; cu[1] = 0; cu[2] = 0xffffffffu; cu[3] = 0; cu[4] = 0xffffffffu; cu[5] = 0;
    cu[6] = 0; cu[7] = 0; cu[8] = 1; cu[9] = 12345u; cu[10] = 0; cu[11] = 0;
    ci[0] = INT_MAX; ci[1] = INT_MIN; cf = 0.0f; c64 = 0; a64 = 5;
  }
  __syncthreads();
  const uint32_t x = a[i];
  const int y = s[i];
  tickets[i] = atomicAdd(&cu[0], 1u);
  atomicAdd(&cu[1], x);
  atomicMin(&cu[2], x);
  atomicMax(&cu[3], x);
  atomicAnd(&cu[4], x | 0xf0f0f0f0u);
  atomicOr(&cu[5], x & 0x01010101u);
  atomicXor(&cu[6], x);
  atomicInc(&cu[7], inc_limit);
  cas_mul(&cu[8], x | 1u);
  atomicExch(&cu[9], x);
  atomicDec(&cu[10], inc_limit);
  atomicSub(&cu[11], x);
  atomicMin(&ci[0], y);
  atomicMax(&ci[1], y);
  atomicAdd(&cf, f[i]);
  cas_add64(&c64, x);
  atomicAdd(&a64, (unsigned long long)x << 7);
  __syncthreads();
  if (threadIdx.x == 0) {
    uint32_t* o = out + blockIdx.x * 16;
    for (int k = 0; k < 12; ++k) o[k] = cu[k];
    o[12] = (uint32_t)ci[0];
    o[13] = (uint32_t)ci[1];
    o[14] = __float_as_uint(cf);
    o[15] = (uint32_t)(c64 ^ (c64 >> 32) ^ a64 ^ (a64 >> 29));
  }
}
