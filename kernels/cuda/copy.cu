// copy: strided 2-D copies and a broadcast add of f32 matrices on the device.
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

// add_rows_broadcast_f32: x[(t * nc + j) * d + c] += e[t * d + c] for t < rows, j < nc, c < d.
//   The MTP block's input: each token's projected embedding added to every one of its nc
//   projected streams. Launch: grid (ceil(d / 256), rows * nc), block 256. Exact (one f32 add,
//   the reference's order).
extern "C" __global__ void add_rows_broadcast_f32(float* __restrict__ x, const float* __restrict__ e,
                                                  unsigned rows, unsigned nc, unsigned d) {
    unsigned r = blockIdx.y;
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows * nc && c < d) {
        x[(unsigned long long)r * d + c] += e[(unsigned long long)(r / nc) * d + c];
    }
}
