// Warp-specialised FP8 GEMM with DeepSeek-style per-128-K block scales (tests/ws_gemm.rs):
//   C[M][N] (f32) = sum_kb a_scale[m][kb] * b_scale[n/128][kb] * (A[m][kb*128..+128] . B[n][kb*128..+128])
// A [M][K] and B [N][K] are e4m3, K-major; a_scale is [M][K/128], b_scale [ceil(N/128)][K/128] (f32).
// One CTA of 256 threads computes a 64x128 tile of C:
//   warpgroup 1 (producer): setmaxnreg.dec to 40; one elected thread of its first warp issues
//     cp.async.bulk.tensor.2d loads of the A (64x128 bytes) and B (128x128 bytes) tiles of each
//     K-block into 128B-swizzled shared memory through a 4-stage ring: wait `empty[s]`, arrive on
//     `full[s]` with expect_tx, then the two TMA loads complete_tx on `full[s]`.
//   warpgroup 0 (consumer): setmaxnreg.inc to 248; per K-block: wait `full[s]`, four
//     wgmma.m64n128k32.f32.e4m3.e4m3 on shared-memory descriptors (the first with scale-d = 0),
//     commit, wait_group 0, promote the partial sums into f32 accumulators scaled by
//     a_scale * b_scale, and arrive on `empty[s]` (all 128 threads); finally store C (bounds
//     checked: partial tiles read zeros through the TMA's out-of-bounds fill).
// `bug` injects mistakes: 1 the consumer never arrives on `empty` (the producer deadlocks once
// K/128 > 4); 2 the consumer issues its wgmmas before waiting on `full`; 3 no promotion: all of K
// accumulates in the wgmma accumulator and only the first K-block's scales are applied.
#include <cuda.h>
#include <cstdint>

constexpr int STAGES = 4;
constexpr int BM = 64, BN = 128, BK = 128;
constexpr int A_BYTES = BM * BK, B_BYTES = BN * BK, STAGE_BYTES = A_BYTES + B_BYTES;

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n\t.reg .pred P1;\n"
      "WAIT:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n\t"
      "@!P1 bra WAIT;\n\t}" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ bool elect_one() {
  uint32_t pred = 0;
  asm volatile(
      "{\n\t.reg .b32 rx;\n\t.reg .pred px;\n\t"
      "elect.sync rx|px, %1;\n\t"
      "@px mov.s32 %0, 1;\n\t}"
      : "+r"(pred)
      : "r"(0xffffffffu));
  return pred != 0;
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(dst),
      "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}
// K-major, 128B swizzle: start >> 4, LBO 16 (unused), SBO 1024 (8 rows of 128 bytes), mode 1.
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}

extern "C" __global__ void __launch_bounds__(256, 1)
    ws_gemm(const __grid_constant__ CUtensorMap tmap_a, const __grid_constant__ CUtensorMap tmap_b, const float* __restrict__ a_scale,
            const float* __restrict__ b_scale, float* __restrict__ C, int M, int N, int K, int bug) {
  extern __shared__ __align__(1024) uint8_t smem[];  // STAGES x (A tile, B tile), 1024-aligned
  __shared__ __align__(8) uint64_t full[STAGES];
  __shared__ __align__(8) uint64_t empty[STAGES];
  const int kblocks = K / BK;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) {
      mbar_init(smem_u32(&full[s]), 1);
      mbar_init(smem_u32(&empty[s]), 128);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x >= 128) {
    // producer warpgroup
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (threadIdx.x < 160 && elect_one()) {
      asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&tmap_a) : "memory");
      asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&tmap_b) : "memory");
      for (int kb = 0; kb < kblocks; kb++) {
        const int s = kb % STAGES;
        const uint32_t ph = (kb / STAGES) & 1;
        mbar_wait(smem_u32(&empty[s]), ph ^ 1);
        const uint32_t sa = smem_u32(smem + s * STAGE_BYTES);
        mbar_arrive_expect_tx(smem_u32(&full[s]), STAGE_BYTES);
        tma_load_2d(sa, &tmap_a, smem_u32(&full[s]), kb * BK, m0);
        tma_load_2d(sa + A_BYTES, &tmap_b, smem_u32(&full[s]), kb * BK, n0);
      }
    }
  } else {
    // consumer warpgroup
    asm volatile("setmaxnreg.inc.sync.aligned.u32 248;\n" ::: "memory");
    const int t = threadIdx.x, w = t >> 5, lane = t & 31;
    const int nb = n0 / 128;
    // this thread's two rows: 16w + lane/4 (+8)
    const int r0 = m0 + 16 * w + (lane >> 2), r1 = r0 + 8;
    float acc[64], d[64];
#pragma unroll
    for (int v = 0; v < 64; v++) acc[v] = 0.f, d[v] = 0.f;
    for (int kb = 0; kb < kblocks; kb++) {
      const int s = kb % STAGES;
      const uint32_t ph = (kb / STAGES) & 1;
      const uint32_t sa = smem_u32(smem + s * STAGE_BYTES), sb = sa + A_BYTES;
      if (bug != 2) mbar_wait(smem_u32(&full[s]), ph);
      wg_fence();
#pragma unroll
      for (int ks = 0; ks < 4; ks++)
        wgmma_m64n128k32_e4m3(d, desc_sw128(sa + ks * 32), desc_sw128(sb + ks * 32), (ks > 0 || (bug == 3 && kb > 0)) ? 1 : 0);
      wg_commit();
      wg_wait0();
      if (bug == 2) mbar_wait(smem_u32(&full[s]), ph);
      if (bug != 1) mbar_arrive(smem_u32(&empty[s]));
      if (bug != 3) {
        const float sbk = b_scale[nb * kblocks + kb];
        const float s0 = (r0 < M ? a_scale[r0 * kblocks + kb] : 0.f) * sbk;
        const float s1 = (r1 < M ? a_scale[r1 * kblocks + kb] : 0.f) * sbk;
#pragma unroll
        for (int v = 0; v < 64; v++) acc[v] += d[v] * ((v & 2) ? s1 : s0);
      }
    }
    if (bug == 3) {
      const float sbk = b_scale[nb * kblocks];
      const float s0 = (r0 < M ? a_scale[r0 * kblocks] : 0.f) * sbk;
      const float s1 = (r1 < M ? a_scale[r1 * kblocks] : 0.f) * sbk;
#pragma unroll
      for (int v = 0; v < 64; v++) acc[v] = d[v] * ((v & 2) ? s1 : s0);
    }
    // D fragment: value v is row 16w + lane/4 + 8*((v/2)%2), col 8*(v/4) + 2*(lane%4) + v%2.
#pragma unroll
    for (int v = 0; v < 64; v++) {
      const int r = (v & 2) ? r1 : r0, c = n0 + 8 * (v >> 2) + 2 * (lane & 3) + (v & 1);
      if (r < M && c < N) C[(size_t)r * N + c] = acc[v];
    }
  }
}
