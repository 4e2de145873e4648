// Memory access widths and sign extension.
//  mem_widths: ld.global of s8/u8/s16/u16 (sign- and zero-extension), v2.u32, v4.f32, f64 and u64;
//    st.global of u8/u16/v2/v4; shared-memory f64 and v2/v4 round trips; 16-bit compares (setp
//    on s16) and selects. Per element: 16 u32 results.
//  misc_ops: an f32 kernel parameter (ld.param.f32), plain ld.global/st.global through a
//    non-restrict pointer, isnan (setp.nan), __fmul_rn/__fsub_rn (mul.rn/sub.rn), 64-bit
//    unsigned min/max/compares, f32 compares, __syncwarp (bar.warp.sync) and a shuffle after it.
//    8 u32 results per thread; launch exactly n threads (no bounds guard: the shuffle needs
//    full warps).
//  misc_ops2: forms our production kernels use: ld.global.nc.v4.f32 and .s32, NaN tests
//    (x != x: setp.nan.f32), u64 <-> f64 conversions (cvt.rn.f64.u64, cvt.rzi.u64.f64, with
//    saturation), f64 compares, 16-bit multiplies and selects (mul.wide.u16, selp.u16,
//    setp.ne.s16). 10 u32 results per element.
#include <cstdint>

struct alignas(16) Rec {
  uint32_t w[4];
};

extern "C" __global__ void mem_widths(const int8_t* __restrict__ b8, const int16_t* __restrict__ b16,
                                      const uint2* __restrict__ v2, const float4* __restrict__ v4,
                                      const double* __restrict__ f64, int n, uint32_t* __restrict__ out,
                                      uint8_t* __restrict__ out8, uint16_t* __restrict__ out16,
                                      float4* __restrict__ out4) {
  __shared__ double sd[128];
  __shared__ float4 s4[128];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int t = threadIdx.x;
  const bool ok = i < n;
  if (ok) {
    sd[t] = f64[i] * 2.0;
    s4[t] = v4[i];
  }
  __syncthreads();
  if (!ok) return;
  uint32_t* o = out + 16 * i;
  const int8_t s8 = b8[i];
  const uint8_t u8 = reinterpret_cast<const uint8_t*>(b8)[i];
  const int16_t s16 = b16[i];
  const uint16_t u16 = reinterpret_cast<const uint16_t*>(b16)[i];
  o[0] = (uint32_t)(int32_t)s8;
  o[1] = (uint32_t)u8;
  o[2] = (uint32_t)(int32_t)s16;
  o[3] = (uint32_t)u16;
  const uint2 w = v2[i];
  o[4] = w.x ^ w.y;
  const float4 f = s4[((t ^ 1) < (int)blockDim.x && (i ^ 1) < n) ? (t ^ 1) : t];
  o[5] = __float_as_uint(f.x + f.y + f.z + f.w);
  const double d = sd[t];
  o[6] = (uint32_t)__double2loint(d);
  o[7] = (uint32_t)__double2hiint(d);
  o[8] = (s16 < (int16_t)-100) ? 1u : (s16 == (int16_t)77 ? 2u : 3u);
  o[9] = (uint32_t)(int32_t)(int16_t)(s16 * 3 + s8);
  o[10] = (uint32_t)(s8 < 0 ? -s8 : s8);
  o[11] = (uint32_t)__sad(s8, s16, 1u);
  o[12] = (uint32_t)min(s16, (int16_t)s8);
  o[13] = (uint32_t)max(u16, (uint16_t)u8);
  o[14] = (uint32_t)(uint8_t)(u8 + 200);
  o[15] = (uint32_t)(uint16_t)(u16 * 3u);
  out8[i] = (uint8_t)(u8 ^ 0x5a);
  out16[i] = (uint16_t)(u16 + 1);
  out4[i] = make_float4(f.w, f.z, f.y, f.x);
}

extern "C" __global__ void misc_ops(float* data, const unsigned long long* __restrict__ q, float scale,
                                    uint32_t* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float v = data[i];
  uint32_t* o = out + 8 * i;
  o[0] = isnan(v) ? 1u : 0u;
  o[1] = __float_as_uint(__fmul_rn(v, scale));
  o[2] = __float_as_uint(__fsub_rn(v, scale));
  const unsigned long long a = q[2 * i], b = q[2 * i + 1];
  const unsigned long long mn = min(a, b), mx = max(a, b);
  o[3] = (uint32_t)(mn ^ (mx >> 32));
  o[4] = a > b ? 1u : (a < b ? 2u : 3u);
  o[5] = v > scale ? 1u : (v <= -scale ? 2u : 0u);
  __syncwarp();
  o[6] = __shfl_xor_sync(0xffffffffu, __float_as_uint(v), 2);
  o[7] = min((uint32_t)a, (uint32_t)b);
  data[i] = v * 2.0f;
}

extern "C" __global__ void misc_ops2(const float4* __restrict__ v4, const int* __restrict__ si,
                                     const unsigned long long* __restrict__ q, const double* __restrict__ d,
                                     const uint16_t* __restrict__ h, int n, uint32_t* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float4 f = v4[i];
  uint32_t* o = out + 10 * i;
  o[0] = (f.x != f.x ? 1u : 0u) | (f.y != f.y ? 2u : 0u);
  o[1] = __float_as_uint(f.z * f.w);
  const long long s = si[i];
  const double x = (double)q[i];
  o[2] = (uint32_t)__double_as_longlong(x);
  o[3] = (uint32_t)(__double_as_longlong(x) >> 32);
  const unsigned long long u = (unsigned long long)d[i];
  o[4] = (uint32_t)u;
  o[5] = (uint32_t)(u >> 32);
  o[6] = (d[i] > 1.5 ? 1u : 0u) | (d[i] >= -2.0 ? 2u : 0u);
  const uint16_t a = h[2 * i], b = h[2 * i + 1];
  o[7] = (uint32_t)a * (uint32_t)b;
  const short sa = (short)a, sb = (short)b;
  const uint16_t pick = (sa != sb) ? (uint16_t)(a + 1u) : (uint16_t)(b ^ 0x5555u);
  o[8] = (uint32_t)pick;
  o[9] = (uint32_t)(s * 3 >> 1);
}
