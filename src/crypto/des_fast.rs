//! Table-driven single DES on `u64` blocks (big-endian bit numbering as in FIPS 46-3).
//!
//! Why our own core: DUKPT on the host is dominated by single-DES blocks and key schedules, and
//! the bitwise RustCrypto `des` crate is several times too slow for the speed goal. This core is
//! safe Rust: S-boxes are merged with P into eight 64-entry tables (`SP`), IP/FP are the classic
//! bit-swap sequence, and the key schedule goes through precomputed PC-1 and PC-2 tables.
//! Round keys are stored "cooked": the eight 6-bit chunks are placed where the round function
//! reads them (see [`f`]), so a round is two rotations, two XORs and eight lookups.
//!
//! The key schedule is a pure bit selection, hence linear over XOR:
//! `schedule(a ^ b) == schedule(a) ^ schedule(b)`. DUKPT exploits that for its C0C0… mask.
//! Verified against the `des` crate by known-answer tests and proptests (see the tests below).
use zeroize::{Zeroize, ZeroizeOnDrop};

pub(super) const SBOX: [[u8; 64]; 8] = [
    [
        14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12,
        11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9,
        1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
    ],
    [
        15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1,
        10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15,
        4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
    ],
    [
        10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5,
        14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6,
        9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
    ],
    [
        7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2,
        12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1,
        13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
    ],
    [
        2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15,
        10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14,
        2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
    ],
    [
        12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13,
        14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5,
        15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
    ],
    [
        4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5,
        12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4,
        10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
    ],
    [
        13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6,
        11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10,
        8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
    ],
];

pub(super) const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19,
    13, 30, 6, 22, 11, 4, 25,
];

pub(super) const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60,
    52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29,
    21, 13, 5, 28, 20, 12, 4,
];

pub(super) const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52,
    31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

pub(super) const SHIFTS: [u8; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// `SP[j][x]`: S-box `j` applied to the 6-bit chunk `x` (b1 = MSB), its 4 output bits put at
/// nibble `j` of the 32-bit word, then permuted by P.
static SP: [[u32; 64]; 8] = build_sp();

const fn build_sp() -> [[u32; 64]; 8] {
    let mut t = [[0u32; 64]; 8];
    let mut j = 0;
    while j < 8 {
        let mut x = 0;
        while x < 64 {
            let row = ((x >> 4) & 2) | (x & 1);
            let col = (x >> 1) & 0xf;
            let s = SBOX[j][row * 16 + col] as u32;
            let pre = s << (28 - 4 * j);
            // P: output bit i (1-based, MSB first) is input bit P[i].
            let mut out = 0u32;
            let mut i = 0;
            while i < 32 {
                let src = P[i] as u32;
                if pre & (1 << (32 - src)) != 0 {
                    out |= 1 << (31 - i);
                }
                i += 1;
            }
            t[j][x] = out;
            x += 1;
        }
        j += 1;
    }
    t
}

/// Where subkey bit `k` (0-based, MSB first of the 48-bit subkey) lives in a cooked round key:
/// even S-box chunks in the high word at bytes 3..0 (chunk 0 at bits 24..29), odd chunks in the
/// low word likewise. This matches the extraction in [`f`].
const fn cooked_bit(k: usize) -> u64 {
    let j = k / 6;
    let p = k % 6;
    let base = 24 - 8 * (j / 2) + (5 - p);
    let word = if j % 2 == 0 { 32 } else { 0 };
    1u64 << (base + word)
}

/// PC-1 by key byte: `PC1T[b][v]` is the 56-bit C‖D contribution of key byte `b` = `v`
/// (C in bits 55..28, D in bits 27..0, CD bit 1 at bit 55).
static PC1T: [[u64; 256]; 8] = build_pc1();

const fn build_pc1() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut b = 0;
    while b < 8 {
        let mut v = 0;
        while v < 256 {
            let mut out = 0u64;
            let mut i = 0;
            while i < 56 {
                let kb = PC1[i] as usize - 1;
                if kb / 8 == b && (v >> (7 - kb % 8)) & 1 != 0 {
                    out |= 1 << (55 - i);
                }
                i += 1;
            }
            t[b][v] = out;
            v += 1;
        }
        b += 1;
    }
    t
}

