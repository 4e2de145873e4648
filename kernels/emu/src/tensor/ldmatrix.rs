//! `ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16` and its inverse `stmatrix`.
//!
//! Each of the `num` matrices is 8 rows x 8 b16 elements; row `r` of matrix `i` is 16 bytes at
//! the address lane `8*i + r` supplies. Lane `l` receives, for matrix `i`, one 32-bit register
//! holding two consecutive elements (low half first):
//! - without `.trans`: row `l / 4`, columns `2*(l % 4)` and `2*(l % 4) + 1`;
//! - with `.trans`: column `l / 4`, rows `2*(l % 4)` and `2*(l % 4) + 1` (the fragment of the
//!   transposed matrix).

/// (row, col) of the b16 element that half `h` (0 = low) of lane `lane`'s register holds.
pub fn ldmatrix_coord(trans: bool, lane: u32, h: u32) -> (u32, u32) {
    let (a, b) = (lane / 4, 2 * (lane % 4) + h);
    if trans {
        (b, a)
    } else {
        (a, b)
    }
}

fn check_num(num: usize) -> Result<(), String> {
    if matches!(num, 1 | 2 | 4) {
        Ok(())
    } else {
        Err(format!("ldmatrix/stmatrix: .x{num} is not a valid count"))
    }
}

/// ldmatrix .m8n8 .x{1,2,4} [.trans] .b16: lane `l` supplies the row address of row l%8 of
/// matrix l/8 (only lanes < 8*num matter). `read` returns the 16 bytes of one row.
/// Returns regs[lane * num + i]: lane's 32-bit register for matrix i.
pub fn ldmatrix(
    num: usize,
    trans: bool,
    row_addr: &[u32; 32],
    read: &mut dyn FnMut(u32) -> Result<[u8; 16], String>,
) -> Result<Vec<u32>, String> {
    check_num(num)?;
    // mats[i][r][c]: element (r, c) of matrix i.
    let mut mats = vec![[[0u16; 8]; 8]; num];
    for (i, mat) in mats.iter_mut().enumerate() {
        for (r, row) in mat.iter_mut().enumerate() {
            let bytes = read(row_addr[8 * i + r])?;
            for (c, v) in row.iter_mut().enumerate() {
                *v = u16::from_le_bytes([bytes[2 * c], bytes[2 * c + 1]]);
            }
        }
    }
    let mut regs = vec![0u32; 32 * num];
    for lane in 0..32u32 {
        for (i, mat) in mats.iter().enumerate() {
            let mut v = 0u32;
            for h in 0..2 {
                let (r, c) = ldmatrix_coord(trans, lane, h);
                v |= (mat[r as usize][c as usize] as u32) << (16 * h);
            }
            regs[lane as usize * num + i] = v;
        }
    }
    Ok(regs)
}

/// stmatrix, the inverse: writes each matrix row (16 bytes) to the address lane l supplies.
pub fn stmatrix(
    num: usize,
    trans: bool,
    row_addr: &[u32; 32],
    regs: &[u32],
    write: &mut dyn FnMut(u32, [u8; 16]) -> Result<(), String>,
) -> Result<(), String> {
    check_num(num)?;
    if regs.len() < 32 * num {
        return Err(format!("stmatrix: {} registers given, {} needed", regs.len(), 32 * num));
    }
    let mut mats = vec![[[0u16; 8]; 8]; num];
    for lane in 0..32u32 {
        for (i, mat) in mats.iter_mut().enumerate() {
            let v = regs[lane as usize * num + i];
            for h in 0..2 {
                let (r, c) = ldmatrix_coord(trans, lane, h);
                mat[r as usize][c as usize] = (v >> (16 * h)) as u16;
            }
        }
    }
    for (i, mat) in mats.iter().enumerate() {
        for (r, row) in mat.iter().enumerate() {
            let mut bytes = [0u8; 16];
            for (c, v) in row.iter().enumerate() {
                bytes[2 * c..2 * c + 2].copy_from_slice(&v.to_le_bytes());
            }
            write(row_addr[8 * i + r], bytes)?;
        }
    }
    Ok(())
}
