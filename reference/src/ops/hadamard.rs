//! The Walsh–Hadamard transform (Sylvester order) scaled by 1/sqrt(n), applied to each row.

/// In place on every row of length `n` (a power of two).
pub fn hadamard_inplace(x: &mut [f32], n: usize) {
    assert!(n.is_power_of_two(), "Hadamard size {n} is not a power of two");
    let scale = 1.0 / (n as f32).sqrt();
    for row in x.chunks_mut(n) {
        let mut h = 1;
        while h < n {
            for i in (0..n).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (row[j], row[j + h]);
                    row[j] = a + b;
                    row[j + h] = a - b;
                }
            }
            h *= 2;
        }
        row.iter_mut().for_each(|v| *v *= scale);
    }
}

/// The explicit matrix `H[i][j] = (-1)^popcount(i & j) / sqrt(n)` (for tests).
pub fn hadamard_matrix(n: usize) -> Vec<f32> {
    let scale = 1.0 / (n as f32).sqrt();
    (0..n * n).map(|ij| if ((ij / n) & (ij % n)).count_ones().is_multiple_of(2) { scale } else { -scale }).collect()
}
