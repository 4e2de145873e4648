// FP8 tensor-core tiles: mma.sync.aligned.m16n8k32.row.col.f32.{e4m3,e5m2}.{e4m3,e5m2}.f32.
// One warp per block computes D[16, 8*blockIdx.x ..] = A[16,K] * B[K,8] + C, K a multiple of 32,
// looping over K in 32-wide steps. A is row-major [16][K] bytes; B is given column-major as
// Bt[N][K] bytes; C/D are row-major [16][N] f32. Fragments are loaded straight from global
// memory with the lane mapping of the PTX ISA figures (group = lane>>2, tig = lane&3):
// A reg r: row g + 8*(r&1), k tig*4 + 16*(r>>1) (4 bytes); B reg r: k tig*4 + 16*r, n g;
// C/D element i: row g + 8*(i>>1), col tig*2 + (i&1).
#include <cstdint>

#define MMA_FP8_KERNEL(NAME, TY)                                                                      \
  extern "C" __global__ void NAME(const uint8_t* __restrict__ A, const uint8_t* __restrict__ Bt,      \
                                  const float* __restrict__ C, float* __restrict__ D, int N, int K) { \
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;                                  \
    const int n0 = blockIdx.x * 8;                                                                    \
    float acc[4];                                                                                     \
    for (int i = 0; i < 4; ++i) acc[i] = C[(g + 8 * (i >> 1)) * N + n0 + t4 * 2 + (i & 1)];          \
    for (int k0 = 0; k0 < K; k0 += 32) {                                                              \
      uint32_t a[4], b[2];                                                                            \
      for (int r = 0; r < 4; ++r)                                                                     \
        a[r] = *reinterpret_cast<const uint32_t*>(A + (g + 8 * (r & 1)) * K + k0 + t4 * 4 + 16 * (r >> 1)); \
      for (int r = 0; r < 2; ++r)                                                                     \
        b[r] = *reinterpret_cast<const uint32_t*>(Bt + (n0 + g) * K + k0 + t4 * 4 + 16 * r);          \
      asm volatile("mma.sync.aligned.m16n8k32.row.col.f32." TY "." TY                                 \
                   ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                     \
                   : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])                           \
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));               \
    }                                                                                                 \
    for (int i = 0; i < 4; ++i) D[(g + 8 * (i >> 1)) * N + n0 + t4 * 2 + (i & 1)] = acc[i];          \
  }

MMA_FP8_KERNEL(mma_e4m3_tile, "e4m3")
MMA_FP8_KERNEL(mma_e5m2_tile, "e5m2")
