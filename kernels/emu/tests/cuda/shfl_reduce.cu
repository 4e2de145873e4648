// Warp shuffles in every mode and block reductions built from them.
//  shfl_modes:   __shfl_sync (idx), __shfl_up_sync, __shfl_down_sync, __shfl_xor_sync, each with
//                the full warp and with a sub-warp width (the c operand's segment mask), on 32-bit
//                ints, floats and a 64-bit value (two shfl.b32); per-lane results to out[lane*16+k].
//  block_reduce: a block-wide sum (u32 and f32) and max (s32): warp level with shfl.down/bfly,
//                partial results through static shared memory and __syncthreads, then an
//                atomicAdd of the block's u32 sum into a global total.
#include <cstdint>

extern "C" __global__ void shfl_modes(const uint32_t* __restrict__ in, const int* __restrict__ src_lane,
                                      uint32_t* __restrict__ out, int delta) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned full = 0xffffffffu;
  uint32_t v = in[t];
  float f = __uint_as_float((v & 0x007fffffu) | 0x3f800000u);
  unsigned long long w = ((unsigned long long)v << 32) | (v ^ 0xa5a5a5a5u);
  int sl = src_lane[t];
  uint32_t* o = out + t * 16;
  o[0] = __shfl_sync(full, v, sl);
  o[1] = __shfl_up_sync(full, v, delta);
  o[2] = __shfl_down_sync(full, v, delta);
  o[3] = __shfl_xor_sync(full, v, delta);
  o[4] = __shfl_sync(full, v, sl, 8);
  o[5] = __shfl_up_sync(full, v, delta, 16);
  o[6] = __shfl_down_sync(full, v, delta, 16);
  o[7] = __shfl_xor_sync(full, v, delta, 8);
  o[8] = __float_as_uint(__shfl_xor_sync(full, f, 1) + f);
  unsigned long long w2 = __shfl_sync(full, w, sl);
  o[9] = (uint32_t)w2;
  o[10] = (uint32_t)(w2 >> 32);
  o[11] = __shfl_sync(full, v, 5, 4);   // lane (lane & ~3) + (5 % 4)
  o[12] = __shfl_down_sync(full, v, 1, 2);
  o[13] = __shfl_up_sync(full, v, 3, 32);
  o[14] = (uint32_t)__shfl_sync(full, (int)v, sl + 32); // index wraps modulo width
  o[15] = __shfl_xor_sync(full, v, 31);
}

__device__ __forceinline__ uint32_t warp_sum_u32(uint32_t x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_sum_f32(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ int warp_max_s32(int x) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// blockDim.x is a multiple of 32, at most 1024. out_u32/out_f32/out_max: one value per block.
extern "C" __global__ void block_reduce(const uint32_t* __restrict__ xu, const float* __restrict__ xf,
                                        const int* __restrict__ xi, int n, uint32_t* __restrict__ out_u32,
                                        float* __restrict__ out_f32, int* __restrict__ out_max,
                                        uint32_t* __restrict__ total) {
  __shared__ uint32_t su[32];
  __shared__ float sf[32];
  __shared__ int si[32];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  uint32_t u = i < n ? xu[i] : 0u;
  float f = i < n ? xf[i] : 0.0f;
  int m = i < n ? xi[i] : INT_MIN;
  u = warp_sum_u32(u);
  f = warp_sum_f32(f);
  m = warp_max_s32(m);
  if (lane == 0) { su[warp] = u; sf[warp] = f; si[warp] = m; }
  __syncthreads();
  if (warp == 0) {
    u = lane < nwarps ? su[lane] : 0u;
    f = lane < nwarps ? sf[lane] : 0.0f;
    m = lane < nwarps ? si[lane] : INT_MIN;
    u = warp_sum_u32(u);
    f = warp_sum_f32(f);
    m = warp_max_s32(m);
    if (lane == 0) {
      out_u32[blockIdx.x] = u;
      out_f32[blockIdx.x] = f;
      out_max[blockIdx.x] = m;
      atomicAdd(total, u);
    }
  }
}
