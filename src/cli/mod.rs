//! One module per command; each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
pub mod bench;
pub mod capture;
pub mod console_url;
pub mod decode;
pub mod demo;
pub mod devices;
pub mod dukpt;
pub mod gateway_sim;
pub mod pinblock;
pub mod queue;
pub mod reader;
pub mod reader_sim;
pub mod replay;
pub mod run;
pub mod synth;

/// Reader profiles that will not load (a bad file in the profiles directory) are bad input, exit
/// 1: the command line was right, the file it pointed at is not (design.md §3).
pub fn profiles_unusable(e: &cardlane::device::ProfileError) -> std::process::ExitCode {
    eprintln!("error: {}: {e}", e.code());
    std::process::ExitCode::from(1)
}

/// An error and its causes as one line. A wrapper that prints its cause (`"…: {0}"`) and also
/// names it as its source would print it twice in anyhow's `{:#}` chain: a cause whose text the
/// line already holds is left out.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(text.as_str()) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("inner fault")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("store error: {0}")]
        Shown(#[from] Inner),
        #[error("store error")]
        Hidden(#[source] Inner),
    }

    #[test]
    fn a_cause_is_printed_once() {
        let shown = anyhow::Error::from(Outer::Shown(Inner)).context("cannot start");
        assert_eq!(
            format!("{shown:#}"),
            "cannot start: store error: inner fault: inner fault"
        );
        assert_eq!(error_text(&shown), "cannot start: store error: inner fault");
        // A wrapper that does not print its cause still gets it from the chain.
        let hidden = anyhow::Error::from(Outer::Hidden(Inner)).context("cannot start");
        assert_eq!(
            error_text(&hidden),
            "cannot start: store error: inner fault"
        );
    }
}
