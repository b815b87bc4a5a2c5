//! `cardlane run` configuration (design.md §3): TOML, every key checked.
//!
//! The file is read into a `toml::Table` and walked by hand rather than through serde derive so
//! that an unknown key or a bad value is reported with its full dotted path
//! (`unknown key `gateway.bse_url``, `api.listen: not a socket address`). Values are never echoed
//! back in errors: a config file is not a secret, but an error message is no place for input.

use crate::gateway::check_record::{AccountType, CheckDefaults, SecCode};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use crate::gateway::client::check_base_url;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};
use zeroize::Zeroizing;

/// The whole configuration. `Config::default()` is what an empty file gives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub queue: QueueConfig,
    pub api: ApiConfig,
    pub readers: Vec<ReaderConfig>,
    pub lane: LaneConfig,
    pub log: LogConfig,
    pub devices: DevicesConfig,
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: OTLP/HTTP export of a span per read and of the metrics, to an OpenTelemetry
/// collector. Off by default.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub enabled: bool,
    /// The collector's OTLP/HTTP base URL; `/v1/traces` and `/v1/metrics` are appended.
    pub endpoint: String,
    /// `service.instance.id`: this agent among the fleet's (default: the lane, else the host name).
    pub instance_id: Option<String>,
    /// `cardlane.lane` and `cardlane.store` resource attributes.
    pub lane: Option<String>,
    pub store: Option<String>,
    /// How often metrics are sent.
    pub metrics_interval: Duration,
    /// Read spans waiting for the exporter at most; more are dropped and counted.
    pub buffer: usize,
    /// One export's time limit.
    pub timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: false,
            endpoint: "http://127.0.0.1:4318".into(),
            instance_id: None,
            lane: None,
            store: None,
            metrics_interval: Duration::from_secs(60),
            buffer: 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[gateway]`: where records go and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Without a trailing `/`. Plain `http` only for loopback hosts (the simulator).
    pub base_url: String,
    /// Path of the Customer endpoint, joined to `base_url`.
    pub customer_path: String,
    /// File holding the API key; `CARDLANE_API_KEY` wins when set.
    pub api_key_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Whole request, connect included.
    pub total_timeout: Duration,
    pub retry: RetryPolicy,
}

/// `[gateway.retry]`: exponential backoff (doubling) between `initial_backoff` and `max_backoff`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// `None` (`max_attempts = 0`, the default): keep trying until the record expires
    /// (`queue.max_age`), so that nothing swiped is dropped while the gateway is merely down.
    pub max_attempts: Option<u32>,
}

/// `[queue]`: the durable store-and-forward.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub path: PathBuf,
    /// New swipes are refused (and reported) once this many records are held.
    pub max_records: u32,
    /// Records older than this expire and are purged unsent.
    pub max_age: Duration,
}

/// `[api]`: the local API for kiosks.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Created 0600 with a random token if missing.
    pub token_file: PathBuf,
    /// Listening beyond loopback must be asked for explicitly.
    pub allow_remote: bool,
    /// `timeout_s` of a capture that does not give one.
    pub capture_timeout: Duration,
    /// Largest `timeout_s` accepted.
    pub max_capture_timeout: Duration,
    /// Captures that may wait on one reader (or on "any reader") at once; one more is refused
    /// with 409. Below the limit a capture waits its turn (FIFO).
    pub max_waiting_captures: usize,
    /// Browser origins (`scheme://host[:port]`, exact) allowed to call the API from a page
    /// (CORS). Empty: no CORS headers at all, so no other origin's page can read an answer.
    pub allowed_origins: Vec<String>,
    /// HTTP status of `GET /v1/health` when the lane is `down`: 200 (the report is the answer;
    /// API clients and fuzzers read any 5xx as the agent failing) or 503 (for a monitor that
    /// checks the status code only).
    pub health_down_status: u16,
}

/// One `[[readers]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderConfig {
    /// Name used by the API, events and metrics; defaults to `device`.
    pub id: String,
    /// A device selector (design.md §3): `hid:`, `hidraw:`, `serial:`, `keyboard:` or `stdin`.
    pub device: String,
    /// Forces a reader profile instead of matching one from the device's ids.
    pub profile: Option<String>,
    /// When a driven reader (profile `protocol = "neo2"`) runs a transaction; ignored for
    /// readers that send by themselves.
    pub activate: ActivateMode,
    /// Overrides the profile's `pin_entry` (a keypad on a driven NEO 2 reader); `None`: the
    /// profile says.
    pub pin_entry: Option<bool>,
}

/// `[[readers]] activate`: when the agent starts a transaction on a driven reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivateMode {
    /// A kiosk capture starts one; its `DELETE` or time-out cancels it.
    #[default]
    OnCapture,
    /// One always runs (the lane), restarted after each read or time-out.
    Continuous,
}

impl ActivateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivateMode::OnCapture => "on-capture",
            ActivateMode::Continuous => "continuous",
        }
    }
}

/// What to do with a swipe when no capture is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSwipe {
    /// Save a customer named from Track 1.
    Save,
    /// Drop the swipe (after reporting it as an event).
    Ignore,
}

/// `[lane]`: how records are built.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneConfig {
    pub on_swipe: OnSwipe,
    pub client_ip: Option<IpAddr>,
    /// Optional top-level `device_code` pass-through (`IDTECH`, `MAGTEK`, `2`, `38`, …).
    pub device_code: Option<String>,
    /// Agent-chosen customer ids start with this (alphanumeric).
    pub customer_id_prefix: String,
    /// Clear-text (non-encrypting) readers are refused unless this is set.
    pub allow_clear_text: bool,
    pub entry_modes: EntryModes,
    /// `[lane.check]`: account type and SEC code for check records the capture leaves open.
    pub check: CheckDefaults,
}

/// `[lane.entry_modes]`: the two-digit POS entry mode sent for each kind of read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryModes {
    pub swipe: String,
    pub contactless_msd: String,
    pub chip: String,
    pub contactless_chip: String,
    pub fallback: String,
    pub manual: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `cardlane=debug`; `CARDLANE_LOG` wins.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// `[devices]`: reader discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicesConfig {
    /// Extra reader profiles (`*.toml`); `None`: only the profiles built into the binary.
    pub profiles_dir: Option<PathBuf>,
    /// Watch for readers plugged in after start.
    pub hotplug: bool,
    /// How often hot-plug looks for new or lost devices.
    pub poll_interval: Duration,
}

