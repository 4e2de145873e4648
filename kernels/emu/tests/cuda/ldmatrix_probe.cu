// Probe kernels for ldmatrix (PTX ISA "ldmatrix"): a 32x8 shared matrix of b16 whose values encode
// their coordinates (row * 8 + col); each lane supplies the address of a permuted row
// ((lane * 5 + 3) % 32) so per-lane addressing is visible too. One warp loads with
// ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 and stores its registers raw:
// out[variant][lane][reg] (u32, two b16 each; variants x1, x2, x4, x1.trans, x2.trans, x4.trans).
#include <cstdint>

extern "C" __global__ void ldmatrix_probe(uint32_t* __restrict__ out) {
  __shared__ __align__(16) uint16_t S[32][8];
  const int lane = threadIdx.x;
  for (int c = 0; c < 8; ++c) S[lane][c] = (uint16_t)(lane * 8 + c);
  __syncwarp();
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(&S[(lane * 5 + 3) % 32][0]));
  uint32_t r0, r1, r2, r3;
  uint32_t* o = out + lane * 4;
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r0) : "r"(addr));
  o[0] = r0;
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r0), "=r"(r1) : "r"(addr));
  o[128 + 0] = r0; o[128 + 1] = r1;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
  o[256 + 0] = r0; o[256 + 1] = r1; o[256 + 2] = r2; o[256 + 3] = r3;
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r0) : "r"(addr));
  o[384 + 0] = r0;
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(r0), "=r"(r1) : "r"(addr));
  o[512 + 0] = r0; o[512 + 1] = r1;
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
  o[640 + 0] = r0; o[640 + 1] = r1; o[640 + 2] = r2; o[640 + 3] = r3;
}
