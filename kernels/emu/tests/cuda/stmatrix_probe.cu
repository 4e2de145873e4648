// Probe kernel for stmatrix (sm_90, PTX ISA "stmatrix"), the inverse of ldmatrix: every lane holds
// four b32 registers whose b16 halves encode (lane, reg, half); one warp stores them with
// stmatrix.sync.aligned.m8n8.x4{,.trans}.shared.b16 to the rows addressed by the lanes
// ((lane * 5 + 3) % 32 of a 32x8 b16 matrix), and the matrix is copied out:
// out[variant][row][col] as u16 (variants: x4, x4.trans). Shared memory starts as 0xFFFF.
#include <cstdint>

extern "C" __global__ void stmatrix_probe(uint16_t* __restrict__ out) {
  __shared__ __align__(16) uint16_t S[2][32][8];
  const int lane = threadIdx.x;
  for (int c = 0; c < 8; ++c) { S[0][lane][c] = 0xFFFF; S[1][lane][c] = 0xFFFF; }
  __syncwarp();
  uint32_t r[4];
  for (int i = 0; i < 4; ++i) r[i] = (uint32_t)(lane * 8 + i * 2) | ((uint32_t)(lane * 8 + i * 2 + 1) << 16);
  const int row = (lane * 5 + 3) % 32;
  const uint32_t a0 = static_cast<uint32_t>(__cvta_generic_to_shared(&S[0][row][0]));
  const uint32_t a1 = static_cast<uint32_t>(__cvta_generic_to_shared(&S[1][row][0]));
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(a0), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3]) : "memory");
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};" ::"r"(a1), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3]) : "memory");
  __syncwarp();
  for (int v = 0; v < 2; ++v)
    for (int c = 0; c < 8; ++c) out[(v * 32 + lane) * 8 + c] = S[v][lane][c];
}
