//! The Docker `config.json`, re-read when it changes, so a `docker login`
//! after start needs no restart. A stat per use decides (modification time
//! and size); a file that no longer parses keeps the last good config.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::credentials::{self, CredentialsError, DockerConfig};

/// What the file looked like when last read: `None` when it did not exist.
type Stamp = Option<(SystemTime, u64)>;

#[derive(Debug)]
pub struct DockerConfigSource {
    path: Option<PathBuf>,
    loaded: Mutex<(Stamp, Arc<DockerConfig>)>,
}

fn stamp(path: &Option<PathBuf>) -> Stamp {
    let meta = std::fs::metadata(path.as_ref()?).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl DockerConfigSource {
    /// Reads the config where the docker CLI looks for it (`$DOCKER_CONFIG`, `~/.docker`).
    pub fn load_default() -> Result<Self, CredentialsError> {
        let path = credentials::default_path(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"));
        Self::load(path)
    }

    pub fn load(path: Option<PathBuf>) -> Result<Self, CredentialsError> {
        let before = stamp(&path);
        let config = match &path {
            Some(p) => credentials::load(Some(p.clone()))?,
            None => DockerConfig::default(),
        };
        Ok(Self { path, loaded: Mutex::new((before, Arc::new(config))) })
    }

    /// The config as it is now, and whether it changed since the last call.
    pub fn current(&self) -> (Arc<DockerConfig>, bool) {
        let now = stamp(&self.path);
        let Ok(mut loaded) = self.loaded.lock() else {
            return (Arc::new(DockerConfig::default()), false);
        };
        if now == loaded.0 {
            return (Arc::clone(&loaded.1), false);
        }
        loaded.0 = now;
        match credentials::load(self.path.clone()) {
            Ok(config) => {
                let changed = config != *loaded.1;
                if changed {
                    tracing::info!("docker config changed: credentials re-read");
                    loaded.1 = Arc::new(config);
                }
                (Arc::clone(&loaded.1), changed)
            }
            Err(e) => {
                tracing::warn!("docker config unreadable, keeping the last one: {e}");
                (Arc::clone(&loaded.1), false)
            }
        }
    }

    /// The config as it is now.
    pub fn config(&self) -> Arc<DockerConfig> {
        self.current().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_file_and_keeps_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!(
            "shipshape-cfg-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.json");
        let _ = std::fs::remove_file(&file);
        let source = DockerConfigSource::load(Some(file.clone())).expect("load");
        assert_eq!(source.current(), (Arc::new(DockerConfig::default()), false));

        std::fs::write(&file, r#"{"auths":{"reg.example":{"auth":"dTpw"}}}"#).expect("write");
        let (config, changed) = source.current();
        assert!(changed && config.auths.contains_key("reg.example"));
        assert!(!source.current().1);

        // Broken JSON (a half-written file): the last good config stays.
        std::fs::write(&file, r#"{"auths":"#).expect("write");
        let (config, changed) = source.current();
        assert!(!changed && config.auths.contains_key("reg.example"));

        std::fs::write(&file, r#"{"auths":{"other.example":{"auth":"dTpw"}}}"#).expect("write");
        let (config, changed) = source.current();
        assert!(changed && config.auths.contains_key("other.example") && !config.auths.contains_key("reg.example"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
