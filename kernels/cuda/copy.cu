// copy: strided 2-D copies of f32 matrices on the device.
//
// copy_strided_f32: dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < cols.
//   Used to gather a column block of a row-major matrix into a contiguous one and to scatter it
//   back (the grouped attention output: each group's columns of o, each group's z columns).
//   Launch: grid (ceil(cols / 256), rows), block 256. Exact (a copy).

extern "C" __global__ void copy_strided_f32(float* __restrict__ dst, unsigned dst_stride,
                                            const float* __restrict__ src, unsigned src_stride,
                                            unsigned rows, unsigned cols) {
    unsigned r = blockIdx.y;
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && c < cols) {
        dst[(unsigned long long)r * dst_stride + c] = src[(unsigned long long)r * src_stride + c];
    }
}
