//! The configuration of `supernetflow run`: one TOML file, overridden by `SNF__SECTION__KEY`
//! environment variables, overridden by flags. Every key is documented in
//! `config/run.example.toml` (a test keeps that file equal to the defaults).

use collector::CollectorConfig;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use mediator::http::HttpConfig;
use mediator::sink::ipfix::IpfixSinkConfig;
use mediator::sink::kafka::KafkaSinkConfig;
use mediator::sink::parquet::ParquetSinkConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

/// Prefix of the environment variables that override keys: `SNF__HTTP__LISTEN=0.0.0.0:8080`
/// sets `http.listen`; nested sections are separated by `__` too.
pub const ENV_PREFIX: &str = "SNF__";

/// Everything `run` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The listeners and the decoder: the same keys as `collect`'s configuration.
    pub collector: CollectorConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The NOC dashboard (`/dashboard`, `/api/v1/summary`).
    pub dashboard: mediator::dashboard::DashboardConfig,
    /// The outputs.
    pub sinks: SinksConfig,
    /// The join of router flows with the taps' records.
    pub join: mediator::join::JoinConfig,
    /// Scale-out through Kafka: the raw topics and the mediators' consumer group
    /// (`supernetflow mediate`; `run` does not read it).
    pub scaleout: mediator::scaleout::ScaleoutConfig,
}

/// Which sinks run, and how they are fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// The sinks that run: any of `"parquet"`, `"kafka"`, `"ipfix"`. Default `["parquet"]`.
    pub enabled: Vec<SinkName>,
    /// Batches each sink's queue holds before the decode loop waits for it (and, while it waits,
    /// the collector's own queue fills and counts `queue_full_drops`). Default 64.
    pub queue_batches: usize,
    /// At shutdown, how long each sink may take to deliver or persist what it holds, seconds.
    /// Undelivered Kafka records stay in the spool for the next start. Default 30.
    pub close_timeout_secs: u64,
    /// The Parquet sink.
    pub parquet: ParquetSinkConfig,
    /// The Kafka sink.
    pub kafka: KafkaSinkConfig,
    /// The IPFIX sink (re-export to IPFIX collectors).
    pub ipfix: IpfixSinkConfig,
}

/// A sink's name in `sinks.enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkName {
    Parquet,
    Kafka,
    Ipfix,
}

impl Default for SinksConfig {
    fn default() -> Self {
        Self {
            enabled: vec![SinkName::Parquet],
            queue_batches: 64,
            close_timeout_secs: 30,
            parquet: ParquetSinkConfig::default(),
            kafka: KafkaSinkConfig::default(),
            ipfix: IpfixSinkConfig::default(),
        }
    }
}

impl SinksConfig {
    /// True when `name` is enabled.
    pub fn has(&self, name: SinkName) -> bool {
        self.enabled.contains(&name)
    }
}

/// Reads the file (when given) and the environment. Errors name the key and where it came from.
pub fn load(file: Option<&Path>) -> anyhow::Result<RunConfig> {
    load_from(file, Env::prefixed(ENV_PREFIX).split("__"))
}

fn load_from(file: Option<&Path>, env: Env) -> anyhow::Result<RunConfig> {
    let mut f = Figment::new();
    if let Some(p) = file {
        if !p.is_file() {
            anyhow::bail!("config file {} not found", p.display());
        }
        f = f.merge(Toml::file(p));
    }
    let cfg: RunConfig = f.merge(env).extract().map_err(|e| {
        // Every error of the chain, each with its key path and source.
        let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("configuration: {}", all.join("; "))
    })?;
    Ok(cfg)
}

/// Checks every section; the message names the key.
pub fn validate(cfg: &mut RunConfig) -> anyhow::Result<()> {
    cfg.collector
        .decoder
        .validate()
        .map_err(|e| anyhow::anyhow!("collector.decoder: {e}"))?;
    cfg.http.validate()?;
    if cfg.sinks.queue_batches == 0 {
        anyhow::bail!("sinks.queue_batches: must be at least 1");
    }
    if cfg.sinks.has(SinkName::Parquet) {
        cfg.sinks
            .parquet
            .validate()
            .map_err(|e| anyhow::anyhow!("sinks.parquet: {e}"))?;
    }
    if cfg.sinks.has(SinkName::Kafka) {
        cfg.sinks
            .kafka
            .validate()
            .map_err(|e| anyhow::anyhow!("sinks.kafka: {e}"))?;
    }
    if cfg.sinks.has(SinkName::Ipfix) {
        cfg.sinks
            .ipfix
            .validate()
            .map_err(|e| anyhow::anyhow!("sinks.ipfix.{e}"))?;
    }
    cfg.scaleout
        .validate()
        .map_err(|e| anyhow::anyhow!("scaleout.{e}"))?;
    Ok(())
}

