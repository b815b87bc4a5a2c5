//! Feature reports: the host sets `cmd, len, data` and gets back `result, len, data`, both zero
//! filled to the report size.
/// Feature report payload size (report id not counted).
pub const FEATURE_LEN: usize = 60;

/// A feature-report command as set (`cmd, len, data`, zero filled to `FEATURE_LEN`).
pub fn command(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(FEATURE_LEN);
    r.push(cmd);
    r.push(data.len().min(FEATURE_LEN - 2) as u8);
    r.extend(data.iter().take(FEATURE_LEN - 2));
    r.resize(FEATURE_LEN, 0);
    r
}

/// A feature-report result as got: `(result code, data)`, `None` when the length byte runs
/// past the report.
pub fn result(report: &[u8]) -> Option<(u8, &[u8])> {
    let (&code, rest) = report.split_first()?;
    let (&len, rest) = rest.split_first()?;
    Some((code, rest.get(..usize::from(len))?))
}
