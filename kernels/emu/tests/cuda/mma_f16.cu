// More mma.sync shapes and types, one warp per block, fragments loaded straight from global memory
// with the PTX ISA lane mapping (g = lane>>2, t = lane&3; A row-major [16][K], B given
// column-major as Bt[8][K], C/D row-major [16][8]):
//  mma_f16_f32: m16n8k16.row.col.f32.f16.f16.f32, K = 32 (two mmas).
//    A regs r0..r3: (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); B regs: k 2t.. and
//    2t+8.., n g; C/D f32 element i: (g + 8*(i>>1), 2t + (i&1)).
//  mma_f16_f16: m16n8k16.row.col.f16.f16.f16.f16 (f16 accumulators: C/D are two f16x2 registers,
//    (g, 2t..2t+1) and (g+8, 2t..2t+1)), K = 32.
//  mma_bf16_k8: m16n8k8.row.col.f32.bf16.bf16.f32, K = 16 (two mmas): A regs (g, 2t..),
//    (g+8, 2t..); B reg: k 2t.., n g.
#include <cstdint>

__device__ __forceinline__ uint32_t ld2(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

extern "C" __global__ void mma_f16_f32(const uint16_t* __restrict__ A, const uint16_t* __restrict__ Bt,
                                       const float* __restrict__ C, float* __restrict__ D) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const int K = 32;
  float acc[4];
  for (int i = 0; i < 4; ++i) acc[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
  for (int k0 = 0; k0 < K; k0 += 16) {
    const uint32_t a0 = ld2(A + g * K + k0 + 2 * t), a1 = ld2(A + (g + 8) * K + k0 + 2 * t);
    const uint32_t a2 = ld2(A + g * K + k0 + 2 * t + 8), a3 = ld2(A + (g + 8) * K + k0 + 2 * t + 8);
    const uint32_t b0 = ld2(Bt + g * K + k0 + 2 * t), b1 = ld2(Bt + g * K + k0 + 2 * t + 8);
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = acc[i];
}

extern "C" __global__ void mma_f16_f16(const uint16_t* __restrict__ A, const uint16_t* __restrict__ Bt,
                                       const uint16_t* __restrict__ C, uint16_t* __restrict__ D) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const int K = 32;
  uint32_t c0 = ld2(C + g * 8 + 2 * t), c1 = ld2(C + (g + 8) * 8 + 2 * t);
  for (int k0 = 0; k0 < K; k0 += 16) {
    const uint32_t a0 = ld2(A + g * K + k0 + 2 * t), a1 = ld2(A + (g + 8) * K + k0 + 2 * t);
    const uint32_t a2 = ld2(A + g * K + k0 + 2 * t + 8), a3 = ld2(A + (g + 8) * K + k0 + 2 * t + 8);
    const uint32_t b0 = ld2(Bt + g * K + k0 + 2 * t), b1 = ld2(Bt + g * K + k0 + 2 * t + 8);
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%0,%1};"
                 : "+r"(c0), "+r"(c1)
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  *reinterpret_cast<uint32_t*>(D + g * 8 + 2 * t) = c0;
  *reinterpret_cast<uint32_t*>(D + (g + 8) * 8 + 2 * t) = c1;
}

extern "C" __global__ void mma_bf16_k8(const uint16_t* __restrict__ A, const uint16_t* __restrict__ Bt,
                                       const float* __restrict__ C, float* __restrict__ D) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const int K = 16;
  float acc[4];
  for (int i = 0; i < 4; ++i) acc[i] = C[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)];
  for (int k0 = 0; k0 < K; k0 += 8) {
    const uint32_t a0 = ld2(A + g * K + k0 + 2 * t), a1 = ld2(A + (g + 8) * K + k0 + 2 * t);
    const uint32_t b0 = ld2(Bt + g * K + k0 + 2 * t);
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a0), "r"(a1), "r"(b0));
  }
  for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = acc[i];
}
