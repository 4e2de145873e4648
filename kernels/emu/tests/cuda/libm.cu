// The accurate CUDA math library, which expands into long f32/f64 instruction sequences
// (range reduction with fma.rn, ex2.approx.ftz.f32, rcp.approx.ftz.f64, f64 polynomials) of the
// kind our production kernels use (expf, exp, log, sqrt, rint, copysignf, fminf/fmaxf).
//  math_f32: expf, logf, sqrtf, tanhf, copysignf, fminf/fmaxf (NaN and signed-zero operands),
//            fabsf, rintf, __saturatef. 10 f32 results per element.
//  math_f64: exp, log, sqrt, rint, division, fma, f32<->f64 conversions, llrint, (long long) and
//            fmax/fmin on doubles. 12 u64 results per element (doubles as raw bits).
#include <cstdint>

extern "C" __global__ void math_f32(const float* __restrict__ x, const float* __restrict__ y, int n,
                                    float* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float a = x[i], b = y[i];
  float* o = out + 10 * i;
  o[0] = expf(a);
  o[1] = logf(fabsf(b));
  o[2] = sqrtf(fabsf(b));
  o[3] = tanhf(a * 0.125f);
  o[4] = copysignf(a, b);
  o[5] = fminf(a, b);
  o[6] = fmaxf(a, b);
  o[7] = fabsf(b);
  o[8] = rintf(a * 0.3f);
  o[9] = __saturatef(b);
}

extern "C" __global__ void math_f64(const double* __restrict__ x, const double* __restrict__ y, int n,
                                    unsigned long long* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const double a = x[i], b = y[i];
  unsigned long long* o = out + 12 * i;
  o[0] = __double_as_longlong(exp(a));
  o[1] = __double_as_longlong(log(fabs(b)));
  o[2] = __double_as_longlong(sqrt(fabs(b)));
  o[3] = __double_as_longlong(rint(a * 0.3));
  o[4] = __double_as_longlong(a / b);
  o[5] = __double_as_longlong(fma(a, b, a * 0.5));
  o[6] = __double_as_longlong((double)(float)b);
  o[7] = (unsigned long long)llrint(a);
  o[8] = (unsigned long long)(long long)b;
  o[9] = __double_as_longlong(fmax(a, b) - fmin(a, b));
  o[10] = __double_as_longlong(a * b - 1.0);
  o[11] = (a >= b) ? 1ull : (a < b ? 2ull : 3ull);
}