/// A configuration problem. Each names the key; none echoes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("not valid TOML (line {line}): {reason}")]
    Syntax { line: usize, reason: String },
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("{key}: {reason}")]
    BadValue { key: String, reason: String },
    #[error("{0}: missing")]
    Missing(String),
}

impl ConfigError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config-unreadable",
            ConfigError::Syntax { .. } => "config-syntax",
            ConfigError::UnknownKey(_) => "config-unknown-key",
            ConfigError::BadValue { .. } => "config-bad-value",
            ConfigError::Missing(_) => "config-missing",
        }
    }

    /// The dotted key at fault, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey(k) | ConfigError::Missing(k) => Some(k),
            ConfigError::BadValue { key, .. } => Some(key),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            base_url: "https://apisandbox.onepay.com".into(),
            customer_path: "/Customer".into(),
            api_key_file: None,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: None,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            path: PathBuf::from("/var/lib/cardlane/queue.db"),
            max_records: 1000,
            max_age: Duration::from_secs(48 * 3600),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            token_file: PathBuf::from("/var/lib/cardlane/api-token"),
            allow_remote: false,
            capture_timeout: Duration::from_secs(60),
            max_capture_timeout: Duration::from_secs(600),
            max_waiting_captures: 4,
            allowed_origins: Vec::new(),
            health_down_status: 200,
        }
    }
}

impl Default for LaneConfig {
    fn default() -> Self {
        LaneConfig {
            on_swipe: OnSwipe::Save,
            client_ip: None,
            device_code: None,
            customer_id_prefix: "CL".into(),
            allow_clear_text: false,
            entry_modes: EntryModes::default(),
            check: CheckDefaults::default(),
        }
    }
}

impl Default for EntryModes {
    /// ISO 8583 POS entry modes as the OnePay apps send them (spec/onepay-gateway.md).
    fn default() -> Self {
        EntryModes {
            swipe: "90".into(),
            contactless_msd: "91".into(),
            chip: "05".into(),
            contactless_chip: "07".into(),
            fallback: "80".into(),
            manual: "01".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            profiles_dir: None,
            hotplug: true,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// A complete configuration with every key at its default (readers aside), for the README and
/// `cardlane run` users. A test checks that it parses to exactly [`Config::default`] plus its
/// two readers.
pub const EXAMPLE: &str = r#"# cardlane run --config /etc/cardlane/cardlane.toml
[gateway]
base_url = "https://apisandbox.onepay.com"  # http:// only to a loopback host (the simulator)
customer_path = "/Customer"
# api_key_file = "/etc/cardlane/api-key"    # or CARDLANE_API_KEY in the environment
connect_timeout = "5s"
total_timeout = "30s"

[gateway.retry]
initial_backoff = "1s"                      # doubles up to max_backoff
max_backoff = "5m"
max_attempts = 0                            # 0: until the record expires (queue.max_age)

[queue]
path = "/var/lib/cardlane/queue.db"
max_records = 1000
max_age = "48h"

[api]
enabled = true
listen = "127.0.0.1:7878"                   # loopback unless allow_remote = true
token_file = "/var/lib/cardlane/api-token"  # created 0600 with a random token if missing
allow_remote = false
capture_timeout = "60s"                     # when a capture gives no timeout_s
max_capture_timeout = "10m"
max_waiting_captures = 4                    # per reader; one more gets 409
allowed_origins = []                        # kiosk pages allowed to call the API (CORS), e.g. "http://localhost:8080"
health_down_status = 200                    # /v1/health's HTTP status when down: 200 or 503

[[readers]]
id = "front"
device = "serial:/dev/ttyUSB0@9600"
# profile = "idtech-securemag-serial"       # forced profile; matched from ids otherwise

[[readers]]
id = "kiosk"
device = "serial:/dev/ttyACM0@115200"
profile = "idtech-neo2-serial"              # a driven reader (protocol = "neo2")
activate = "on-capture"                     # or "continuous": a transaction always running
# pin_entry = true                          # keypad: the profile says; this overrides it

[[readers]]
device = "hid:0801:0011"                    # id defaults to the selector

[lane]
on_swipe = "save"                           # no capture armed: "save" (Track 1 name) or "ignore"
# client_ip = "10.0.0.5"
# device_code = "IDTECH"
customer_id_prefix = "CL"
allow_clear_text = false                    # clear-text (non-encrypting) readers

[lane.entry_modes]
swipe = "90"
contactless_msd = "91"
chip = "05"
contactless_chip = "07"
fallback = "80"
manual = "01"

[lane.check]                                # checks from MICR readers (captures with "kind":"check")
# account_type = "checking"                 # default: "business" for a business check, else "checking"
# sec_code = "PPD"                          # default: CCD for a business check, else PPD

[log]
format = "human"                            # or "json"
level = "info"                              # CARDLANE_LOG wins

[devices]
# profiles_dir = "/etc/cardlane/devices"    # extra reader profiles
hotplug = true
poll_interval = "1s"

[telemetry]
enabled = false                             # OTLP/HTTP export of read spans and metrics
endpoint = "http://127.0.0.1:4318"          # the collector; /v1/traces and /v1/metrics appended
# instance_id = "store-12-lane-3"           # service.instance.id (default: lane, else host name)
# lane = "3"                                # cardlane.lane resource attribute
# store = "12"                              # cardlane.store resource attribute
metrics_interval = "60s"
buffer = 1024                               # read spans waiting at most; more are dropped, counted
timeout = "5s"
"#;

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.kind().to_string(),
        })?;
        Config::from_toml_str(&text)
    }

    /// Parses and checks configuration text.
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            // Line only: toml's own Display quotes the offending source line.
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| before.matches('\n').count() + 1)
                .unwrap_or(1);
            ConfigError::Syntax {
                line,
                reason: e.message().to_string(),
            }
        })?;
        let mut root = Section::new(
            "",
            &table,
            &[
                "gateway",
                "queue",
                "api",
                "readers",
                "lane",
                "log",
                "devices",
                "telemetry",
            ],
        )?;
        let config = Config {
            gateway: parse_gateway(root.table("gateway")?)?,
            queue: parse_queue(root.table("queue")?)?,
            api: parse_api(root.table("api")?)?,
            readers: parse_readers(root.get("readers"))?,
            lane: parse_lane(root.table("lane")?)?,
            log: parse_log(root.table("log")?)?,
            devices: parse_devices(root.table("devices")?)?,
            telemetry: parse_telemetry(root.table("telemetry")?)?,
        };
        Ok(config)
    }
}

