// Warpgroup MMA (wgmma.mma_async, sm_90a) with operands in 128B-swizzled shared memory written by
// ordinary stores (then fence.proxy.async), checked in tests/wgmma.rs against Rust matmuls.
// One CTA of 128 threads (one warpgroup). Global tiles are row-major with 128-byte rows:
//  wgmma_bf16_ss: C[64][64] (f32) = A[64][64] (bf16) * Bt[64][64]^T (bf16, Bt = N rows of K),
//    four m64n64k16 k-steps (descriptors advance 32 bytes inside the 128-byte swizzle atom).
//  wgmma_fp8_ss: C[64][64] (f32) = A[64][128] (e4m3) * Bt[64][128]^T (e4m3), four m64n64k32 steps.
//  wgmma_bf16_rs: C[64][32] (f32) = A[64][64] (bf16, from registers) * Bt[32][64]^T, m64n32k16.
//  wgmma_bf16_ss_mn: as wgmma_bf16_ss with B MN-major (B[k][n] row-major, imm-trans-b = 1).
// `mode` injects bugs: 1 skips wgmma.wait_group before D is stored, 2 skips the wgmma.fence,
// 3 (wgmma_bf16_ss only) writes an accumulator register between the fence and the first wgmma,
// 4 (wgmma_bf16_ss only) skips the fence.proxy.async after the shared stores.
// `acc`: the first k-step's scale-d (1: accumulate onto C's initial contents loaded from C).
#include <cstdint>
#include <cuda_bf16.h>

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// K-major, 128B swizzle: start >> 4, LBO 16 (unused), SBO 1024 (8 rows of 128 bytes), mode 1.
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

