//! `cardlane dukpt key|encrypt|decrypt|mac` (design.md §3). Output: one line of upper-case hex.
//! Bad input (hex, lengths, partial blocks) → exit 1 with a typed message that never echoes it.
use std::process::ExitCode;

use anyhow::Context;
use cardlane::crypto::{self, DataCipher, KeyType, Ksn, Usage};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dukpt::Args(***)")
    }
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Prints a derived key.
    Key {
        #[command(flatten)]
        k: KeyArgs,
    },
    /// CBC-encrypts --data (zero-padded to the block size).
    Encrypt {
        #[command(flatten)]
        k: KeyArgs,
        #[command(flatten)]
        c: CipherArgs,
    },
    /// CBC-decrypts --data; prints the whole plaintext, padding included.
    Decrypt {
        #[command(flatten)]
        k: KeyArgs,
        #[command(flatten)]
        c: CipherArgs,
    },
    /// X9.19 retail MAC (TDES) or AES-CMAC (AES) over --data as given.
    Mac {
        #[command(flatten)]
        k: KeyArgs,
        /// Data, hex.
        #[arg(long)]
        data: String,
    },
}

#[derive(clap::Args)]
struct KeyArgs {
    /// Base derivation key, hex (16 bytes TDES; 16/24/32 AES).
    #[arg(long)]
    bdk: String,
    /// KSN, hex: 20 digits → TDES DUKPT, 24 → AES DUKPT.
    #[arg(long)]
    ksn: String,
    #[arg(long, value_enum)]
    usage: UsageArg,
    /// AES DUKPT working-key type (default: the BDK's AES size).
    #[arg(long, value_enum)]
    key_type: Option<KeyTypeArg>,
    /// TDES data keys without the one-way function (the bare variant).
    #[arg(long)]
    no_owf: bool,
}

#[derive(clap::Args)]
struct CipherArgs {
    #[arg(long, value_enum)]
    cipher: Option<CipherArg>,
    /// IV, hex (default zeros).
    #[arg(long)]
    iv: Option<String>,
    /// Data, hex.
    #[arg(long)]
    data: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum UsageArg {
    Initial,
    Transaction,
    Pin,
    MacRequest,
    MacResponse,
    DataRequest,
    DataResponse,
    /// AES only: MAC both ways (2002).
    MacBoth,
    /// AES only: data both ways (3002).
    DataBoth,
    /// AES only: key encryption key.
    Kek,
}

impl From<UsageArg> for Usage {
    fn from(u: UsageArg) -> Usage {
        match u {
            UsageArg::Initial => Usage::Initial,
            UsageArg::Transaction => Usage::Transaction,
            UsageArg::Pin => Usage::Pin,
            UsageArg::MacRequest => Usage::MacRequest,
            UsageArg::MacResponse => Usage::MacResponse,
            UsageArg::DataRequest => Usage::DataRequest,
            UsageArg::DataResponse => Usage::DataResponse,
            UsageArg::MacBoth => Usage::MacBoth,
            UsageArg::DataBoth => Usage::DataBoth,
            UsageArg::Kek => Usage::Kek,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KeyTypeArg {
    Aes128,
    Aes192,
    Aes256,
    Tdes2,
    Tdes3,
    Hmac128,
}

impl From<KeyTypeArg> for KeyType {
    fn from(k: KeyTypeArg) -> KeyType {
        match k {
            KeyTypeArg::Aes128 => KeyType::Aes128,
            KeyTypeArg::Aes192 => KeyType::Aes192,
            KeyTypeArg::Aes256 => KeyType::Aes256,
            KeyTypeArg::Tdes2 => KeyType::Tdes2,
            KeyTypeArg::Tdes3 => KeyType::Tdes3,
            KeyTypeArg::Hmac128 => KeyType::Hmac128,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CipherArg {
    Tdes,
    Aes,
}

/// Hex from the command line; whitespace allowed. Errors name the option, never the value.
pub fn parse_hex(opt: &str, s: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let clean: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(s.chars().filter(|c| !c.is_whitespace()).collect());
    if clean.len() % 2 != 0 {
        anyhow::bail!("bad-hex: {opt}: odd number of hex digits");
    }
    if !clean.chars().all(|c| c.is_ascii_hexdigit()) {
        anyhow::bail!("bad-hex: {opt}: not a hex digit");
    }
    let v = hex::decode(clean.as_bytes()).map_err(|_| anyhow::anyhow!("bad-hex: {opt}"))?;
    Ok(zeroize::Zeroizing::new(v))
}

/// Typed crypto errors as `code: message` (the message carries lengths, never bytes).
pub fn crypto_err(e: crypto::CryptoError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.code(), e)
}

pub fn parse_key_type(k: Option<KeyTypeArg>) -> Option<KeyType> {
    k.map(KeyType::from)
}

fn common(k: &KeyArgs) -> anyhow::Result<(zeroize::Zeroizing<Vec<u8>>, Ksn)> {
    let bdk = parse_hex("--bdk", &k.bdk)?;
    let ksn = Ksn::from_slice(&parse_hex("--ksn", &k.ksn)?).map_err(crypto_err)?;
    // The initial key ignores the counter; every other usage is a transaction's key.
    if !matches!(k.usage, UsageArg::Initial) {
        ksn.check_transaction_counter().map_err(crypto_err)?;
    }
    Ok((bdk, ksn))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = match &args.cmd {
        Cmd::Key { k } => {
            let (bdk, ksn) = common(k)?;
            let key = crypto::derive_key(
                &bdk,
                &ksn,
                k.usage.into(),
                parse_key_type(k.key_type),
                !k.no_owf,
            )
            .map_err(crypto_err)?;
            key.to_hex_upper().to_string()
        }
        Cmd::Encrypt { k, c } | Cmd::Decrypt { k, c } => {
            let (bdk, ksn) = common(k)?;
            let data = parse_hex("--data", &c.data)?;
            let iv = c.iv.as_deref().map(|s| parse_hex("--iv", s)).transpose()?;
            let cipher = c.cipher.map(|c| match c {
                CipherArg::Tdes => DataCipher::Tdes,
                CipherArg::Aes => DataCipher::Aes,
            });
            let kt = parse_key_type(k.key_type);
            let (u, owf) = (k.usage.into(), !k.no_owf);
            if matches!(args.cmd, Cmd::Encrypt { .. }) {
                let ct = crypto::encrypt_data(
                    &bdk,
                    &ksn,
                    u,
                    kt,
                    cipher,
                    iv.as_deref().map(|v| &v[..]),
                    owf,
                    &data,
                )
                .map_err(crypto_err)?;
                hex::encode_upper(ct)
            } else {
                let pt = crypto::decrypt_data(
                    &bdk,
                    &ksn,
                    u,
                    kt,
                    cipher,
                    iv.as_deref().map(|v| &v[..]),
                    owf,
                    &data,
                )
                .map_err(crypto_err)?;
                hex::encode_upper(&pt[..])
            }
        }
        Cmd::Mac { k, data } => {
            let (bdk, ksn) = common(k)?;
            let data = parse_hex("--data", data)?;
            let m = crypto::dukpt_mac(
                &bdk,
                &ksn,
                k.usage.into(),
                parse_key_type(k.key_type),
                &data,
            )
            .map_err(crypto_err)
            .context("mac")?;
            hex::encode_upper(m)
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
