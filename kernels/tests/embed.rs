//! The embedding gather against `Linear::row` (BF16 and F32 tables), copied into `nc` streams
//! as `Model::forward` does. Exact (bit for bit).

use dsv4_kernels::ops::embed::{embed, embed_into, DevEmbed};
use dsv4_kernels::Gpu;
use dsv4_reference::checkpoint::Bytes;
use dsv4_reference::linear::{Linear, Weight};
use proptest::prelude::*;

mod common;
use common::Rng;

fn table(rng: &mut Rng, vocab: usize, d: usize, bf16: bool) -> Linear {
    if bf16 {
        // Any bit pattern but NaN (NaN payloads are copied too, but are awkward to compare).
        let bytes: Vec<u8> = (0..vocab * d)
            .flat_map(|_| {
                let mut b = rng.next() as u16;
                if b & 0x7f80 == 0x7f80 {
                    b &= 0xbfff;
                }
                b.to_le_bytes()
            })
            .collect();
        Linear { out: vocab, inp: d, weight: Weight::Bf16(Bytes::from_vec(bytes)) }
    } else {
        let v: Vec<f32> = (0..vocab * d).map(|_| (rng.next() >> 40) as f32 / 1e6 - 8.0).collect();
        Linear::f32(vocab, d, v)
    }
}

fn reference(e: &Linear, tokens: &[u32], nc: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for &t in tokens {
        let mut row = vec![0.0; e.inp];
        e.row(t as usize, &mut row);
        (0..nc).for_each(|_| out.extend_from_slice(&row));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn gather_matches_reference(bf16 in any::<bool>(), vocab in 1usize..60, d in 1usize..50, t in 1usize..6, nc in 1usize..5, seed in 1u64..u64::MAX) {
        let gpu = Gpu::for_tests();
        let mut rng = Rng(seed);
        let e = table(&mut rng, vocab, d, bf16);
        let tokens: Vec<u32> = (0..t).map(|_| rng.below(vocab) as u32).collect();
        let want = reference(&e, &tokens, nc);
        let de = DevEmbed::upload(&gpu, &e).unwrap();
        let ids = gpu.upload_u32(&tokens).unwrap();
        let out = gpu.alloc_poisoned(t * nc * d * 4).unwrap();
        embed_into(&gpu, &de, &ids, t, nc, &out).unwrap();
        let got = out.download_f32().unwrap();
        prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "gather differs");
        let got2 = embed(&gpu, &de, &tokens, nc).unwrap().download_f32().unwrap();
        prop_assert!(got2.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "embed differs");
    }
}

#[test]
fn bad_ids_are_refused_on_the_host_and_nan_on_the_device() {
    let gpu = Gpu::for_tests();
    let mut rng = Rng(5);
    let e = table(&mut rng, 10, 7, true);
    let de = DevEmbed::upload(&gpu, &e).unwrap();
    assert!(embed(&gpu, &de, &[3, 10], 2).is_err());
    let ids = gpu.upload_u32(&[3, 10]).unwrap();
    let out = gpu.alloc_poisoned(2 * 2 * 7 * 4).unwrap();
    embed_into(&gpu, &de, &ids, 2, 2, &out).unwrap();
    let got = out.download_f32().unwrap();
    assert!(got[..14].iter().all(|v| !v.is_nan()));
    assert!(got[14..].iter().all(|v| v.is_nan()));
}