/// PC-2 by 7-bit chunk: chunks 0..4 are C bits 1-7, 8-14, 15-21, 22-28; chunks 4..8 the same
/// of D. Entries are cooked round-key bits.
static PC2T: [[u64; 128]; 8] = build_pc2();

const fn build_pc2() -> [[u64; 128]; 8] {
    let mut t = [[0u64; 128]; 8];
    let mut c = 0;
    while c < 8 {
        let mut v = 0;
        while v < 128 {
            let mut out = 0u64;
            let mut i = 0;
            while i < 7 {
                if (v >> (6 - i)) & 1 != 0 {
                    let pos = 28 * (c / 4) + 7 * (c % 4) + i + 1;
                    let mut k = 0;
                    while k < 48 {
                        if PC2[k] as usize == pos {
                            out |= cooked_bit(k);
                        }
                        k += 1;
                    }
                }
                i += 1;
            }
            t[c][v] = out;
            v += 1;
        }
        c += 1;
    }
    t
}

#[inline(always)]
fn rot28(x: u32, s: u8) -> u32 {
    ((x << s) | (x >> (28 - s))) & 0x0fff_ffff
}

/// The DES round function on cooked key `k`. Chunk `j` of E(R) is
/// `R.rotate_right(27 - 4j) & 63`; even chunks all come out of `R.rotate_right(3)` and odd
/// chunks out of `R.rotate_left(1)`, 8 bits apart.
#[inline(always)]
fn f(r: u32, k: u64) -> u32 {
    // Mask once, then every chunk is a plain byte: no per-chunk AND.
    let t = (r.rotate_right(3) ^ (k >> 32) as u32) & 0x3f3f_3f3f;
    let u = (r.rotate_left(1) ^ k as u32) & 0x3f3f_3f3f;
    SP[0][(t >> 24) as usize & 63]
        | SP[2][(t >> 16) as u8 as usize & 63]
        | SP[4][(t >> 8) as u8 as usize & 63]
        | SP[6][t as u8 as usize & 63]
        | SP[1][(u >> 24) as usize & 63]
        | SP[3][(u >> 16) as u8 as usize & 63]
        | SP[5][(u >> 8) as u8 as usize & 63]
        | SP[7][u as u8 as usize & 63]
}

/// Initial permutation as the standard sequence of masked bit swaps.
#[inline(always)]
pub(crate) fn ip(x: u64) -> (u32, u32) {
    let mut l = (x >> 32) as u32;
    let mut r = x as u32;
    let mut t = ((l >> 4) ^ r) & 0x0f0f_0f0f;
    r ^= t;
    l ^= t << 4;
    t = ((l >> 16) ^ r) & 0x0000_ffff;
    r ^= t;
    l ^= t << 16;
    t = ((r >> 2) ^ l) & 0x3333_3333;
    l ^= t;
    r ^= t << 2;
    t = ((r >> 8) ^ l) & 0x00ff_00ff;
    l ^= t;
    r ^= t << 8;
    t = ((l >> 1) ^ r) & 0x5555_5555;
    r ^= t;
    l ^= t << 1;
    (l, r)
}

/// Final permutation: the swaps of [`ip`] in reverse order (each swap is an involution).
#[inline(always)]
pub(crate) fn fp(mut l: u32, mut r: u32) -> u64 {
    let mut t = ((l >> 1) ^ r) & 0x5555_5555;
    r ^= t;
    l ^= t << 1;
    t = ((r >> 8) ^ l) & 0x00ff_00ff;
    l ^= t;
    r ^= t << 8;
    t = ((r >> 2) ^ l) & 0x3333_3333;
    l ^= t;
    r ^= t << 2;
    t = ((l >> 16) ^ r) & 0x0000_ffff;
    r ^= t;
    l ^= t << 16;
    t = ((l >> 4) ^ r) & 0x0f0f_0f0f;
    r ^= t;
    l ^= t << 4;
    ((l as u64) << 32) | r as u64
}