// rows x 128 bytes from global into shared with the 128B swizzle (16-byte chunk c of row r goes to
// chunk c ^ (r % 8)); `smem` is 1024-byte aligned.
__device__ __forceinline__ void load_sw128(uint8_t* smem, const uint8_t* g, int rows, bool proxy_fence = true) {
  for (int i = threadIdx.x; i < rows * 8; i += blockDim.x) {
    const int r = i >> 3, c = i & 7;
    const uint4 v = *reinterpret_cast<const uint4*>(g + r * 128 + c * 16);
    *reinterpret_cast<uint4*>(smem + r * 128 + ((c ^ (r & 7)) << 4)) = v;
  }
  if (proxy_fence) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_ss_m64n64k16_f32_bf16_bf16(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_ss_m64n64k32_f32_e4m3_e4m3(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_rs_m64n32k16_f32_bf16_bf16(float (&d)[16], const uint32_t (&a)[4], uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}


// imm-trans-b = 1: B is MN-major (N contiguous).
__device__ __forceinline__ void wgmma_ss_m64n64k16_f32_bf16_bf16_tb(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_ss_m64n256k16_f16_f16_f16(uint32_t (&d)[64], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f16.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_ss_m64n8k8_f32_tf32_tf32(float (&d)[4], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k8.f32.tf32.tf32 {%0, %1, %2, %3}, %4, %5, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "l"(da), "l"(db), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_ss_m64n16k32_f16_e5m2_e4m3(uint32_t (&d)[4], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k32.f16.e5m2.e4m3 {%0, %1, %2, %3}, %4, %5, p, 1, 1;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "l"(da), "l"(db), "r"(scale_d));
}

// D fragment: value v of thread t is row 16*(t/32) + (t%32)/4 + 8*((v/2)%2), col 8*(v/4) + 2*(t%4) + v%2.
template <int N>
__device__ __forceinline__ void d_io(float (&d)[N / 2], float* C, bool store) {
  const int t = threadIdx.x, w = t >> 5, lane = t & 31;
#pragma unroll
  for (int v = 0; v < N / 2; ++v) {
    const int r = 16 * w + (lane >> 2) + 8 * ((v >> 1) & 1), c = 8 * (v >> 2) + 2 * (lane & 3) + (v & 1);
    if (store) C[r * N + c] = d[v]; else d[v] = C[r * N + c];
  }
}

extern "C" __global__ void __launch_bounds__(128) wgmma_bf16_ss(const __nv_bfloat16* __restrict__ A,
                                                                const __nv_bfloat16* __restrict__ Bt,
                                                                float* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[64 * 128];
  load_sw128(sA, reinterpret_cast<const uint8_t*>(A), 64, mode != 4);
  load_sw128(sB, reinterpret_cast<const uint8_t*>(Bt), 64, mode != 4);
  __syncthreads();
  float d[32];
  d_io<64>(d, C, false);
  if (mode != 2) wg_fence();
  // mode 3: an ordinary write to an accumulator after the fence (asm volatile keeps the order)
  if (mode == 3) asm volatile("mov.f32 %0, 0f3F800000;\n" : "=f"(d[5])::"memory");
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_ss_m64n64k16_f32_bf16_bf16(d, desc_sw128(smem_u32(sA) + ks * 32), desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  if (mode != 1) wg_wait0();
  d_io<64>(d, C, true);
}

extern "C" __global__ void __launch_bounds__(128) wgmma_fp8_ss(const uint8_t* __restrict__ A, const uint8_t* __restrict__ Bt,
                                                               float* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[64 * 128];
  load_sw128(sA, A, 64);
  load_sw128(sB, Bt, 64);
  __syncthreads();
  float d[32];
  d_io<64>(d, C, false);
  if (mode != 2) wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_ss_m64n64k32_f32_e4m3_e4m3(d, desc_sw128(smem_u32(sA) + ks * 32), desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  if (mode != 1) wg_wait0();
  d_io<64>(d, C, true);
}

extern "C" __global__ void __launch_bounds__(128) wgmma_bf16_rs(const __nv_bfloat16* __restrict__ A,
                                                                const __nv_bfloat16* __restrict__ Bt,
                                                                float* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sB[32 * 128];
  load_sw128(sB, reinterpret_cast<const uint8_t*>(Bt), 32);
  __syncthreads();
  const int t = threadIdx.x, w = t >> 5, g = (t & 31) >> 2, q = t & 3;
  // A fragment (register j holds elements 2j, 2j+1): row 16w + g + 8*(j%2), k 2q + 8*(j/2) (+0, +1).
  uint32_t a[4][4];
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = 16 * w + g + 8 * (j & 1), k = ks * 16 + 2 * q + 8 * (j >> 1);
      a[ks][j] = *reinterpret_cast<const uint32_t*>(A + r * 64 + k);
    }
  float d[16];
  d_io<32>(d, C, false);
  if (mode != 2) wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_rs_m64n32k16_f32_bf16_bf16(d, a[ks], desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  if (mode != 1) wg_wait0();
  d_io<32>(d, C, true);
}

// MN-major B (imm-trans-b = 1): C[64][64] = A[64][64] (K-major) * B[64][64] with B row-major
// [k][n] (N contiguous), stored as 64 k-rows of 128 bytes with the 128B swizzle. MN-major
// descriptor: LBO = stride between 64-column blocks (one block here), SBO = 1024 between groups
// of 8 k-rows; each k16 step starts 16 rows (2048 bytes) further.
extern "C" __global__ void __launch_bounds__(128) wgmma_bf16_ss_mn(const __nv_bfloat16* __restrict__ A,
                                                                   const __nv_bfloat16* __restrict__ B,
                                                                   float* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[64 * 128];
  load_sw128(sA, reinterpret_cast<const uint8_t*>(A), 64);
  load_sw128(sB, reinterpret_cast<const uint8_t*>(B), 64);
  __syncthreads();
  float d[32];
  d_io<64>(d, C, false);
  if (mode != 2) wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) {
    const uint32_t b = smem_u32(sB) + ks * 2048;
    const uint64_t db = (uint64_t)((b & 0x3FFFF) >> 4) | ((uint64_t)(8192 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
    wgmma_ss_m64n64k16_f32_bf16_bf16_tb(d, desc_sw128(smem_u32(sA) + ks * 32), db, ks > 0 ? 1 : acc);
  }
  wg_commit();
  if (mode != 1) wg_wait0();
  d_io<64>(d, C, true);
}

// More types and shapes through the same 128B-swizzled K-major path (rows of 128 bytes):
//  wgmma_f16_n256: C[64][256] (f16) = A[64][64] (f16) * Bt[256][64]^T (f16), m64n256k16.f16 (f16 accumulate).
//  wgmma_tf32_n8: C[64][8] (f32) = A[64][32] (tf32 in f32) * Bt[8][32]^T, m64n8k8.
//  wgmma_e5m2_e4m3_n16: C[64][16] (f16) = A[64][128] (e5m2) * Bt[16][128]^T (e4m3), m64n16k32.f16.
// f16 D: register j holds values 2j (low half) and 2j+1 (high half), adjacent columns.
template <int N, int NR>
__device__ __forceinline__ void d_io_h(uint32_t (&d)[NR], uint16_t* C, bool store) {
  const int t = threadIdx.x, w = t >> 5, lane = t & 31;
#pragma unroll
  for (int j = 0; j < NR; ++j) {
    const int v = 2 * j;
    const int r = 16 * w + (lane >> 2) + 8 * ((v >> 1) & 1), c = 8 * (v >> 2) + 2 * (lane & 3);
    uint32_t* p = reinterpret_cast<uint32_t*>(C + r * N + c);
    if (store) *p = d[j]; else d[j] = *p;
  }
}

extern "C" __global__ void __launch_bounds__(128) wgmma_f16_n256(const uint8_t* __restrict__ A, const uint8_t* __restrict__ Bt,
                                                                 uint16_t* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[256 * 128];
  load_sw128(sA, A, 64);
  load_sw128(sB, Bt, 256);
  __syncthreads();
  uint32_t d[64];
  d_io_h<256>(d, C, false);
  wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_ss_m64n256k16_f16_f16_f16(d, desc_sw128(smem_u32(sA) + ks * 32), desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  wg_wait0();
  d_io_h<256>(d, C, true);
}

extern "C" __global__ void __launch_bounds__(128) wgmma_tf32_n8(const uint8_t* __restrict__ A, const uint8_t* __restrict__ Bt,
                                                                float* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[8 * 128];
  load_sw128(sA, A, 64);
  load_sw128(sB, Bt, 8);
  __syncthreads();
  float d[4];
  d_io<8>(d, C, false);
  wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_ss_m64n8k8_f32_tf32_tf32(d, desc_sw128(smem_u32(sA) + ks * 32), desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  wg_wait0();
  d_io<8>(d, C, true);
}

extern "C" __global__ void __launch_bounds__(128) wgmma_e5m2_e4m3_n16(const uint8_t* __restrict__ A, const uint8_t* __restrict__ Bt,
                                                                      uint16_t* __restrict__ C, int mode, int acc) {
  __shared__ __align__(1024) uint8_t sA[64 * 128];
  __shared__ __align__(1024) uint8_t sB[16 * 128];
  load_sw128(sA, A, 64);
  load_sw128(sB, Bt, 16);
  __syncthreads();
  uint32_t d[4];
  d_io_h<16>(d, C, false);
  wg_fence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_ss_m64n16k32_f16_e5m2_e4m3(d, desc_sw128(smem_u32(sA) + ks * 32), desc_sw128(smem_u32(sB) + ks * 32), ks > 0 ? 1 : acc);
  wg_commit();
  wg_wait0();
  d_io_h<16>(d, C, true);
}