impl GatewayConfig {
    /// Full URL of the Customer endpoint.
    pub fn customer_url(&self) -> String {
        format!("{}{}", self.base_url, self.customer_path)
    }

    /// The API key: `CARDLANE_API_KEY` when set and not empty, else `api_key_file`.
    pub fn api_key(&self) -> Result<Zeroizing<String>> {
        let env = std::env::var("CARDLANE_API_KEY").ok().map(Zeroizing::new);
        self.api_key_from(env)
    }

    /// As [`GatewayConfig::api_key`], with the environment value passed in.
    pub fn api_key_from(&self, env: Option<Zeroizing<String>>) -> Result<Zeroizing<String>> {
        if let Some(key) = env {
            let trimmed = Zeroizing::new(key.trim().to_string());
            if !trimmed.is_empty() {
                return Ok(trimmed);
            }
        }
        let Some(path) = &self.api_key_file else {
            return Err(ConfigError::Missing(
                "gateway.api_key_file (or CARDLANE_API_KEY)".into(),
            ));
        };
        let meta = std::fs::metadata(path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            reason: e.kind().to_string(),
        })?;
        // As for the queue key file: a secret readable by others is refused, not used.
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(bad(
                    "gateway.api_key_file",
                    "the file is accessible to group/others (want mode 0600: chmod 600 FILE)",
                ));
            }
        }
        let raw = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                reason: e.kind().to_string(),
            })?,
        );
        let key = Zeroizing::new(raw.trim().to_string());
        if key.is_empty() {
            return Err(bad("gateway.api_key_file", "the file is empty"));
        }
        Ok(key)
    }
}

/// A table being read: knows its dotted prefix and refuses keys it was not told about.
struct Section<'a> {
    prefix: String,
    table: Option<&'a Table>,
    seen: BTreeSet<&'static str>,
}

impl<'a> Section<'a> {
    fn new(prefix: &str, table: &'a Table, allowed: &[&'static str]) -> Result<Section<'a>> {
        let section = Section {
            prefix: prefix.to_string(),
            table: Some(table),
            seen: allowed.iter().copied().collect(),
        };
        if let Some(unknown) = table.keys().find(|k| !section.seen.contains(k.as_str())) {
            return Err(ConfigError::UnknownKey(section.path(unknown)));
        }
        Ok(section)
    }

    /// A section that is absent from the file: every key takes its default.
    fn empty(prefix: &str) -> Section<'a> {
        Section {
            prefix: prefix.to_string(),
            table: None,
            seen: BTreeSet::new(),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.and_then(|t| t.get(key))
    }

    /// A sub-table (`[gateway]`, `[gateway.retry]`); absent means all defaults.
    fn table(&mut self, key: &'static str) -> Result<Section<'a>> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(Section::empty(&path)),
            Some(Value::Table(t)) => Ok(Section {
                prefix: path,
                table: Some(t),
                seen: BTreeSet::new(),
            }),
            Some(_) => Err(bad(&path, "must be a table")),
        }
    }

    /// Declares the keys of this section; an unknown one is an error.
    fn allow(self, allowed: &[&'static str]) -> Result<Self> {
        if let Some(t) = self.table {
            if let Some(unknown) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(ConfigError::UnknownKey(self.path(unknown)));
            }
        }
        Ok(self)
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(bad(&self.path(key), "must be a string")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(bad(&self.path(key), "must be true or false")),
        }
    }

    fn uint(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Integer(i)) => match u64::try_from(*i) {
                Ok(v) if (min..=max).contains(&v) => Ok(v),
                _ => Err(bad(
                    &self.path(key),
                    format!("must be a whole number from {min} to {max}"),
                )),
            },
            Some(_) => Err(bad(&self.path(key), "must be a whole number")),
        }
    }

    fn path_buf(&self, key: &str) -> Result<Option<PathBuf>> {
        match self.string(key)? {
            None => Ok(None),
            Some("") => Err(bad(&self.path(key), "must not be empty")),
            Some(s) => Ok(Some(PathBuf::from(s))),
        }
    }

    /// A duration: `"500ms"`, `"30s"`, `"5m"`, `"48h"`, `"2d"`, or a whole number of seconds.
    fn duration(&self, key: &str, default: Duration, min: Duration) -> Result<Duration> {
        let path = self.path(key);
        let value = match self.get(key) {
            None => return Ok(default),
            Some(Value::Integer(i)) => u64::try_from(*i).ok().map(Duration::from_secs),
            Some(Value::String(s)) => parse_duration(s),
            Some(_) => None,
        };
        match value {
            Some(d) if d >= min => Ok(d),
            Some(_) => Err(bad(
                &path,
                format!("must be at least {}ms", min.as_millis()),
            )),
            None => Err(bad(
                &path,
                "not a duration (use e.g. \"500ms\", \"30s\", \"5m\", \"48h\")",
            )),
        }
    }
}

/// `"<digits><unit>"` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(millis_per).map(Duration::from_millis)
}

fn parse_gateway(s: Section<'_>) -> Result<GatewayConfig> {
    let mut s = s.allow(&[
        "base_url",
        "customer_path",
        "api_key_file",
        "connect_timeout",
        "total_timeout",
        "retry",
    ])?;
    let d = GatewayConfig::default();
    let base_url = match s.string("base_url")? {
        None => d.base_url,
        Some(u) => check_base_url(u).map_err(|r| bad(&s.path("base_url"), r))?,
    };
    let customer_path = match s.string("customer_path")? {
        None => d.customer_path,
        Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => p.to_string(),
        Some(_) => {
            return Err(bad(
                &s.path("customer_path"),
                "must start with `/` and hold no spaces",
            ))
        }
    };
    let connect_timeout = s.duration(
        "connect_timeout",
        d.connect_timeout,
        Duration::from_millis(1),
    )?;
    let total_timeout = s.duration("total_timeout", d.total_timeout, Duration::from_millis(1))?;
    if total_timeout < connect_timeout {
        return Err(bad(
            &s.path("total_timeout"),
            "must not be shorter than gateway.connect_timeout",
        ));
    }
    let r = s
        .table("retry")?
        .allow(&["initial_backoff", "max_backoff", "max_attempts"])?;
    let rd = RetryPolicy::default();
    let initial_backoff = r.duration(
        "initial_backoff",
        rd.initial_backoff,
        Duration::from_millis(1),
    )?;
    let max_backoff = r.duration("max_backoff", rd.max_backoff, Duration::from_millis(1))?;
    if max_backoff < initial_backoff {
        return Err(bad(
            &r.path("max_backoff"),
            "must not be shorter than gateway.retry.initial_backoff",
        ));
    }
    let attempts = r.uint("max_attempts", 0, 0, u64::from(u32::MAX))?;
    Ok(GatewayConfig {
        base_url,
        customer_path,
        api_key_file: s.path_buf("api_key_file")?,
        connect_timeout,
        total_timeout,
        retry: RetryPolicy {
            initial_backoff,
            max_backoff,
            max_attempts: u32::try_from(attempts).ok().filter(|n| *n > 0),
        },
    })
}