/// A single-DES key schedule (16 cooked round keys). Zeroed on drop; Debug shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DesKey {
    ks: [u64; 16],
}

impl std::fmt::Debug for DesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DesKey(***)")
    }
}

impl DesKey {
    /// Key schedule of the 64-bit key `k` (big-endian; parity bits ignored).
    #[inline]
    pub fn new(k: u64) -> Self {
        let b = k.to_be_bytes();
        let mut cd = 0u64;
        for (tab, byte) in PC1T.iter().zip(b) {
            cd |= tab[byte as usize];
        }
        let mut c = (cd >> 28) as u32;
        let mut d = (cd as u32) & 0x0fff_ffff;
        let mut ks = [0u64; 16];
        for (slot, &s) in ks.iter_mut().zip(SHIFTS.iter()) {
            c = rot28(c, s);
            d = rot28(d, s);
            *slot = PC2T[0][((c >> 21) & 127) as usize]
                | PC2T[1][((c >> 14) & 127) as usize]
                | PC2T[2][((c >> 7) & 127) as usize]
                | PC2T[3][(c & 127) as usize]
                | PC2T[4][((d >> 21) & 127) as usize]
                | PC2T[5][((d >> 14) & 127) as usize]
                | PC2T[6][((d >> 7) & 127) as usize]
                | PC2T[7][(d & 127) as usize];
        }
        DesKey { ks }
    }

    /// The schedule of `key ^ mask` given the schedule of `mask` (the schedule is linear).
    #[inline]
    pub fn xor(&self, mask: &DesKey) -> DesKey {
        let mut ks = self.ks;
        for (a, b) in ks.iter_mut().zip(mask.ks.iter()) {
            *a ^= b;
        }
        DesKey { ks }
    }

    /// 16 encryption rounds on the IP'd halves; returns the halves already swapped for FP.
    #[inline(always)]
    pub(crate) fn rounds_enc(&self, mut l: u32, mut r: u32) -> (u32, u32) {
        for pair in self.ks.chunks_exact(2) {
            if let [a, b] = pair {
                l ^= f(r, *a);
                r ^= f(l, *b);
            }
        }
        (r, l)
    }

    #[inline(always)]
    pub(crate) fn rounds_dec(&self, mut l: u32, mut r: u32) -> (u32, u32) {
        for pair in self.ks.rchunks_exact(2) {
            if let [b, a] = pair {
                l ^= f(r, *a);
                r ^= f(l, *b);
            }
        }
        (r, l)
    }

    #[inline]
    pub fn encrypt(&self, block: u64) -> u64 {
        let (l, r) = ip(block);
        let (l, r) = self.rounds_enc(l, r);
        fp(l, r)
    }

    #[inline]
    pub fn decrypt(&self, block: u64) -> u64 {
        let (l, r) = ip(block);
        let (l, r) = self.rounds_dec(l, r);
        fp(l, r)
    }
}

/// `N` independent blocks, each with its own schedule, rounds interleaved. Why: one DES block
/// is a serial chain of 16 table lookups (latency-bound); independent blocks fill the gaps, so
/// two to four blocks cost little more than one. DUKPT has such pairs everywhere (plain and
/// masked halves, the two OWF halves, CBC-decrypt blocks).
#[inline(always)]
fn rounds_multi<const N: usize, const DEC: bool>(
    keys: [&DesKey; N],
    mut l: [u32; N],
    mut r: [u32; N],
) -> ([u32; N], [u32; N]) {
    for i in 0..8 {
        let (a, b) = if DEC {
            (15 - 2 * i, 14 - 2 * i)
        } else {
            (2 * i, 2 * i + 1)
        };
        for j in 0..N {
            l[j] ^= f(r[j], keys[j].ks[a]);
        }
        for j in 0..N {
            r[j] ^= f(l[j], keys[j].ks[b]);
        }
    }
    (r, l)
}

