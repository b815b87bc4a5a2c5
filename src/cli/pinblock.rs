//! `cardlane pinblock encrypt|decrypt` (design.md §3): ISO 9564 PIN blocks under the DUKPT PIN
//! key. `encrypt` prints the block in upper-case hex, `decrypt` the PIN's digits.
use std::process::ExitCode;

use cardlane::crypto::{self, Ksn, PinFormat};

use super::dukpt::{crypto_err, parse_hex, parse_key_type, KeyTypeArg};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pinblock::Args(***)")
    }
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Builds and encrypts a PIN block (format 0 for TDES, 4 for AES by default).
    Encrypt {
        #[arg(long)]
        bdk: String,
        #[arg(long)]
        ksn: String,
        #[arg(long)]
        pin: String,
        #[arg(long)]
        pan: String,
        #[arg(long, value_parser = ["0", "1", "3", "4"])]
        format: Option<String>,
        #[arg(long, value_enum)]
        key_type: Option<KeyTypeArg>,
    },
    /// Decrypts and validates a PIN block; prints the PIN.
    Decrypt {
        #[arg(long)]
        bdk: String,
        #[arg(long)]
        ksn: String,
        #[arg(long)]
        pan: String,
        #[arg(long)]
        block: String,
        #[arg(long, value_enum)]
        key_type: Option<KeyTypeArg>,
    },
}

/// A PIN block always goes with a transaction: its KSN must be one a reader could send.
fn transaction_ksn(hex: &str) -> anyhow::Result<Ksn> {
    let ksn = Ksn::from_slice(&parse_hex("--ksn", hex)?).map_err(crypto_err)?;
    ksn.check_transaction_counter().map_err(crypto_err)?;
    Ok(ksn)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Encrypt {
            bdk,
            ksn,
            pin,
            pan,
            format,
            key_type,
        } => {
            let bdk = parse_hex("--bdk", &bdk)?;
            let ksn = transaction_ksn(&ksn)?;
            let format = format
                .and_then(|f| f.parse::<u8>().ok())
                .and_then(PinFormat::from_digit);
            let blk =
                crypto::pin_block_encrypt(&bdk, &ksn, &pin, &pan, format, parse_key_type(key_type))
                    .map_err(crypto_err)?;
            println!("{}", hex::encode_upper(blk));
        }
        Cmd::Decrypt {
            bdk,
            ksn,
            pan,
            block,
            key_type,
        } => {
            let bdk = parse_hex("--bdk", &bdk)?;
            let ksn = transaction_ksn(&ksn)?;
            let block = parse_hex("--block", &block)?;
            let pin = crypto::pin_block_decrypt(&bdk, &ksn, &pan, &block, parse_key_type(key_type))
                .map_err(crypto_err)?;
            println!("{}", pin.as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}