/// What `mediate` needs beyond [`validate`]: its outputs must not go to the raw topics it reads.
pub fn validate_mediate(cfg: &RunConfig) -> anyhow::Result<()> {
    if cfg.sinks.has(SinkName::Kafka) {
        let t = &cfg.sinks.kafka.topics;
        for (key, topic) in [
            ("flow_records", &t.flow_records),
            ("tap_records", &t.tap_records),
            ("super_flows", &t.super_flows),
            ("app_sessions", &t.app_sessions),
        ] {
            if *topic == cfg.scaleout.flows_topic || *topic == cfg.scaleout.tap_topic {
                anyhow::bail!(
                    "sinks.kafka.topics.{key} = {topic:?} is a raw topic mediate reads \
                     (scaleout.flows_topic / scaleout.tap_topic): outputs would loop back"
                );
            }
        }
    }
    Ok(())
}

/// Puts every file `run` writes under `dir`: Parquet tables, the Kafka spool, the template state.
pub fn set_data_dir(cfg: &mut RunConfig, dir: &Path) {
    cfg.sinks.parquet.dir = dir.join("parquet");
    cfg.sinks.kafka.spool_dir = dir.join("spool/kafka");
    if cfg.collector.state_file.is_some() {
        cfg.collector.state_file = Some(dir.join("collector-state.json"));
    }
}

/// The documented example, for the test that keeps it equal to the defaults.
#[cfg(test)]
pub fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/run.example.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Env {
        Env::prefixed("SNF_TEST_NOTHING_SET__").split("__")
    }

    #[test]
    fn example_config_is_the_default() {
        let cfg = load_from(Some(&example_path()), no_env()).expect("example parses");
        assert_eq!(cfg, RunConfig::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[sinks.parquet]\nrow_group_rowz = 5\n").expect("write");
        let e = format!(
            "{:#}",
            load_from(Some(&p), no_env()).expect_err("must fail")
        );
        assert!(e.contains("row_group_rowz"), "{e}");
        assert!(e.contains("sinks.parquet"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[http]\nlisten = \"not an address\"\n").expect("write");
        let e = format!(
            "{:#}",
            load_from(Some(&p), no_env()).expect_err("must fail")
        );
        assert!(e.contains("http.listen"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[http]\nlisten = \"127.0.0.1:9000\"\n")?;
            jail.set_env("SNF__HTTP__LISTEN", "127.0.0.1:9001");
            jail.set_env("SNF__SINKS__ENABLED", "[parquet, kafka]");
            jail.set_env("SNF__SINKS__KAFKA__BROKERS", "127.0.0.1:19092");
            let cfg = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(cfg.http.listen.port(), 9001);
            assert!(cfg.sinks.has(SinkName::Kafka));
            assert_eq!(cfg.sinks.kafka.brokers, "127.0.0.1:19092");
            Ok(())
        });
    }

    #[test]
    fn ipfix_sink_without_collectors_stops_start_up() {
        let mut cfg = RunConfig::default();
        cfg.sinks.enabled.push(SinkName::Ipfix);
        let e = validate(&mut cfg).expect_err("must refuse").to_string();
        assert!(e.contains("sinks.ipfix.collectors"), "{e}");
        cfg.sinks.ipfix.collectors = vec!["127.0.0.1:4739".into()];
        validate(&mut cfg).expect("valid");
    }

    #[test]
    fn a_sink_kind_that_is_not_a_table_is_named() {
        let mut cfg = RunConfig::default();
        cfg.sinks.enabled.push(SinkName::Kafka);
        cfg.sinks.kafka.kinds = vec!["super_flows".into(), "superflows".into()];
        let e = validate(&mut cfg).expect_err("must refuse").to_string();
        assert!(
            e.contains("sinks.kafka") && e.contains("\"superflows\""),
            "{e}"
        );
        cfg.sinks.kafka.kinds = vec!["super_flows".into()];
        validate(&mut cfg).expect("valid");
        cfg.sinks.parquet.kinds = vec![];
        let e = validate(&mut cfg).expect_err("must refuse").to_string();
        assert!(
            e.contains("sinks.parquet") && e.contains("kinds: empty"),
            "{e}"
        );
    }

    #[test]
    fn public_bind_without_token_stops_start_up() {
        let mut cfg = RunConfig::default();
        cfg.http.listen = "0.0.0.0:8080".parse().expect("addr");
        let e = validate(&mut cfg).expect_err("must refuse").to_string();
        assert!(e.contains("http.token"), "{e}");
    }
}