#[inline(always)]
fn ip_multi<const N: usize>(blocks: [u64; N]) -> ([u32; N], [u32; N]) {
    let mut l = [0u32; N];
    let mut r = [0u32; N];
    for j in 0..N {
        (l[j], r[j]) = ip(blocks[j]);
    }
    (l, r)
}

#[inline(always)]
fn fp_multi<const N: usize>(l: [u32; N], r: [u32; N]) -> [u64; N] {
    let mut out = [0u64; N];
    for j in 0..N {
        out[j] = fp(l[j], r[j]);
    }
    out
}

/// Single-DES encryption of `N` blocks, block `j` under `keys[j]`.
#[inline]
pub fn encrypt_multi<const N: usize>(keys: [&DesKey; N], blocks: [u64; N]) -> [u64; N] {
    let (l, r) = ip_multi(blocks);
    let (l, r) = rounds_multi::<N, false>(keys, l, r);
    fp_multi(l, r)
}

/// Round keys generated on the fly from C and D, in encryption order (`enc`) or decryption order
/// (`dec`, starting from C16 = C0). Why: when a key is used for one pass only (every DUKPT
/// step), computing round key `i + 1` overlaps with the latency-bound round `i`, which hides
/// most of the key schedule's cost.
#[derive(Zeroize, ZeroizeOnDrop)]
struct SubkeyGen {
    /// C in bits 55..28, D in bits 27..0: both halves rotate in one go.
    cd: u64,
}

/// Bits of each 28-bit half that stay in the half when shifting left by 1 or 2.
const KEEP: [u64; 3] = [0, 0x00FF_FFFF_EFFF_FFFE, 0x00FF_FFFF_CFFF_FFFC];

impl SubkeyGen {
    #[inline(always)]
    fn new(k: u64) -> Self {
        let b = k.to_be_bytes();
        let mut cd = 0u64;
        for (tab, byte) in PC1T.iter().zip(b) {
            cd |= tab[byte as usize];
        }
        SubkeyGen { cd }
    }

    #[inline(always)]
    fn pc2(&self) -> u64 {
        let x = self.cd;
        PC2T[0][((x >> 49) & 127) as usize]
            | PC2T[1][((x >> 42) & 127) as usize]
            | PC2T[2][((x >> 35) & 127) as usize]
            | PC2T[3][((x >> 28) & 127) as usize]
            | PC2T[4][((x >> 21) & 127) as usize]
            | PC2T[5][((x >> 14) & 127) as usize]
            | PC2T[6][((x >> 7) & 127) as usize]
            | PC2T[7][(x & 127) as usize]
    }

    /// Both 28-bit halves rotated left by `s` (1 or 2).
    #[inline(always)]
    fn rotl(x: u64, s: u8) -> u64 {
        let keep = KEEP[usize::from(s & 3) % 3];
        let wrap = !keep & 0x00FF_FFFF_FFFF_FFFF;
        ((x << s) & keep) | ((x >> (28 - s)) & wrap)
    }

    /// Round key `i` for rounds taken 0, 1, … 15.
    #[inline(always)]
    fn enc(&mut self, i: usize) -> u64 {
        self.cd = Self::rotl(self.cd, SHIFTS[i & 15]);
        self.pc2()
    }

    /// Round key `i` for rounds taken 15, 14, … 0 (rotating right = left by 28 − s).
    #[inline(always)]
    fn dec(&mut self, i: usize) -> u64 {
        let k = self.pc2();
        let s = SHIFTS[i & 15];
        let x = self.cd;
        // Right rotation of both halves by s.
        let low = (1u64 << s) - 1;
        let lowbits = low | (low << 28);
        self.cd = ((x >> s) & !(lowbits << (28 - s)) & 0x00FF_FFFF_FFFF_FFFF)
            | ((x & lowbits) << (28 - s));
        k
    }
}