fn parse_queue(s: Section<'_>) -> Result<QueueConfig> {
    let s = s.allow(&["path", "max_records", "max_age"])?;
    let d = QueueConfig::default();
    Ok(QueueConfig {
        path: s.path_buf("path")?.unwrap_or(d.path),
        max_records: u32::try_from(s.uint(
            "max_records",
            u64::from(d.max_records),
            1,
            10_000_000,
        )?)
        .unwrap_or(d.max_records),
        max_age: s.duration("max_age", d.max_age, Duration::from_secs(1))?,
    })
}

fn parse_api(s: Section<'_>) -> Result<ApiConfig> {
    let s = s.allow(&[
        "enabled",
        "listen",
        "token_file",
        "allow_remote",
        "capture_timeout",
        "max_capture_timeout",
        "max_waiting_captures",
        "allowed_origins",
        "health_down_status",
    ])?;
    let d = ApiConfig::default();
    let allow_remote = s.bool("allow_remote", d.allow_remote)?;
    let listen = match s.string("listen")? {
        None => d.listen,
        Some(text) => text
            .parse::<SocketAddr>()
            .map_err(|_| bad(&s.path("listen"), "not a socket address"))?,
    };
    if !allow_remote && !listen.ip().is_loopback() {
        return Err(bad(
            &s.path("listen"),
            "not a loopback address (set api.allow_remote = true to listen beyond this machine)",
        ));
    }
    let capture_timeout =
        s.duration("capture_timeout", d.capture_timeout, Duration::from_secs(1))?;
    let max_capture_timeout = s.duration(
        "max_capture_timeout",
        d.max_capture_timeout,
        Duration::from_secs(1),
    )?;
    if capture_timeout > max_capture_timeout {
        return Err(bad(
            &s.path("capture_timeout"),
            "must not exceed api.max_capture_timeout",
        ));
    }
    let waiting = s.uint(
        "max_waiting_captures",
        d.max_waiting_captures as u64,
        1,
        1000,
    )?;
    Ok(ApiConfig {
        enabled: s.bool("enabled", d.enabled)?,
        listen,
        token_file: s.path_buf("token_file")?.unwrap_or(d.token_file),
        allow_remote,
        capture_timeout,
        max_capture_timeout,
        max_waiting_captures: usize::try_from(waiting).unwrap_or(d.max_waiting_captures),
        allowed_origins: parse_origins(&s)?,
        health_down_status: match s.uint(
            "health_down_status",
            u64::from(d.health_down_status),
            200,
            503,
        )? {
            200 => 200,
            503 => 503,
            _ => return Err(bad(&s.path("health_down_status"), "must be 200 or 503")),
        },
    })
}

fn parse_telemetry(s: Section<'_>) -> Result<TelemetryConfig> {
    let s = s.allow(&[
        "enabled",
        "endpoint",
        "instance_id",
        "lane",
        "store",
        "metrics_interval",
        "buffer",
        "timeout",
    ])?;
    let d = TelemetryConfig::default();
    let endpoint = match s.string("endpoint")? {
        None => d.endpoint,
        Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
            e.trim_end_matches('/').to_string()
        }
        Some(_) => {
            return Err(bad(
                &s.path("endpoint"),
                "must be an http:// or https:// URL (the collector's OTLP/HTTP port)",
            ))
        }
    };
    let text = |key: &str| -> Result<Option<String>> {
        Ok(s.string(key)?.filter(|v| !v.is_empty()).map(str::to_string))
    };
    Ok(TelemetryConfig {
        enabled: s.bool("enabled", d.enabled)?,
        endpoint,
        instance_id: text("instance_id")?,
        lane: text("lane")?,
        store: text("store")?,
        metrics_interval: s.duration(
            "metrics_interval",
            d.metrics_interval,
            Duration::from_millis(100),
        )?,
        buffer: usize::try_from(s.uint("buffer", d.buffer as u64, 1, 1_000_000)?)
            .unwrap_or(d.buffer),
        timeout: s.duration("timeout", d.timeout, Duration::from_millis(100))?,
    })
}

/// `api.allowed_origins`: a list of exact origins as browsers send them in `Origin`
/// (`http://kiosk.local:8080`: scheme, host, optional port; no path, no trailing `/`).
fn parse_origins(s: &Section<'_>) -> Result<Vec<String>> {
    let path = s.path("allowed_origins");
    let items = match s.get("allowed_origins") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad(&path, "must be a list of origins")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::String(text) = item else {
            return Err(bad(&at, "must be a string"));
        };
        if !is_origin(text) {
            return Err(bad(
                &at,
                "not an origin (scheme://host[:port], e.g. \"http://localhost:8080\", no path)",
            ));
        }
        out.push(text.clone());
    }
    Ok(out)
}

fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    // `[v6]:port` keeps its colons inside the brackets.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
            None => return false,
        },
        None => match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    let port_ok = port.map_or(true, |p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// Selectors of design.md §3; the device module parses them fully.
/// One rule for what a selector is: the device layer's parser.
fn check_selector(sel: &str) -> bool {
    sel.parse::<crate::device::Selector>().is_ok()
}

fn parse_readers(value: Option<&Value>) -> Result<Vec<ReaderConfig>> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("readers", "must be a list of tables ([[readers]])")),
    };
    let mut readers: Vec<ReaderConfig> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("readers[{i}]");
        let Value::Table(t) = item else {
            return Err(bad(&prefix, "must be a table"));
        };
        let s = Section::new(
            &prefix,
            t,
            &["id", "device", "profile", "activate", "pin_entry"],
        )?;
        let device = match s.string("device")? {
            None => return Err(ConfigError::Missing(s.path("device"))),
            Some(d) if check_selector(d) => d.to_string(),
            Some(_) => {
                return Err(bad(
                    &s.path("device"),
                    "not a device selector (hid:VID:PID[:SERIAL], hidraw:PATH, serial:PATH[@BAUD], keyboard:PATH, stdin, sim:[LABEL])",
                ))
            }
        };
        let id = match s.string("id")? {
            None => device.clone(),
            Some(id) if is_name(id, 64) => id.to_string(),
            Some(_) => {
                return Err(bad(
                    &s.path("id"),
                    "must be 1-64 characters of letters, digits, `-`, `_`, `.`, `:`, `/`, `@`",
                ))
            }
        };
        let profile = match s.string("profile")? {
            None => None,
            Some(p) if is_name(p, 64) => Some(p.to_string()),
            Some(_) => return Err(bad(&s.path("profile"), "not a profile id")),
        };
        let activate = match s.string("activate")? {
            None | Some("on-capture") => ActivateMode::OnCapture,
            Some("continuous") => ActivateMode::Continuous,
            Some(_) => {
                return Err(bad(
                    &s.path("activate"),
                    "must be \"on-capture\" or \"continuous\"",
                ))
            }
        };
        let pin_entry = match s.get("pin_entry") {
            None => None,
            Some(_) => Some(s.bool("pin_entry", false)?),
        };
        if readers.iter().any(|r| r.device == device) {
            return Err(bad(&s.path("device"), "the same device is listed twice"));
        }
        if readers.iter().any(|r| r.id == id) {
            return Err(bad(&s.path("id"), "the same reader id is used twice"));
        }
        readers.push(ReaderConfig {
            id,
            device,
            profile,
            activate,
            pin_entry,
        });
    }
    Ok(readers)
}

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c))
}

fn parse_lane(s: Section<'_>) -> Result<LaneConfig> {
    let mut s = s.allow(&[
        "on_swipe",
        "client_ip",
        "device_code",
        "customer_id_prefix",
        "allow_clear_text",
        "entry_modes",
        "check",
    ])?;
    let d = LaneConfig::default();
    let on_swipe = match s.string("on_swipe")? {
        None => d.on_swipe,
        Some("save") => OnSwipe::Save,
        Some("ignore") => OnSwipe::Ignore,
        Some(_) => return Err(bad(&s.path("on_swipe"), "must be \"save\" or \"ignore\"")),
    };
    let client_ip = match s.string("client_ip")? {
        None => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad(&s.path("client_ip"), "not an IP address"))?,
        ),
    };
    let device_code = match s.string("device_code")? {
        None => None,
        Some(c)
            if !c.is_empty() && c.len() <= 16 && c.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Some(c.to_string())
        }
        Some(_) => {
            return Err(bad(
                &s.path("device_code"),
                "must be 1-16 letters or digits (e.g. \"IDTECH\", \"38\")",
            ))
        }
    };
    let customer_id_prefix = match s.string("customer_id_prefix")? {
        None => d.customer_id_prefix,
        // The Customer API takes alphanumeric ids; the agent appends ~20 characters.
        Some(p)
            if !p.is_empty() && p.len() <= 12 && p.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            p.to_string()
        }
        Some(_) => {
            return Err(bad(
                &s.path("customer_id_prefix"),
                "must be 1-12 letters or digits",
            ))
        }
    };
    let e = s.table("entry_modes")?.allow(&[
        "swipe",
        "contactless_msd",
        "chip",
        "contactless_chip",
        "fallback",
        "manual",
    ])?;
    let ed = EntryModes::default();
    let mode = |key: &str, default: String| -> Result<String> {
        match e.string(key)? {
            None => Ok(default),
            Some(m) if m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) => Ok(m.to_string()),
            Some(_) => Err(bad(&e.path(key), "must be two digits, e.g. \"90\"")),
        }
    };
    let entry_modes = EntryModes {
        swipe: mode("swipe", ed.swipe)?,
        contactless_msd: mode("contactless_msd", ed.contactless_msd)?,
        chip: mode("chip", ed.chip)?,
        contactless_chip: mode("contactless_chip", ed.contactless_chip)?,
        fallback: mode("fallback", ed.fallback)?,
        manual: mode("manual", ed.manual)?,
    };
    let c = s.table("check")?.allow(&["account_type", "sec_code"])?;
    let check = CheckDefaults {
        account_type: match c.string("account_type")? {
            None => None,
            Some(t) => Some(AccountType::parse(t).ok_or_else(|| {
                bad(
                    &c.path("account_type"),
                    "must be \"checking\", \"saving\" or \"business\" (or 0, 1, 2)",
                )
            })?),
        },
        sec_code: match c.string("sec_code")? {
            None => None,
            Some(t) => Some(SecCode::parse(t).ok_or_else(|| {
                bad(
                    &c.path("sec_code"),
                    "must be CCD, PPD, WEB, TEL, BOC or ARC (or 0-5)",
                )
            })?),
        },
    };
    Ok(LaneConfig {
        on_swipe,
        client_ip,
        device_code,
        customer_id_prefix,
        allow_clear_text: s.bool("allow_clear_text", d.allow_clear_text)?,
        entry_modes,
        check,
    })
}

/// `LEVEL` or `target=LEVEL`: a bare word that is no level would be taken as a target and
/// silently log nothing of ours.
fn is_log_directive(d: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level = d.rsplit_once('=').map_or(
        d,
        |(target, level)| {
            if target.is_empty() {
                ""
            } else {
                level
            }
        },
    );
    LEVELS.contains(&level.to_ascii_lowercase().as_str())
}

fn parse_log(s: Section<'_>) -> Result<LogConfig> {
    let s = s.allow(&["format", "level"])?;
    let d = LogConfig::default();
    let format = match s.string("format")? {
        None => d.format,
        Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some(_) => return Err(bad(&s.path("format"), "must be \"human\" or \"json\"")),
    };
    let level = match s.string("level")? {
        None => d.level,
        Some(l)
            if !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_=:,.-".contains(c))
                && l.split(',').all(is_log_directive) =>
        {
            l.to_string()
        }
        Some(_) => {
            return Err(bad(
                &s.path("level"),
                "not a log filter (e.g. \"info\" or \"cardlane=debug\")",
            ))
        }
    };
    Ok(LogConfig { format, level })
}

