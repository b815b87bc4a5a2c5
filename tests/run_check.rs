//! `cardlane run --check` makes every check `run` makes short of opening devices: what `run`
//! would refuse, `--check` refuses too, naming it. `run` without a configuration says what to
//! do.
use std::path::Path;
use std::process::{Command, Output};

fn check(config: &Path, api_key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardlane"));
    cmd.args(["run", "--check", "--config"]).arg(config);
    match api_key {
        Some(k) => cmd.env("CARDLANE_API_KEY", k),
        None => cmd.env_remove("CARDLANE_API_KEY"),
    };
    cmd.env_remove("CARDLANE_LOG").output().unwrap()
}

fn config(dir: &Path, reader: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("cardlane.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\nbase_url = \"https://apisandbox.onepay.com\"\n[queue]\npath = \"{}\"\n\
             [[readers]]\nid = \"front\"\ndevice = \"{reader}\"\n{extra}",
            dir.join("q.db").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_refuses_what_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "serial:/dev/ttyUSB0@9600", "");
    let out = check(&good, Some("k"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A driven MagneSafe V5 reader (eDynamo, tDynamo) by profile name.
    for profile in ["magtek-edynamo-hid", "magtek-tdynamo-hid"] {
        let v5 = config(
            dir.path(),
            "hid:0801:001E",
            &format!("profile = \"{profile}\"\nactivate = \"on-capture\"\n"),
        );
        let out = check(&v5, Some("k"));
        assert!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    for (reader, extra, key, want) in [
        (
            "serial:/dev/ttyUSB0@fast",
            "",
            Some("k"),
            "readers[0].device",
        ),
        (
            "serial:/dev/ttyUSB0@9600",
            "profile = \"no-such-reader\"\n",
            Some("k"),
            "no-such-reader",
        ),
        ("serial:/dev/ttyUSB0@9600", "", None, "CARDLANE_API_KEY"),
        (
            "serial:/dev/ttyUSB0@9600",
            "[log]\nlevel = \"verbose\"\n",
            Some("k"),
            "log.level",
        ),
        // A reader the host does not drive cannot be asked for a PIN.
        (
            "serial:/dev/ttyUSB0@9600",
            "profile = \"idtech-serial\"\npin_entry = true\n",
            Some("k"),
            "readers[0].pin_entry",
        ),
    ] {
        let path = config(dir.path(), reader, extra);
        let out = check(&path, key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{reader} {extra}: {err}");
        assert!(err.contains(want), "{reader} {extra}: {err}");
        assert!(out.stdout.is_empty(), "no 'config ok' line");
    }
    // The shipped example is a configuration --check accepts.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/cardlane.toml");
    assert!(check(Path::new(example), Some("k")).status.success());
}

#[test]
fn run_without_a_configuration_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .arg("run")
        .env_remove("CARDLANE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config FILE") && err.contains("contrib/cardlane.toml"),
        "{err}"
    );
}
