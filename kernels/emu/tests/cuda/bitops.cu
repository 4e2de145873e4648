// Integer bit manipulation and 64-bit integer math.
//  bit_ops: __popc/__popcll, __clz/__clzll, __ffs, __brev/__brevll, __byte_perm (prmt) with
//    data-dependent selectors, __funnelshift_l/r (wrap) and _lc/_rc (clamp) (shf), bfe.u32,
//    bfe.s32, bfi.b32 (positions and lengths up to 63, past the register's msb) and lop3.b32
//    (three truth tables) through inline asm, __umulhi/__mulhi, __sad, min/max. 24 u32 results
//    per element.
//  prmt_modes: prmt.b32 in the default mode with sign replication (selector nibble bit 3) and in
//    the f4e, b4e, rc8, ecl, ecr and rc16 modes. 7 u32 results per element.
//  int64_math: __umul64hi/__mul64hi (mul.hi.u64/s64), mul.lo.u64, u64 and s64 division and
//    remainder (div/rem.{u64,s64}, divisors never zero), u32/s32 division and remainder,
//    shifts by data-dependent amounts, mul.wide. 14 u64 results per element.
#include <cstdint>

extern "C" __global__ void bit_ops(const uint32_t* __restrict__ a, const uint32_t* __restrict__ b,
                                   const uint32_t* __restrict__ c, int n, uint32_t* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint32_t x = a[i], y = b[i], z = c[i];
  uint32_t* o = out + 24 * i;
  const unsigned long long xy = ((unsigned long long)x << 32) | y;
  o[0] = __popc(x);
  o[1] = __popcll(xy);
  o[2] = __clz(x >> (y & 31));
  o[3] = __clzll(xy >> (z & 63));
  o[4] = __ffs(x & (y | 0x80000000u));
  o[5] = __brev(x);
  o[6] = (uint32_t)(__brevll(xy) >> 7);
  o[7] = __byte_perm(x, y, z & 0x7777u);
  o[8] = __funnelshift_l(x, y, z);
  o[9] = __funnelshift_r(x, y, z);
  o[10] = __funnelshift_lc(x, y, z & 63);
  o[11] = __funnelshift_rc(x, y, z & 63);
  uint32_t r;
  asm("bfe.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y & 31), "r"((z & 31) + 1));
  o[12] = r;
  asm("bfe.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"((y >> 5) & 63), "r"((z >> 8) & 63));
  o[13] = r;
  asm("bfi.b32 %0, %1, %2, %3, %4;" : "=r"(r) : "r"(x), "r"(y), "r"(z & 63), "r"((z >> 6) & 63));
  o[14] = r;
  asm("lop3.b32 %0, %1, %2, %3, 0xE8;" : "=r"(r) : "r"(x), "r"(y), "r"(z));  // majority
  o[15] = r;
  asm("lop3.b32 %0, %1, %2, %3, 0x96;" : "=r"(r) : "r"(x), "r"(y), "r"(z));  // a ^ b ^ c
  o[16] = r;
  asm("lop3.b32 %0, %1, %2, %3, 0x1B;" : "=r"(r) : "r"(x), "r"(y), "r"(z));  // arbitrary table
  o[17] = r;
  o[18] = __umulhi(x, y);
  o[19] = (uint32_t)__mulhi((int)x, (int)y);
  o[20] = __sad((int)x, (int)y, z & 0xffu);
  o[21] = (uint32_t)min((int)x, (int)y);
  o[22] = max(x, y);
  o[23] = (uint32_t)((int)x >> (y & 31));
}

extern "C" __global__ void prmt_modes(const uint32_t* __restrict__ a, const uint32_t* __restrict__ b,
                                      const uint32_t* __restrict__ c, int n, uint32_t* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint32_t x = a[i], y = b[i], z = c[i];
  uint32_t* o = out + 7 * i;
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[0] = r;
  asm("prmt.b32.f4e %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[1] = r;
  asm("prmt.b32.b4e %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[2] = r;
  asm("prmt.b32.rc8 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[3] = r;
  asm("prmt.b32.ecl %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[4] = r;
  asm("prmt.b32.ecr %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[5] = r;
  asm("prmt.b32.rc16 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
  o[6] = r;
}

extern "C" __global__ void int64_math(const unsigned long long* __restrict__ a,
                                      const unsigned long long* __restrict__ b, int n,
                                      unsigned long long* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const unsigned long long x = a[i], y = b[i];
  const long long sx = (long long)x, sy = (long long)y;
  unsigned long long* o = out + 14 * i;
  o[0] = __umul64hi(x, y);
  o[1] = (unsigned long long)__mul64hi(sx, sy);
  o[2] = x * y;
  o[3] = x / y;
  o[4] = x % y;
  o[5] = (unsigned long long)(sx / sy);
  o[6] = (unsigned long long)(sx % sy);
  const uint32_t x32 = (uint32_t)x, y32 = (uint32_t)(y >> 32) | 1u;
  o[7] = x32 / y32;
  o[8] = x32 % y32;
  o[9] = (unsigned long long)(long long)((int)x32 / (int)y32);
  o[10] = (unsigned long long)(long long)((int)x32 % (int)y32);
  o[11] = (unsigned long long)x32 * (unsigned long long)(uint32_t)(y >> 17);
  o[12] = (x << (y & 63)) ^ (x >> ((y >> 8) & 63));
  o[13] = (unsigned long long)(sx >> ((y >> 16) & 63));
}
