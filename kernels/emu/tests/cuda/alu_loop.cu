// A scalar-heavy ALU loop (the emulator bench's thread-instruction workload): per thread `iters`
// rounds of integer mixing (xorshift, mul.lo, mad, shf, lop3) and float math (fma.rn, mul, add,
// min/max, cvt.rn.f32.u32) with no memory traffic inside the loop; one u32 hash and one f32
// per thread. Every operation is exact or correctly rounded, so the CPU reference is bit-exact.
#include <cstdint>

extern "C" __global__ void alu_loop(const uint32_t* __restrict__ seed, int iters, uint32_t* __restrict__ out_u,
                                    float* __restrict__ out_f) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  uint32_t x = seed[t] | 1u, h = 0x811c9dc5u;
  float f = 1.0f, g = 0.5f;
#pragma unroll 1
  for (int i = 0; i < iters; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    h = (h ^ x) * 16777619u + (uint32_t)i;
    h = __funnelshift_l(h, h, x & 31u);
    const float r = (float)(x >> 8) * 5.9604645e-08f;  // [0, 1)
    f = fmaf(f, 0.999f, r);
    g = fmaxf(fminf(g + r * 0.25f, 4.0f), -4.0f) - 0.0625f;
  }
  out_u[t] = h ^ x;
  out_f[t] = f + g;
}