/// One DES pass over two blocks with round keys `ka` (block a) and `ka ^ m` (block b).
#[inline(always)]
fn pass2<const STORE: bool>(
    dec: bool,
    gen: &mut SubkeyGen,
    mask: &DesKey,
    store: &mut [u64; 16],
    (mut la, mut ra, mut lb, mut rb): (u32, u32, u32, u32),
) -> (u32, u32, u32, u32) {
    for n in 0..16 {
        let i = if dec { 15 - n } else { n };
        let k = if dec { gen.dec(i) } else { gen.enc(i) };
        if STORE {
            store[i] = k;
        }
        let km = k ^ mask.ks[i];
        let ta = la ^ f(ra, k);
        let tb = lb ^ f(rb, km);
        la = ra;
        ra = ta;
        lb = rb;
        rb = tb;
    }
    (ra, la, rb, lb)
}

fn zero_schedule() -> &'static DesKey {
    static Z: DesKey = DesKey { ks: [0; 16] };
    &Z
}

/// Single DES of `a` under `k` and of `b` under `k ^ mask_key` (given the mask's schedule),
/// with the schedule of `k` computed on the fly.
#[inline]
pub fn des_pair_fresh(k: u64, mask: &DesKey, a: u64, b: u64) -> (u64, u64) {
    let mut gen = SubkeyGen::new(k);
    let mut unused = [0u64; 16];
    let (la, ra) = ip(a);
    let (lb, rb) = ip(b);
    let (la, ra, lb, rb) = pass2::<false>(false, &mut gen, mask, &mut unused, (la, ra, lb, rb));
    (fp(la, ra), fp(lb, rb))
}

/// Two-key TDES-EDE of `a` under `kl‖kr` and of `b` under `(kl^m)‖(kr^m)` (`mask` = the
/// schedule of m; `None`: both blocks under the same key), schedules computed on the fly.
#[inline]
pub fn tdes2_pair_fresh(kl: u64, kr: u64, mask: Option<&DesKey>, a: u64, b: u64) -> (u64, u64) {
    let mask = mask.unwrap_or(zero_schedule());
    let mut k1 = [0u64; 16];
    let mut scratch = [0u64; 16];
    let (la, ra) = ip(a);
    let (lb, rb) = ip(b);
    let st = pass2::<true>(
        false,
        &mut SubkeyGen::new(kl),
        mask,
        &mut k1,
        (la, ra, lb, rb),
    );
    let (la, ra, lb, rb) = pass2::<false>(true, &mut SubkeyGen::new(kr), mask, &mut scratch, st);
    // Third pass reuses the stored K1 round keys.
    let (mut la, mut ra, mut lb, mut rb) = (la, ra, lb, rb);
    for (i, k) in k1.iter().enumerate() {
        let km = k ^ mask.ks[i];
        let ta = la ^ f(ra, *k);
        let tb = lb ^ f(rb, km);
        la = ra;
        ra = ta;
        lb = rb;
        rb = tb;
    }
    k1.zeroize();
    (fp(ra, la), fp(rb, lb))
}

/// TDES-EDE with three schedules (EDE2: the third is a copy of the first). IP and FP are applied
/// once per block: the inner FP/IP pairs cancel.
#[derive(Clone, Debug)]
pub struct Tdes {
    k1: DesKey,
    k2: DesKey,
    k3: DesKey,
}

impl Tdes {
    pub fn new2(k1: DesKey, k2: DesKey) -> Self {
        let k3 = k1.clone();
        Tdes { k1, k2, k3 }
    }

    pub fn new3(k1: DesKey, k2: DesKey, k3: DesKey) -> Self {
        Tdes { k1, k2, k3 }
    }

