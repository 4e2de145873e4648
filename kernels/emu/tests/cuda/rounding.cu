// Directed-rounding and correctly rounded float intrinsics (no -ftz: subnormals are kept).
//  directed_rounding: __fadd_rz/rd/ru/rn, __fmul_rz/rd/ru, __fmaf_rz/rd/ru/rn, __fdiv_rn,
//    __fsqrt_rn, __float2int_rn/rz/rd/ru, __float2uint_rz, __int2float_rz/rd/ru,
//    __uint2float_rn, __float2ll_rz, __ll2float_rn, fminf/fmaxf, and cvt.rni/rzi/rmi/rpi
//    (rintf/truncf/floorf/ceilf). 28 u32 results per element (float results as raw bits).
#include <cstdint>

extern "C" __global__ void directed_rounding(const float* __restrict__ a, const float* __restrict__ b,
                                             const float* __restrict__ c, const int* __restrict__ k, int n,
                                             uint32_t* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = a[i], y = b[i], z = c[i];
  const int m = k[i];
  uint32_t* o = out + 28 * i;
  o[0] = __float_as_uint(__fadd_rz(x, y));
  o[1] = __float_as_uint(__fadd_rd(x, y));
  o[2] = __float_as_uint(__fadd_ru(x, y));
  o[3] = __float_as_uint(__fadd_rn(x, y));
  o[4] = __float_as_uint(__fmul_rz(x, y));
  o[5] = __float_as_uint(__fmul_rd(x, y));
  o[6] = __float_as_uint(__fmul_ru(x, y));
  o[7] = __float_as_uint(__fmaf_rz(x, y, z));
  o[8] = __float_as_uint(__fmaf_rd(x, y, z));
  o[9] = __float_as_uint(__fmaf_ru(x, y, z));
  o[10] = __float_as_uint(__fmaf_rn(x, y, z));
  o[11] = __float_as_uint(__fdiv_rn(x, y));
  o[12] = __float_as_uint(__fsqrt_rn(fabsf(z)));
  o[13] = (uint32_t)__float2int_rn(x);
  o[14] = (uint32_t)__float2int_rz(x);
  o[15] = (uint32_t)__float2int_rd(x);
  o[16] = (uint32_t)__float2int_ru(x);
  o[17] = __float2uint_rz(y);
  o[18] = __float_as_uint(__int2float_rz(m));
  o[19] = __float_as_uint(__int2float_rd(m));
  o[20] = __float_as_uint(__int2float_ru(m));
  o[21] = __float_as_uint(__uint2float_rn((uint32_t)m));
  o[22] = (uint32_t)__float2ll_rz(z);
  o[23] = __float_as_uint(__ll2float_rn((long long)m * 1000003LL));
  o[24] = __float_as_uint(rintf(x));
  o[25] = __float_as_uint(truncf(y));
  o[26] = __float_as_uint(floorf(z));
  o[27] = __float_as_uint(ceilf(x) + fminf(y, z) - fmaxf(x, z));
}
