// Tensor-core GEMM with mma.sync fed by ldmatrix and cp.async.
//  gemm_bf16_mma: C[M,N] (f32) = A[M,K] (bf16, row-major) * B[K,N] (bf16, row-major). A block of
//    4 warps computes a 32x32 tile; K advances in 32-wide steps through a 2-stage cp.async.cg
//    (16-byte) pipeline with commit_group / wait_group 1; rows past M and k past K are zero-filled
//    with the src-size operand (0). A fragments come from ldmatrix.x4, B fragments from
//    ldmatrix.x2.trans; the math is mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
//    Requires K % 8 == 0 and N % 8 == 0 (16-byte aligned rows); M is arbitrary.
//  cp_async_zfill: cp.async.ca (4 and 8 bytes) and cp.async.cg (16 bytes) with a per-thread
//    src-size from 0 to the copy size (the rest of the destination is zero-filled) into shared
//    memory pre-filled with 0xAB, then cp.async.wait_all; the shared bytes are copied out.
#include <cstdint>
#include <cuda_bf16.h>

#define BM 32
#define BN 32
#define BK 32
#define PAD 8

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, uint32_t src_size) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_size) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

extern "C" __global__ void __launch_bounds__(128) gemm_bf16_mma(const __nv_bfloat16* __restrict__ A,
                                                                const __nv_bfloat16* __restrict__ B,
                                                                float* __restrict__ C, int M, int N, int K) {
  __shared__ __align__(128) __nv_bfloat16 As[2][BM][BK + PAD];
  __shared__ __align__(128) __nv_bfloat16 Bs[2][BK][BN + PAD];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int wm = (warp >> 1) * 16, wn = (warp & 1) * 16;
  const int ktiles = (K + BK - 1) / BK;

  auto load_tile = [&](int kt, int s) {
    const int k0 = kt * BK;
    {  // A: 32 rows x 4 chunks of 8 bf16
      const int r = tid >> 2, c = (tid & 3) * 8;
      const int gr = m0 + r, gc = k0 + c;
      const bool ok = gr < M && gc < K;
      const __nv_bfloat16* src = ok ? A + (size_t)gr * K + gc : A;
      cp_async16(smem_u32(&As[s][r][c]), src, ok ? 16u : 0u);
    }
    {  // B: 32 k-rows x 4 chunks of 8 bf16
      const int r = tid >> 2, c = (tid & 3) * 8;
      const int gr = k0 + r, gc = n0 + c;
      const bool ok = gr < K && gc < N;
      const __nv_bfloat16* src = ok ? B + (size_t)gr * N + gc : B;
      cp_async16(smem_u32(&Bs[s][r][c]), src, ok ? 16u : 0u);
    }
  };

  float acc[2][4];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[j][i] = 0.0f;

  load_tile(0, 0);
  cp_commit();
  for (int kt = 0; kt < ktiles; ++kt) {
    if (kt + 1 < ktiles) load_tile(kt + 1, (kt + 1) & 1);
    cp_commit();
    cp_wait<1>();
    __syncthreads();
    const int s = kt & 1;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t a[4];
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                   : "r"(smem_u32(&As[s][wm + (lane & 15)][kk + (lane >> 4) * 8])));
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        uint32_t b[2];
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(b[0]), "=r"(b[1])
                     : "r"(smem_u32(&Bs[s][kk + (lane & 15)][wn + j * 8])));
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
      }
    }
    __syncthreads();
  }
  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = m0 + wm + g + (i >> 1) * 8, c = n0 + wn + j * 8 + t4 * 2 + (i & 1);
      if (r < M && c < N) C[(size_t)r * N + c] = acc[j][i];
    }
}

// 128 threads; src holds 128*32 bytes (32 per thread: 16 for cg, 8 and 4 for ca, 4 unused);
// out receives 128*28 bytes: per thread 16 (cg), 8, 4 (ca).
extern "C" __global__ void cp_async_zfill(const uint8_t* __restrict__ src, uint8_t* __restrict__ out) {
  __shared__ __align__(16) uint8_t s16[128][16];
  __shared__ __align__(16) uint8_t s8[128][8];
  __shared__ __align__(16) uint8_t s4[128][4];
  const int t = threadIdx.x;
  for (int i = 0; i < 16; ++i) s16[t][i] = 0xAB;
  for (int i = 0; i < 8; ++i) s8[t][i] = 0xAB;
  for (int i = 0; i < 4; ++i) s4[t][i] = 0xAB;
  __syncthreads();
  const uint8_t* g = src + t * 32;
  cp_async16(smem_u32(s16[t]), g, (uint32_t)(t % 17));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_u32(s8[t])), "l"(g + 16),
               "r"((uint32_t)((t * 3) % 9)) : "memory");
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(s4[t])), "l"(g + 24),
               "r"((uint32_t)((t * 7) % 5)) : "memory");
  asm volatile("cp.async.wait_all;\n" ::: "memory");
  __syncthreads();
  uint8_t* o = out + t * 28;
  for (int i = 0; i < 16; ++i) o[i] = s16[t][i];
  for (int i = 0; i < 8; ++i) o[16 + i] = s8[t][i];
  for (int i = 0; i < 4; ++i) o[24 + i] = s4[t][i];
}