    /// EDE2 from a 16-byte key given as two big-endian halves.
    pub fn from_halves(l: u64, r: u64) -> Self {
        Self::new2(DesKey::new(l), DesKey::new(r))
    }

    /// TDES encryption of `N` blocks, block `j` under `keys[j]` (rounds interleaved).
    #[inline]
    pub fn encrypt_multi<const N: usize>(keys: [&Tdes; N], blocks: [u64; N]) -> [u64; N] {
        let (l, r) = ip_multi(blocks);
        let (l, r) = rounds_multi::<N, false>(keys.map(|t| &t.k1), l, r);
        let (l, r) = rounds_multi::<N, true>(keys.map(|t| &t.k2), l, r);
        let (l, r) = rounds_multi::<N, false>(keys.map(|t| &t.k3), l, r);
        fp_multi(l, r)
    }

    /// TDES decryption of `N` blocks under one key (rounds interleaved).
    #[inline]
    pub fn decrypt_n<const N: usize>(&self, blocks: [u64; N]) -> [u64; N] {
        let (l, r) = ip_multi(blocks);
        let (l, r) = rounds_multi::<N, true>([&self.k3; N], l, r);
        let (l, r) = rounds_multi::<N, false>([&self.k2; N], l, r);
        let (l, r) = rounds_multi::<N, true>([&self.k1; N], l, r);
        fp_multi(l, r)
    }

    #[inline]
    pub fn encrypt(&self, block: u64) -> u64 {
        let (l, r) = ip(block);
        let (l, r) = self.k1.rounds_enc(l, r);
        let (l, r) = self.k2.rounds_dec(l, r);
        let (l, r) = self.k3.rounds_enc(l, r);
        fp(l, r)
    }

