// Reads %clock64 (clock64()), which tests must not depend on: the emulator rejects the module
// at load time, naming the line and the special register. Kept alone in its file because the
// whole module is refused.
#include <cstdint>

extern "C" __global__ void clock_read(unsigned long long* __restrict__ out) {
  out[threadIdx.x] = clock64();
}
