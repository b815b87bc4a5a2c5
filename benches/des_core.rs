//! Our table-driven DES core against the RustCrypto `des` crate: block and key schedule.
use cardlane::crypto::des_fast::{DesKey, Tdes};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};

fn des_core(c: &mut Criterion) {
    let key = DesKey::new(0x0123456789ABCDEF);
    c.bench_function("des_fast block", |b| {
        b.iter(|| key.encrypt(black_box(0x4E6F772069732074)))
    });
    c.bench_function("des_fast key schedule", |b| {
        b.iter(|| DesKey::new(black_box(0x0123456789ABCDEF)))
    });
    let t = Tdes::from_halves(0x0123456789ABCDEF, 0xFEDCBA9876543210);
    c.bench_function("des_fast tdes-ede2 block", |b| {
        b.iter(|| t.encrypt(black_box(0x4E6F772069732074)))
    });
    let rc = des::Des::new_from_slice(&0x0123456789ABCDEFu64.to_be_bytes()).unwrap();
    c.bench_function("des crate block", |b| {
        b.iter(|| {
            let mut blk =
                GenericArray::clone_from_slice(&black_box(0x4E6F772069732074u64).to_be_bytes());
            rc.encrypt_block(&mut blk);
            blk
        })
    });
    c.bench_function("des crate key schedule", |b| {
        b.iter(|| {
            des::Des::new_from_slice(&black_box(0x0123456789ABCDEFu64).to_be_bytes()).unwrap()
        })
    });
}

criterion_group!(benches, des_core);
criterion_main!(benches);