    #[inline]
    pub fn decrypt(&self, block: u64) -> u64 {
        let (l, r) = ip(block);
        let (l, r) = self.k3.rounds_dec(l, r);
        let (l, r) = self.k2.rounds_enc(l, r);
        let (l, r) = self.k1.rounds_dec(l, r);
        fp(l, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use des::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
    use proptest::prelude::*;

    fn oracle_enc(k: u64, b: u64) -> u64 {
        let c = des::Des::new_from_slice(&k.to_be_bytes()).unwrap();
        let mut blk = GenericArray::clone_from_slice(&b.to_be_bytes());
        c.encrypt_block(&mut blk);
        u64::from_be_bytes(blk.into())
    }

    fn oracle_dec(k: u64, b: u64) -> u64 {
        let c = des::Des::new_from_slice(&k.to_be_bytes()).unwrap();
        let mut blk = GenericArray::clone_from_slice(&b.to_be_bytes());
        c.decrypt_block(&mut blk);
        u64::from_be_bytes(blk.into())
    }

    /// IP by its definition (FIPS 46-3 table), to check the bit-swap sequence.
    fn ip_reference(x: u64) -> u64 {
        const IP: [u8; 64] = [
            58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22,
            14, 6, 64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27,
            19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
        ];
        IP.iter()
            .fold(0u64, |o, &p| (o << 1) | ((x >> (64 - p as u32)) & 1))
    }

    #[test]
    fn known_answers() {
        // FIPS 81 / classic textbook vectors.
        let cases: [(u64, u64, u64); 3] = [
            (0x133457799BBCDFF1, 0x0123456789ABCDEF, 0x85E813540F0AB405),
            (0x0123456789ABCDEF, 0x4E6F772069732074, 0x3FA40E8A984D4815),
            (0x0000000000000000, 0x0000000000000000, 0x8CA64DE9C1B123A7),
        ];
        for (k, p, c) in cases {
            let key = DesKey::new(k);
            assert_eq!(key.encrypt(p), c);
            assert_eq!(key.decrypt(c), p);
        }
    }

    #[test]
    fn tdes_ede2_known_answer() {
        // Same key halves reduce EDE2 to single DES.
        let t = Tdes::from_halves(0x0123456789ABCDEF, 0x0123456789ABCDEF);
        assert_eq!(t.encrypt(0x4E6F772069732074), 0x3FA40E8A984D4815);
    }

    proptest! {
        #[test]
        fn ip_matches_table(x: u64) {
            let (l, r) = ip(x);
            prop_assert_eq!(((l as u64) << 32) | r as u64, ip_reference(x));
            prop_assert_eq!(fp(l, r), x);
        }

        #[test]
        fn des_matches_oracle(k: u64, b: u64) {
            let key = DesKey::new(k);
            prop_assert_eq!(key.encrypt(b), oracle_enc(k, b));
            prop_assert_eq!(key.decrypt(b), oracle_dec(k, b));
        }

        #[test]
        fn schedule_is_linear(a: u64, m: u64, b: u64) {
            let x = DesKey::new(a).xor(&DesKey::new(m));
            prop_assert_eq!(x.encrypt(b), oracle_enc(a ^ m, b));
        }

        #[test]
        fn multi_matches_single(k1: u64, k2: u64, k3: u64, b: [u64; 4]) {
            let ka = DesKey::new(k1);
            let kb = DesKey::new(k2);
            let got = encrypt_multi([&ka, &kb, &ka], [b[0], b[1], b[2]]);
            prop_assert_eq!(got, [ka.encrypt(b[0]), kb.encrypt(b[1]), ka.encrypt(b[2])]);
            let t = Tdes::new3(DesKey::new(k1), DesKey::new(k2), DesKey::new(k3));
            let u = Tdes::from_halves(k3, k1);
            let e = Tdes::encrypt_multi([&t, &u], [b[0], b[1]]);
            prop_assert_eq!(e, [t.encrypt(b[0]), u.encrypt(b[1])]);
            prop_assert_eq!(t.decrypt_n(b), b.map(|x| t.decrypt(x)));
        }

        #[test]
        fn fresh_pairs_match(kl: u64, kr: u64, m: u64, a: u64, b: u64) {
            let mk = DesKey::new(m);
            let (x, y) = des_pair_fresh(kl, &mk, a, b);
            prop_assert_eq!(x, oracle_enc(kl, a));
            prop_assert_eq!(y, oracle_enc(kl ^ m, b));
            let (x, y) = tdes2_pair_fresh(kl, kr, Some(&mk), a, b);
            prop_assert_eq!(x, Tdes::from_halves(kl, kr).encrypt(a));
            prop_assert_eq!(y, Tdes::from_halves(kl ^ m, kr ^ m).encrypt(b));
            let (x, y) = tdes2_pair_fresh(kl, kr, None, a, b);
            prop_assert_eq!((x, y), (oracle_enc(kl, oracle_dec(kr, oracle_enc(kl, a))), Tdes::from_halves(kl, kr).encrypt(b)));
        }

        #[test]
        fn tdes_matches_oracle(k1: u64, k2: u64, k3: u64, b: u64) {
            let mut key = [0u8; 24];
            key[..8].copy_from_slice(&k1.to_be_bytes());
            key[8..16].copy_from_slice(&k2.to_be_bytes());
            key[16..].copy_from_slice(&k3.to_be_bytes());
            let t = Tdes::new3(DesKey::new(k1), DesKey::new(k2), DesKey::new(k3));
            let expect = oracle_enc(k3, oracle_dec(k2, oracle_enc(k1, b)));
            prop_assert_eq!(t.encrypt(b), expect);
            prop_assert_eq!(t.decrypt(expect), b);
            // The crate's own TDES agrees when its weak-key check lets the key through.
            if let Ok(c) = des::TdesEde3::new_from_slice(&key) {
                let mut blk = GenericArray::clone_from_slice(&b.to_be_bytes());
                c.encrypt_block(&mut blk);
                prop_assert_eq!(u64::from_be_bytes(blk.into()), expect);
            }
        }
    }
}
