//! Host-side DUKPT operation (issue 3 item 5): IPEK + current key (8 counter bits) + data key
//! + CBC decrypt of 80 bytes; uncached, with the IPEK cache, and AES-128.
use cardlane::crypto::{
    decrypt_reader_data, encrypt_reader_data, DataCipher, DukptHost, ReaderKey,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn dukpt(c: &mut Criterion) {
    let bdk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let ksn = hex::decode("FFFF9876543210E0AAAA").unwrap();
    let ct = encrypt_reader_data(
        &bdk,
        &ksn,
        ReaderKey::Data,
        DataCipher::Tdes,
        None,
        &[0x3B; 80],
    )
    .unwrap();
    c.bench_function("tdes dukpt uncached", |b| {
        b.iter(|| {
            decrypt_reader_data(
                black_box(&bdk),
                black_box(&ksn),
                ReaderKey::Data,
                DataCipher::Tdes,
                None,
                black_box(&ct),
            )
            .unwrap()
        })
    });
    let mut host = DukptHost::new(&bdk, 64);
    c.bench_function("tdes dukpt ipek cache", |b| {
        b.iter(|| {
            host.decrypt_reader_data(
                black_box(&ksn),
                ReaderKey::Data,
                DataCipher::Tdes,
                None,
                black_box(&ct),
            )
            .unwrap()
        })
    });
    let abdk = hex::decode("FEDCBA9876543210F1F1F1F1F1F1F1F1").unwrap();
    let aksn = hex::decode("1234567890123456000000FF").unwrap();
    let act = encrypt_reader_data(
        &abdk,
        &aksn,
        ReaderKey::Data,
        DataCipher::Aes,
        None,
        &[0x3B; 80],
    )
    .unwrap();
    c.bench_function("aes128 dukpt uncached", |b| {
        b.iter(|| {
            decrypt_reader_data(
                black_box(&abdk),
                black_box(&aksn),
                ReaderKey::Data,
                DataCipher::Aes,
                None,
                black_box(&act),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, dukpt);
criterion_main!(benches);
