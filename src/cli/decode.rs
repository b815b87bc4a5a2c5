//! `cardlane decode [--hex] [--bdk HEX] [--variant data|data-variant|pin] [FILE]`: reader output
//! to JSON lines (design.md §3).
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cardlane::card::KeyVariant;
use cardlane::parse::{self, ParseError, TrackDecryptor};
use zeroize::Zeroizing;

#[derive(clap::Args)]
pub struct Args {
    /// The input is hex text (whitespace ignored) of binary reader output.
    #[arg(long)]
    hex: bool,
    /// Base derivation key (lab use): decrypts the tracks.
    #[arg(long, value_name = "HEX")]
    bdk: Option<String>,
    /// Overrides the key variant the frame implies.
    #[arg(long, value_parser = ["data", "data-variant", "pin"])]
    variant: Option<String>,
    /// Input file; standard input when absent.
    file: Option<PathBuf>,
}

// By hand: the BDK must never reach a Debug print.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("hex", &self.hex)
            .field("bdk", &self.bdk.as_ref().map(|_| "***"))
            .field("variant", &self.variant)
            .field("file", &self.file)
            .finish()
    }
}

/// The decryptor for `--bdk`: DUKPT keys from the BDK and each frame's KSN.
fn decryptor(bdk: &[u8]) -> anyhow::Result<Box<dyn TrackDecryptor>> {
    let d = cardlane::crypto::BdkDecryptor::new(bdk).map_err(|e| anyhow::anyhow!("--bdk: {e}"))?;
    Ok(Box::new(d))
}

fn error_line(e: &ParseError) -> String {
    serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}}).to_string()
}

/// Drops `#` comment lines (fixture payload files carry them).
pub(crate) fn strip_comments(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for line in input.split_inclusive(|&c| c == b'\n') {
        if line.first() != Some(&b'#') {
            out.extend_from_slice(line);
        }
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut input = Zeroizing::new(Vec::new());
    match &args.file {
        Some(p) => {
            *input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading standard input")?;
        }
    }
    let dec = match &args.bdk {
        Some(h) => {
            let bdk = Zeroizing::new(
                hex::decode(h.trim()).map_err(|_| anyhow::anyhow!("--bdk is not valid hex"))?,
            );
            Some(decryptor(&bdk)?)
        }
        None => None,
    };
    let variant = args.variant.as_deref().and_then(KeyVariant::parse);
    // Judged without `#` comment lines: a fixture's provenance note may hold any character.
    let text = parse::detect_is_text(&strip_comments(&input));
    let data = if args.hex {
        let cleaned: Vec<u8> = strip_comments(&input)
            .into_iter()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        match hex::decode(&cleaned) {
            Ok(b) => Zeroizing::new(b),
            Err(_) => {
                println!("{}", error_line(&ParseError::BadHex));
                return Ok(ExitCode::from(1));
            }
        }
    } else if text {
        Zeroizing::new(strip_comments(&input))
    } else {
        input.clone()
    };
    let frames = parse::split_frames(&data);
    let mut failed = frames.is_empty();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if frames.is_empty() {
        writeln!(
            out,
            "{}",
            error_line(&ParseError::Truncated("no frame in the input"))
        )?;
    }
    for frame in frames {
        // Validation after decryption, so Luhn and expiry are judged on the clear data.
        let result = parse::decode_frame(frame)
            .and_then(|r| match &dec {
                Some(d) => parse::decrypt_read(&r, d.as_ref(), variant),
                None => Ok(r),
            })
            .map(|mut r| {
                parse::validate(&mut r);
                r
            });
        match result {
            Ok(r) => writeln!(out, "{}", r.to_json())?,
            Err(e) => {
                failed = true;
                writeln!(out, "{}", error_line(&e))?;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
