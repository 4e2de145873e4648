// Async-proxy test kernels for the emulator (tests/async.rs): a warp-specialised 4-stage
// mbarrier ring fed by TMA tile loads, and TMA / bulk stores. `bug` injects mistakes the
// emulator must catch.
#include <cuda.h>
#include <cstdint>

constexpr int STAGES = 4;
constexpr int BOX_C = 32;  // f32 columns per box (128 bytes: one 128B swizzle span)
constexpr int BOX_R = 8;   // rows per box
constexpr int TILE_BYTES = BOX_C * BOX_R * 4;

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile(
      "{\n\t.reg .b64 st;\n\t"
      "mbarrier.arrive.shared::cta.b64 st, [%0];\n\t}" ::"r"(bar)
      : "memory");
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
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%2, %3}], [%1];" ::"l"((uint64_t)map), "r"(src), "r"(c0),
               "r"(c1)
               : "memory");
}
// 128B swizzle of an absolute shared address: bits 4-6 ^= bits 7-9.
__device__ __forceinline__ uint32_t swz128(uint32_t a) { return a ^ (((a >> 7) & 7) << 4); }
__device__ __forceinline__ float ld_shared_f32(uint32_t a) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(a) : "memory");
  return v;
}

// Block of 96 threads: warp 0 produces (one elected lane issues TMA loads of 8x32 f32 boxes
// with 128B swizzle), warps 1 and 2 consume rows 0-3 and 4-7 of each box:
// out[row][col] = 2 * in[row][col] + 1. bug 1: consumer warp 2 never arrives on `empty`;
// bug 2: consumers read their first value before waiting on `full`; bug 3: consumers write into
// the stage while its TMA load is in flight.
extern "C" __global__ void __launch_bounds__(96) tma_pipeline(const __grid_constant__ CUtensorMap tmap, float* out, int ntiles, int bug) {
  __shared__ __align__(1024) float tiles[STAGES][BOX_R * BOX_C];
  __shared__ __align__(8) uint64_t full[STAGES];
  __shared__ __align__(8) uint64_t empty[STAGES];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; s++) {
      mbar_init(smem_u32(&full[s]), 1);
      mbar_init(smem_u32(&empty[s]), 2);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (warp == 0) {
    if (elect_one()) {
      asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&tmap) : "memory");
      for (int t = 0; t < ntiles; t++) {
        const int s = t % STAGES;
        const uint32_t ph = (t / STAGES) & 1;
        mbar_wait(smem_u32(&empty[s]), ph ^ 1);
        mbar_arrive_expect_tx(smem_u32(&full[s]), TILE_BYTES);
        tma_load_2d(smem_u32(tiles[s]), &tmap, smem_u32(&full[s]), 0, t * BOX_R);
      }
    }
  } else {
    const int c = warp - 1;
    for (int t = 0; t < ntiles; t++) {
      const int s = t % STAGES;
      const uint32_t ph = (t / STAGES) & 1;
      const uint32_t base = smem_u32(tiles[s]);
      float early = 0.f;
      if (bug == 2) early = ld_shared_f32(swz128(base + (c * 4) * 128 + lane * 4));
      if (bug == 3) tiles[s][c * 128 + lane] = 0.f;
      mbar_wait(smem_u32(&full[s]), ph);
      for (int r = c * 4; r < c * 4 + 4; r++) {
        float v = ld_shared_f32(swz128(base + r * 128 + lane * 4));
        if (bug == 2 && r == c * 4) v = early;
        out[(t * BOX_R + r) * BOX_C + lane] = v * 2.f + 1.f;
      }
      __syncwarp();
      if (lane == 0 && !(bug == 1 && c == 1)) mbar_arrive(smem_u32(&empty[s]));
    }
  }
}

// Each block fills an 8x32 f32 tile in shared memory (linear index i holds 3i + block) through
// the generic proxy, then thread 0 stores it with a TMA tile store at rows 8*block - 2 ... (the
// map's swizzle and out-of-bounds rules apply) and with a plain bulk copy to out2[256*block...].
// fence = 0 drops the fence.proxy.async the stores need; fence = 2 overwrites the tile after
// issuing the stores but before cp.async.bulk.wait_group.read releases it.
extern "C" __global__ void __launch_bounds__(64) tma_store(const __grid_constant__ CUtensorMap tmap_out, float* out2, int fence) {
  __shared__ __align__(1024) float tile[BOX_R * BOX_C];
  for (int i = threadIdx.x; i < BOX_R * BOX_C; i += blockDim.x) tile[i] = (float)(3 * i + (int)blockIdx.x);
  if (fence) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
  if (threadIdx.x == 0) {
    tma_store_2d(&tmap_out, smem_u32(tile), 0, (int)blockIdx.x * BOX_R - 2);
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(out2 + blockIdx.x * BOX_R * BOX_C), "r"(smem_u32(tile)),
                 "r"(TILE_BYTES)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    if (fence == 2) tile[5] = -1.f;
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
  }
  __syncthreads();
}