fn parse_devices(s: Section<'_>) -> Result<DevicesConfig> {
    let s = s.allow(&["profiles_dir", "hotplug", "poll_interval"])?;
    let d = DevicesConfig::default();
    Ok(DevicesConfig {
        profiles_dir: s.path_buf("profiles_dir")?,
        hotplug: s.bool("hotplug", d.hotplug)?,
        poll_interval: s.duration("poll_interval", d.poll_interval, Duration::from_millis(50))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert_eq;
    use std::os::unix::fs::PermissionsExt;

    fn err(text: &str) -> ConfigError {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    /// The design.md §3 example, verbatim.
    const DESIGN_EXAMPLE: &str = r#"
[gateway]
base_url = "https://apisandbox.onepay.com"   # API key from CARDLANE_API_KEY or api_key_file
[queue]
path = "/var/lib/cardlane/queue.db"
[api]
listen = "127.0.0.1:7878"
token_file = "/var/lib/cardlane/api-token"   # created 0600 with a random token if missing
[[readers]]
device = "serial:/dev/ttyUSB0@9600"          # any selector; profile = "…" optional
[lane]
on_swipe = "save"                            # a swipe with no capture armed: "save" or "ignore"
"#;

    #[test]
    fn design_example_parses() {
        let c = Config::from_toml_str(DESIGN_EXAMPLE).unwrap();
        assert_eq!(c.gateway.base_url, "https://apisandbox.onepay.com");
        assert_eq!(
            c.gateway.customer_url(),
            "https://apisandbox.onepay.com/Customer"
        );
        assert_eq!(c.queue.path, PathBuf::from("/var/lib/cardlane/queue.db"));
        assert_eq!(
            c.api.listen,
            "127.0.0.1:7878".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            c.api.token_file,
            PathBuf::from("/var/lib/cardlane/api-token")
        );
        assert_eq!(
            c.readers,
            vec![ReaderConfig {
                id: "serial:/dev/ttyUSB0@9600".into(),
                device: "serial:/dev/ttyUSB0@9600".into(),
                profile: None,
                activate: ActivateMode::OnCapture,
                pin_entry: None,
            }]
        );
        assert_eq!(c.lane.on_swipe, OnSwipe::Save);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.queue.max_records, 1000);
        assert_eq!(c.queue.max_age, Duration::from_secs(172_800));
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.gateway.retry.max_attempts, None);
        assert_eq!(c.lane.entry_modes.swipe, "90");
        assert_eq!(c.lane.entry_modes.contactless_chip, "07");
        assert!(c.readers.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::from_toml_str(
            r#"
[gateway]
base_url = "http://127.0.0.1:9000/"
customer_path = "/customer"
api_key_file = "/etc/cardlane/api-key"
connect_timeout = "750ms"
total_timeout = 20
[gateway.retry]
initial_backoff = "2s"
max_backoff = "10m"
max_attempts = 7
[queue]
path = "/tmp/q.db"
max_records = 50
max_age = "1d"
[api]
enabled = false
listen = "0.0.0.0:8080"
allow_remote = true
token_file = "/tmp/tok"
capture_timeout = "30s"
max_capture_timeout = "5m"
max_waiting_captures = 2
[[readers]]
id = "front"
device = "hid:0ACD:2010"
profile = "idtech-securemag-hid"
[[readers]]
device = "stdin"
[lane]
on_swipe = "ignore"
client_ip = "10.0.0.5"
device_code = "IDTECH"
customer_id_prefix = "LANE3"
allow_clear_text = true
[lane.entry_modes]
swipe = "02"
contactless_msd = "91"
chip = "05"
contactless_chip = "07"
fallback = "80"
manual = "01"
[log]
format = "json"
level = "cardlane=debug"
[devices]
profiles_dir = "/etc/cardlane/devices"
hotplug = false
poll_interval = "250ms"
"#,
        )
        .unwrap();
        assert_eq!(c.gateway.base_url, "http://127.0.0.1:9000");
        assert_eq!(c.gateway.customer_url(), "http://127.0.0.1:9000/customer");
        assert_eq!(c.gateway.api_key_file, Some("/etc/cardlane/api-key".into()));
        assert_eq!(c.gateway.connect_timeout, Duration::from_millis(750));
        assert_eq!(c.gateway.total_timeout, Duration::from_secs(20));
        assert_eq!(c.gateway.retry.initial_backoff, Duration::from_secs(2));
        assert_eq!(c.gateway.retry.max_backoff, Duration::from_secs(600));
        assert_eq!(c.gateway.retry.max_attempts, Some(7));
        assert_eq!(c.queue.max_records, 50);
        assert_eq!(c.queue.max_age, Duration::from_secs(86_400));
        assert!(!c.api.enabled);
        assert!(c.api.allow_remote);
        assert_eq!(c.api.listen.port(), 8080);
        assert_eq!(c.api.capture_timeout, Duration::from_secs(30));
        assert_eq!(c.api.max_capture_timeout, Duration::from_secs(300));
        assert_eq!(c.api.max_waiting_captures, 2);
        assert_eq!(c.readers.len(), 2);
        assert_eq!(c.readers[0].id, "front");
        assert_eq!(
            c.readers[0].profile.as_deref(),
            Some("idtech-securemag-hid")
        );
        assert_eq!(c.readers[1].id, "stdin");
        assert_eq!(c.lane.on_swipe, OnSwipe::Ignore);
        assert_eq!(c.lane.client_ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(c.lane.device_code.as_deref(), Some("IDTECH"));
        assert_eq!(c.lane.customer_id_prefix, "LANE3");
        assert!(c.lane.allow_clear_text);
        assert_eq!(c.lane.entry_modes.swipe, "02");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "cardlane=debug");
        assert_eq!(c.devices.profiles_dir, Some("/etc/cardlane/devices".into()));
        assert!(!c.devices.hotplug);
        assert_eq!(c.devices.poll_interval, Duration::from_millis(250));
    }

    #[test]
    fn allowed_origins_are_exact_origins() {
        let c = Config::from_toml_str("").unwrap();
        assert!(c.api.allowed_origins.is_empty(), "none by default");
        let c = Config::from_toml_str(
            "[api]\nallowed_origins = [\"http://localhost:8080\", \"https://kiosk.example\", \"http://[::1]:3000\"]",
        )
        .unwrap();
        assert_eq!(
            c.api.allowed_origins,
            [
                "http://localhost:8080",
                "https://kiosk.example",
                "http://[::1]:3000"
            ]
        );
        for bad in [
            "\"http://localhost:8080\"",
            "[\"http://localhost:8080/\"]",
            "[\"http://localhost:8080/app\"]",
            "[\"localhost:8080\"]",
            "[\"ftp://host\"]",
            "[\"http://host:0\"]",
            "[\"http://host:99999\"]",
            "[\"*\"]",
            "[\"http://\"]",
            "[1]",
        ] {
            let e = Config::from_toml_str(&format!("[api]\nallowed_origins = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("api.allowed_origins"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let cases = [
            ("[gateway]\nbse_url = \"https://x\"", "gateway.bse_url"),
            ("[gatway]\n", "gatway"),
            ("top = 1", "top"),
            ("[gateway.retry]\nmax = 3", "gateway.retry.max"),
            ("[queue]\nmax_recs = 3", "queue.max_recs"),
            ("[api]\nlisten_on = \"x\"", "api.listen_on"),
            (
                "[[readers]]\ndevice = \"stdin\"\nbaud = 9600",
                "readers[0].baud",
            ),
            ("[lane]\nonswipe = \"save\"", "lane.onswipe"),
            (
                "[lane.entry_modes]\nchipp = \"05\"",
                "lane.entry_modes.chipp",
            ),
            ("[log]\nfmt = \"json\"", "log.fmt"),
            ("[devices]\npoll = \"1s\"", "devices.poll"),
        ];
        for (text, key) in cases {
            let e = err(text);
            assert_eq!(e, ConfigError::UnknownKey(key.into()), "{text}");
            assert_eq!(e.to_string(), format!("unknown key `{key}`"));
            assert_eq!(e.code(), "config-unknown-key");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "[api]\nlisten = \"localhost\"",
                "api.listen",
                "not a socket address",
            ),
            (
                "[api]\nlisten = \"0.0.0.0:7878\"",
                "api.listen",
                "not a loopback address",
            ),
            ("[api]\nlisten = 7878", "api.listen", "must be a string"),
            (
                "[api]\nmax_waiting_captures = 0",
                "api.max_waiting_captures",
                "from 1 to 1000",
            ),
            (
                "[api]\ncapture_timeout = \"20m\"",
                "api.capture_timeout",
                "must not exceed",
            ),
            (
                "[gateway]\nbase_url = \"ftp://x\"",
                "gateway.base_url",
                "not a URL",
            ),
            (
                "[gateway]\nbase_url = \"http://gw.example.com\"",
                "gateway.base_url",
                "loopback",
            ),
            (
                "[gateway]\nbase_url = \"https://u:p@gw.example.com\"",
                "gateway.base_url",
                "credentials",
            ),
            (
                "[gateway]\nconnect_timeout = \"5 parsecs\"",
                "gateway.connect_timeout",
                "not a duration",
            ),
            (
                "[gateway]\nconnect_timeout = \"9s\"\ntotal_timeout = \"3s\"",
                "gateway.total_timeout",
                "shorter",
            ),
            (
                "[gateway.retry]\nmax_attempts = -1",
                "gateway.retry.max_attempts",
                "whole number",
            ),
            (
                "[gateway.retry]\ninitial_backoff = \"1m\"\nmax_backoff = \"1s\"",
                "gateway.retry.max_backoff",
                "shorter",
            ),
            ("[queue]\nmax_records = 0", "queue.max_records", "from 1"),
            ("[queue]\nmax_age = true", "queue.max_age", "not a duration"),
            ("[queue]\npath = \"\"", "queue.path", "empty"),
            (
                "[lane]\non_swipe = \"keep\"",
                "lane.on_swipe",
                "\"save\" or \"ignore\"",
            ),
            (
                "[lane]\nclient_ip = \"10.0.0.500\"",
                "lane.client_ip",
                "not an IP address",
            ),
            (
                "[lane]\ndevice_code = \"ID TECH\"",
                "lane.device_code",
                "letters or digits",
            ),
            (
                "[lane]\ncustomer_id_prefix = \"CL-\"",
                "lane.customer_id_prefix",
                "letters or digits",
            ),
            (
                "[lane]\nallow_clear_text = \"yes\"",
                "lane.allow_clear_text",
                "true or false",
            ),
            (
                "[lane.entry_modes]\nswipe = \"9\"",
                "lane.entry_modes.swipe",
                "two digits",
            ),
            (
                "[lane.check]\nsec_code = \"POP\"",
                "lane.check.sec_code",
                "CCD, PPD",
            ),
            (
                "[lane.check]\naccount_type = \"3\"",
                "lane.check.account_type",
                "checking",
            ),
            (
                "[log]\nformat = \"xml\"",
                "log.format",
                "\"human\" or \"json\"",
            ),
            (
                "[log]\nlevel = \"info; rm\"",
                "log.level",
                "not a log filter",
            ),
            (
                "[log]\nlevel = \"verbose\"",
                "log.level",
                "not a log filter",
            ),
            (
                "[log]\nlevel = \"cardlane=loud\"",
                "log.level",
                "not a log filter",
            ),
            (
                "[log]\nlevel = \"info,=debug\"",
                "log.level",
                "not a log filter",
            ),
            (
                "[devices]\npoll_interval = \"1ms\"",
                "devices.poll_interval",
                "at least 50ms",
            ),
            ("[devices]\nhotplug = 1", "devices.hotplug", "true or false"),
            (
                "[[readers]]\ndevice = \"usb:1\"",
                "readers[0].device",
                "not a device selector",
            ),
            (
                "[[readers]]\ndevice = \"serial:\"",
                "readers[0].device",
                "not a device selector",
            ),
            (
                "[[readers]]\ndevice = \"stdin\"\n[[readers]]\ndevice = \"stdin\"",
                "readers[1].device",
                "twice",
            ),
            (
                "[[readers]]\ndevice = \"stdin\"\nid = \"a b\"",
                "readers[0].id",
                "1-64 characters",
            ),
            ("readers = \"stdin\"", "readers", "list of tables"),
            ("gateway = 3", "gateway", "must be a table"),
        ];
        for (text, key, reason) in cases {
            match err(text) {
                ConfigError::BadValue { key: k, reason: r } => {
                    assert_eq!(k, key, "{text}");
                    assert!(r.contains(reason), "{text}: {r}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(
            err("[api]\nlisten = \"nope\"").to_string(),
            "api.listen: not a socket address"
        );
    }

    #[test]
    fn missing_device_is_named() {
        assert_eq!(
            err("[[readers]]\nprofile = \"x\""),
            ConfigError::Missing("readers[0].device".into())
        );
    }

    #[test]
    fn syntax_errors_give_a_line_and_no_source_text() {
        let e = err("[api]\nlisten = \"127.0.0.1:1\"\ntoken_file = SECRETVALUE\n");
        match &e {
            ConfigError::Syntax { line, .. } => assert_eq!(*line, 3),
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains("SECRETVALUE"), "{e}");
    }

    #[test]
    fn errors_do_not_echo_values() {
        let e = err("[lane]\nclient_ip = \"4111111111111111\"");
        assert!(!e.to_string().contains("4111111111111111"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("48h"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
        assert_eq!(parse_duration("999999999999999999d"), None);
    }

    #[test]
    fn reader_activate_mode() {
        let one = |v: &str| {
            Config::from_toml_str(&format!("[[readers]]\ndevice = \"serial:/dev/ttyS0\"\n{v}"))
        };
        assert_eq!(
            one("").unwrap().readers[0].activate,
            ActivateMode::OnCapture
        );
        assert_eq!(
            one("activate = \"on-capture\"").unwrap().readers[0].activate,
            ActivateMode::OnCapture
        );
        assert_eq!(
            one("activate = \"continuous\"").unwrap().readers[0].activate,
            ActivateMode::Continuous
        );
        let e = one("activate = \"always\"").unwrap_err();
        assert!(e.to_string().contains("readers[0].activate"), "{e}");
        let e = one("activate = 1").unwrap_err();
        assert!(e.to_string().contains("readers[0].activate"), "{e}");
    }

    #[test]
    fn reader_pin_entry_overrides_only_when_given() {
        let one = |v: &str| {
            Config::from_toml_str(&format!("[[readers]]\ndevice = \"serial:/dev/ttyS0\"\n{v}"))
        };
        assert_eq!(one("").unwrap().readers[0].pin_entry, None);
        assert_eq!(
            one("pin_entry = true").unwrap().readers[0].pin_entry,
            Some(true)
        );
        assert_eq!(
            one("pin_entry = false").unwrap().readers[0].pin_entry,
            Some(false)
        );
        let e = one("pin_entry = \"yes\"").unwrap_err();
        assert!(e.to_string().contains("readers[0].pin_entry"), "{e}");
    }

    #[test]
    fn ipv6_loopback_http_is_allowed() {
        let c = Config::from_toml_str("[gateway]\nbase_url = \"http://[::1]:8080\"").unwrap();
        assert_eq!(c.gateway.base_url, "http://[::1]:8080");
        let c = Config::from_toml_str("[api]\nlisten = \"[::1]:7878\"").unwrap();
        assert!(c.api.listen.is_ipv6());
    }

    #[test]
    fn example_is_the_defaults_plus_three_readers() {
        let c = Config::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(c.readers.len(), 3);
        assert_eq!(c.readers[0].id, "front");
        assert_eq!(c.readers[1].id, "kiosk");
        assert_eq!(c.readers[1].profile.as_deref(), Some("idtech-neo2-serial"));
        assert_eq!(c.readers[1].activate, ActivateMode::OnCapture);
        assert_eq!(c.readers[2].id, "hid:0801:0011");
        assert_eq!(
            Config {
                readers: Vec::new(),
                ..c
            },
            Config::default()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = Config::from_toml_str(&text);
            let _ = parse_duration(&text);
            let _ = check_base_url(&text);
        }

        #[test]
        fn mutated_example_never_panics(cut in 0usize..2000, insert in "[\\[\\]=\"a-z0-9.\n ]{0,12}") {
            let mut text = EXAMPLE.to_string();
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            text.insert_str(at, &insert);
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn durations_round_trip(n in 0u64..1_000_000, unit in 0usize..5) {
            let (suffix, ms) = [("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)][unit];
            prop_assert_eq!(parse_duration(&format!("{n}{suffix}")), Some(Duration::from_millis(n * ms)));
        }
    }

    #[test]
    fn api_key_env_wins_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "file-key\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let g = GatewayConfig {
            api_key_file: Some(file.clone()),
            ..GatewayConfig::default()
        };
        let k = g
            .api_key_from(Some(Zeroizing::new("env-key".into())))
            .unwrap();
        assert_eq!(k.as_str(), "env-key");
        let k = g.api_key_from(Some(Zeroizing::new("  ".into()))).unwrap();
        assert_eq!(k.as_str(), "file-key");
        let k = g.api_key_from(None).unwrap();
        assert_eq!(k.as_str(), "file-key");
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(
            g.api_key_from(None).unwrap_err().key(),
            Some("gateway.api_key_file")
        );
        let none = GatewayConfig::default();
        assert_eq!(
            none.api_key_from(None).unwrap_err().code(),
            "config-missing"
        );
    }

    #[test]
    fn contrib_example_is_the_built_in_one() {
        // Shipped for operators to copy; it must not drift from what `run` documents.
        let shipped = include_str!("../../contrib/cardlane.toml");
        assert_eq!(shipped, EXAMPLE);
        assert!(Config::from_toml_str(shipped).is_ok());
    }

    #[test]
    fn api_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "file-key-secret\n").unwrap();
        let g = GatewayConfig {
            api_key_file: Some(file.clone()),
            ..GatewayConfig::default()
        };
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = g.api_key_from(None).unwrap_err();
            assert_eq!(e.key(), Some("gateway.api_key_file"), "{mode:o}");
            assert!(!e.to_string().contains("file-key-secret"));
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(g.api_key_from(None).unwrap().as_str(), "file-key-secret");
    }

    #[test]
    fn load_reads_a_file_and_names_it_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cardlane.toml");
        std::fs::write(&file, DESIGN_EXAMPLE).unwrap();
        assert_eq!(Config::load(&file).unwrap().readers.len(), 1);
        let missing = dir.path().join("nope.toml");
        match Config::load(&missing).unwrap_err() {
            ConfigError::Read { path, .. } => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lane_check_defaults() {
        use crate::gateway::check_record::{AccountType, SecCode};
        let c =
            Config::from_toml_str("[lane.check]\naccount_type = \"savings\"\nsec_code = \"boc\"\n")
                .unwrap();
        assert_eq!(c.lane.check.account_type, Some(AccountType::Saving));
        assert_eq!(c.lane.check.sec_code, Some(SecCode::Boc));
        assert_eq!(
            Config::from_toml_str("").unwrap().lane.check,
            CheckDefaults::default()
        );
    }
}
