// Narrow float conversions.
//  fp8_quant: pairs of f32 -> e4m3x2 and e5m2x2 with __NV_SATFINITE (cvt.rn.satfinite.{e4m3x2,
//    e5m2x2}.f32: round to nearest even, out-of-range and infinities clamp to the largest finite
//    value, NaN stays NaN), then back to f16x2 with __nv_cvt_fp8x2_to_halfraw2
//    (cvt.rn.f16x2.{e4m3x2,e5m2x2}) and to f32 (cvt.f32.f16). Also scales by a per-row amax the
//    way our quantiser does (__fdividef-free: 448 / amax computed with div.rn).
//  half_bf16_convert: f32 -> bf16 (rn, rz, bf16x2 rn), f32 -> f16 (rn, rz, rd, ru), f16/bf16 -> f32,
//    and bf16 arithmetic (__hadd/__hmul on bf16 and f16, __hfma), results written as raw bits.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

// x: 2*n floats (pairs). q43/q52: n u16 (two fp8 bytes each, low byte = first of the pair).
// back43/back52: 2*n floats decoded from the fp8 bytes.
extern "C" __global__ void fp8_quant(const float* __restrict__ x, int n, uint16_t* __restrict__ q43,
                                     uint16_t* __restrict__ q52, float* __restrict__ back43,
                                     float* __restrict__ back52) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float2 v = make_float2(x[2 * i], x[2 * i + 1]);
  const __nv_fp8x2_storage_t a = __nv_cvt_float2_to_fp8x2(v, __NV_SATFINITE, __NV_E4M3);
  const __nv_fp8x2_storage_t b = __nv_cvt_float2_to_fp8x2(v, __NV_SATFINITE, __NV_E5M2);
  q43[i] = a;
  q52[i] = b;
  const __half2_raw ha = __nv_cvt_fp8x2_to_halfraw2(a, __NV_E4M3);
  const __half2_raw hb = __nv_cvt_fp8x2_to_halfraw2(b, __NV_E5M2);
  const __half2 a2(ha), b2(hb);
  back43[2 * i] = __low2float(a2);
  back43[2 * i + 1] = __high2float(a2);
  back52[2 * i] = __low2float(b2);
  back52[2 * i + 1] = __high2float(b2);
}

// One warp per row of 64 floats: amax over the row (shfl.bfly + fabsf), scale = 448 / amax,
// q = e4m3(x * scale) with satfinite; out: 64 bytes per row plus the f32 scale.
extern "C" __global__ void fp8_rowquant(const float* __restrict__ x, uint8_t* __restrict__ q,
                                        float* __restrict__ scale_out) {
  const int row = blockIdx.x, lane = threadIdx.x;
  const float a = x[row * 64 + 2 * lane], b = x[row * 64 + 2 * lane + 1];
  float m = fmaxf(fabsf(a), fabsf(b));
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const float s = m > 0.0f ? 448.0f / m : 1.0f;
  const __nv_fp8x2_storage_t p = __nv_cvt_float2_to_fp8x2(make_float2(a * s, b * s), __NV_SATFINITE, __NV_E4M3);
  reinterpret_cast<uint16_t*>(q)[row * 32 + lane] = p;
  if (lane == 0) scale_out[row] = s;
}

// out16: 12 u16 per element; out32: 2 floats per element.
extern "C" __global__ void half_bf16_convert(const float* __restrict__ x, const float* __restrict__ y, int n,
                                             uint16_t* __restrict__ out16, float* __restrict__ out32) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float a = x[i], b = y[i];
  uint16_t* o = out16 + 12 * i;
  o[0] = __bfloat16_as_ushort(__float2bfloat16_rn(a));
  o[1] = __bfloat16_as_ushort(__float2bfloat16_rz(a));
  const __nv_bfloat162 p = __floats2bfloat162_rn(a, b);
  o[2] = __bfloat16_as_ushort(p.x);
  o[3] = __bfloat16_as_ushort(p.y);
  o[4] = __half_as_ushort(__float2half_rn(a));
  o[5] = __half_as_ushort(__float2half_rz(a));
  o[6] = __half_as_ushort(__float2half_rd(a));
  o[7] = __half_as_ushort(__float2half_ru(a));
  const __nv_bfloat16 ba = __float2bfloat16_rn(a), bb = __float2bfloat16_rn(b);
  o[8] = __bfloat16_as_ushort(__hadd(ba, bb));
  o[9] = __bfloat16_as_ushort(__hmul(ba, bb));
  const __half ha = __float2half_rn(a), hb = __float2half_rn(b);
  o[10] = __half_as_ushort(__hadd(ha, hb));
  o[11] = __half_as_ushort(__hfma(ha, hb, ha));
  out32[2 * i] = __bfloat162float(ba) + __half2float(hb);
  out32[2 * i + 1] = __half2float(ha) * __bfloat162float(bb);
}
