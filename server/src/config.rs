//! berthd's configuration: a TOML file whose every key has an embedded default, so the daemon
//! runs with no file at all. `berthd config default` prints the defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Config format version.
    pub version: u32,
    /// Persistent data: metadata, content.
    pub root: PathBuf,
    /// Runtime state, lost on reboot: sockets, task bundles.
    pub state: PathBuf,
    pub grpc: Grpc,
    pub log: Log,
    pub gc: GcConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Grpc {
    /// The unix socket clients dial.
    pub address: PathBuf,
    /// Owner and group of the socket; the socket is 0660, so the group decides who else may talk
    /// to the daemon (socket access is root-equivalent).
    pub uid: u32,
    pub gid: u32,
    pub max_recv_message_size: usize,
    pub max_send_message_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// trace, debug, info, warn or error
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// How long after a delete the collector runs, batching deletes that come together.
    pub deletion_delay_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 1,
            root: PathBuf::from("/var/lib/berth"),
            state: PathBuf::from("/run/berth"),
            grpc: Grpc::default(),
            log: Log::default(),
            gc: GcConfig::default(),
        }
    }
}

impl Default for Grpc {
    fn default() -> Self {
        Grpc {
            address: PathBuf::from("/run/berth/berthd.sock"),
            uid: 0,
            gid: 0,
            max_recv_message_size: 16 << 20,
            max_send_message_size: 16 << 20,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            deletion_delay_ms: 100,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read config {}: {e}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        if cfg.version != 1 {
            anyhow::bail!(
                "config {}: version {} is not supported (1 is)",
                path.display(),
                cfg.version
            );
        }
        Ok(cfg)
    }

    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).expect("the default config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips() {
        let text = Config::default_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let cfg: Config = toml::from_str("root = \"/tmp/x\"\n[grpc]\ngid = 5\n").unwrap();
        assert_eq!(cfg.root, PathBuf::from("/tmp/x"));
        assert_eq!(cfg.grpc.gid, 5);
        assert_eq!(cfg.grpc.address, Grpc::default().address);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("rooot = \"/x\"\n").is_err());
    }
}
