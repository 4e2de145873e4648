// TMA row gather feeding wgmma, as sparse attention gathers KV rows (tests/ws_gemm.rs):
//   S[64][64] (f32) = Q[64][64] (bf16) * Kg^T, Kg[j] = Kt[idx[j]] (bf16 rows of 64, 128 bytes).
// An index outside [0, T) (e.g. the -1 padding of a top-k list) reads a zero row through the
// TMA's out-of-bounds fill. One CTA of 256 threads:
//   warpgroup 1 (producer): lane 0 of its first warp arrives on `bar` with expect_tx for Q and
//     the 64 rows, then lane l issues a {64, 1} box load of rows idx[l] and idx[l + 32] into rows
//     l and l + 32 of a 128B-swizzled 64x128-byte tile (each 1-row box lands at its absolute
//     shared address, so the swizzle matches an 8-row-atom K-major wgmma operand); lane 0 also
//     loads Q as one {64, 64} box.
//   warpgroup 0 (consumer): waits on `bar`, four wgmma.m64n64k16.f32.bf16.bf16, stores S.
#include <cuda.h>
#include <cstdint>

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(dst),
      "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

extern "C" __global__ void __launch_bounds__(256, 1)
    tma_gather_qk(const __grid_constant__ CUtensorMap tmap_q, const __grid_constant__ CUtensorMap tmap_k, const int* __restrict__ idx,
                  float* __restrict__ S) {
  __shared__ __align__(1024) uint8_t sQ[64 * 128];
  __shared__ __align__(1024) uint8_t sK[64 * 128];
  __shared__ __align__(8) uint64_t bar;
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(&bar)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x >= 128) {
    if (threadIdx.x < 160) {
      const int lane = threadIdx.x - 128;
      const int i0 = idx[lane], i1 = idx[lane + 32];
      if (lane == 0) {
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(&bar)), "r"(2 * 64 * 128) : "memory");
        tma_load_2d(smem_u32(sQ), &tmap_q, smem_u32(&bar), 0, 0);
      }
      __syncwarp();
      tma_load_2d(smem_u32(sK) + lane * 128, &tmap_k, smem_u32(&bar), 0, i0);
      tma_load_2d(smem_u32(sK) + (lane + 32) * 128, &tmap_k, smem_u32(&bar), 0, i1);
    }
  } else {
    asm volatile(
        "{\n\t.reg .pred P1;\n"
        "WAIT:\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], 0;\n\t"
        "@!P1 bra WAIT;\n\t}" ::"r"(smem_u32(&bar))
        : "memory");
    float d[32];
#pragma unroll
    for (int v = 0; v < 32; v++) {
      d[v] = 0.f;
      asm volatile("" : "+f"(d[v])::"memory");  // keeps the zeroing before the fence (nvcc sinks it past otherwise)
    }
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int ks = 0; ks < 4; ks++) wgmma_m64n64k16_bf16(d, desc_sw128(smem_u32(sQ) + ks * 32), desc_sw128(smem_u32(sK) + ks * 32), ks > 0);
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    const int t = threadIdx.x, w = t >> 5, lane = t & 31;
#pragma unroll
    for (int v = 0; v < 32; v++) {
      const int r = 16 * w + (lane >> 2) + 8 * ((v >> 1) & 1), c = 8 * (v >> 2) + 2 * (lane & 3) + (v & 1);
      S[r * 64 + c] = d[v];
    }
  }
}
