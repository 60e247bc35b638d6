//! The state file of `accord report`: how many leading measurements of
//! the input the server has acknowledged, so that a run interrupted by
//! anything (Ctrl-C, kill -9, a lost connection) starts again after them.
//! It names the input (size and SHA-256), the server and the tenant, so
//! that it is never applied to another file or another registry. It is
//! replaced atomically (a temporary file renamed over it): a kill leaves
//! the old state or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Failure;
use super::measurement_file::Fingerprint;

/// What one input's runs have had acknowledged so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// Leading measurements (data lines) acknowledged.
    pub measurements: u64,
    /// The file's line of the last of them.
    pub line: usize,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub input_size: u64,
    pub input_sha256: String,
    pub server: String,
    pub tenant: String,
    pub acknowledged: Acknowledged,
}

/// `FILE.accord-report`, beside the input.
pub fn default_path(input: &Path) -> PathBuf {
    let mut name = input.as_os_str().to_os_string();
    name.push(".accord-report");
    PathBuf::from(name)
}

impl State {
    pub fn new(input: &Fingerprint, server: &str, tenant: &str) -> Self {
        Self {
            input_size: input.size,
            input_sha256: input.sha256.clone(),
            server: server.to_string(),
            tenant: tenant.to_string(),
            acknowledged: Acknowledged::default(),
        }
    }

    /// The state at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, Failure> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Failure::Usage(format!(
                    "error: cannot read the state file {}: {e}",
                    path.display()
                )));
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Failure::Usage(format!(
                "error: {} is no state file of accord report ({e}); pass --restart to \
                 report the file from its start",
                path.display()
            ))
        })
    }

    /// Whether this state was written for `input` sent to `server` and
    /// `tenant`; if not, why not.
    pub fn check(&self, input: &Fingerprint, server: &str, tenant: &str) -> Result<(), String> {
        if self.input_size != input.size || self.input_sha256 != input.sha256 {
            return Err(format!(
                "the input changed since its last run ({} bytes then, {} now{})",
                self.input_size,
                input.size,
                if self.input_size == input.size {
                    ", other content"
                } else {
                    ""
                }
            ));
        }
        if self.server != server || self.tenant != tenant {
            return Err(format!(
                "its last run reported to {} in {}, not to {server} in {tenant}",
                self.server, self.tenant
            ));
        }
        Ok(())
    }

    /// Writes the state to `path`: a temporary file beside it, flushed to
    /// disk, renamed over it.
    pub fn save(&self, path: &Path) -> Result<(), Failure> {
        let temporary = {
            let mut name = path.as_os_str().to_os_string();
            name.push(".tmp");
            PathBuf::from(name)
        };
        let fail = |e: std::io::Error| {
            Failure::Input(format!(
                "error: cannot write the state file {}: {e}",
                path.display()
            ))
        };
        let text = serde_json::to_string_pretty(self).expect("a state serializes");
        let mut file = std::fs::File::create(&temporary).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_data().map_err(fail)?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(fail)
    }

    /// Removes the state at `path`, once its input is reported in full.
    pub fn remove(path: &Path) -> Result<(), Failure> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Failure::Input(format!(
                "error: cannot remove the state file {}: {e}",
                path.display()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(size: u64, sha256: &str) -> Fingerprint {
        Fingerprint {
            size,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn a_saved_state_loads_back_and_replaces_the_last() {
        let dir = std::env::temp_dir().join(format!("accord-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.csv.accord-report");
        assert_eq!(State::load(&path).unwrap(), None);
        let mut state = State::new(&input(10, "ab"), "http://s", "tenants/t");
        state.save(&path).unwrap();
        state.acknowledged.measurements = 5;
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), Some(state));
        assert!(!dir.join("m.csv.accord-report.tmp").exists());
        State::remove(&path).unwrap();
        State::remove(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_fits_only_its_input_server_and_tenant() {
        let state = State::new(&input(10, "ab"), "http://s", "tenants/t");
        assert!(
            state
                .check(&input(10, "ab"), "http://s", "tenants/t")
                .is_ok()
        );
        assert!(
            state
                .check(&input(11, "ab"), "http://s", "tenants/t")
                .is_err()
        );
        assert!(
            state
                .check(&input(10, "cd"), "http://s", "tenants/t")
                .is_err()
        );
        assert!(
            state
                .check(&input(10, "ab"), "http://o", "tenants/t")
                .is_err()
        );
        assert!(
            state
                .check(&input(10, "ab"), "http://s", "tenants/u")
                .is_err()
        );
    }

    #[test]
    fn the_state_file_lies_beside_the_input() {
        assert_eq!(
            default_path(Path::new("data/m.csv")),
            PathBuf::from("data/m.csv.accord-report")
        );
    }
}
