//! What one `shipshape check` leaves for the next: which image references it
//! asked about and how each registry answered (scheme, h2).
//!
//! A check is timed by its user from start to finish, and at a registry's
//! distance two things would otherwise cost round trips every run: listing
//! the containers before the first registry request can go (the requests
//! for last run's references start at once instead, while the engine
//! answers), and a lone first request per registry that finds out its
//! scheme. The file is a hint, never the truth: references no container
//! runs any more are dropped from the answer, new ones are asked as usual,
//! and a protocol that no longer works is found out again.
//!
//! It lives in the data directory (`check-cache.json`) when that exists;
//! nothing in it is secret (no credentials, no tokens, no token realms).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::registry::client::{KnownProtocol, Scheme};
use crate::registry::insecure::InsecureRegistries;
use crate::registry::reference::{self, ImageRef};

const FILE_NAME: &str = "check-cache.json";
const FORMAT: u32 = 1;
/// Older hints are ignored: containers and registries have moved on.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// References kept: more than any one host runs.
const MAX_IMAGES: usize = 5000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCache {
    format: u32,
    /// Unix seconds.
    written_at: u64,
    /// By registry (`127.0.0.1:5000`, `ghcr.io`).
    pub registries: BTreeMap<String, KnownProtocol>,
    /// The references the run asked about, as `docker ps` shows them.
    pub images: Vec<String>,
}

impl CheckCache {
    pub fn new(images: &[ImageRef], registries: Vec<(String, KnownProtocol)>, now: SystemTime) -> Self {
        CheckCache {
            format: FORMAT,
            written_at: unix_secs(now),
            registries: registries.into_iter().collect(),
            images: images.iter().filter(|i| !i.is_pinned()).take(MAX_IMAGES).map(ImageRef::display_name).collect(),
        }
    }

    /// The cache in `bytes`, or an empty one when it is unreadable, from
    /// another format, or older than [`MAX_AGE`] (or from the future).
    pub fn decode(bytes: &[u8], now: SystemTime) -> Self {
        let Ok(cache) = serde_json::from_slice::<CheckCache>(bytes) else {
            return CheckCache::default();
        };
        let age = unix_secs(now).checked_sub(cache.written_at);
        if cache.format != FORMAT || age.is_none_or(|a| a > MAX_AGE.as_secs()) {
            return CheckCache::default();
        }
        cache
    }

    /// The references worth asking about before the engine has named the
    /// running ones: last run's, where the scheme to use doesn't depend on
    /// the engine's insecure-registry settings (not known yet). That is
    /// Docker Hub, registries insecure without the engine's word (loopback,
    /// `SHIPSHAPE_INSECURE_REGISTRIES`), and registries that answered https.
    pub fn prefetch(&self, without_engine: &InsecureRegistries) -> Vec<ImageRef> {
        let mut seen = HashSet::new();
        self.images
            .iter()
            .filter_map(|text| reference::parse(text).ok())
            .filter(|image| !image.is_pinned())
            .filter(|image| {
                !without_engine.engine_may_add_to(std::slice::from_ref(image))
                    || self.registries.get(&image.registry).is_some_and(|k| k.scheme == Scheme::Https)
            })
            .filter(|image| seen.insert(image.clone()))
            .collect()
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The cache in `data_dir`, or an empty one.
pub fn load(data_dir: &Path) -> CheckCache {
    std::fs::read(path(data_dir)).map(|bytes| CheckCache::decode(&bytes, SystemTime::now())).unwrap_or_default()
}

/// Replaces the cache in `data_dir` (all at once: a concurrent check reads
/// the old file or the new one). A missing data directory is not created —
/// `check` never sets up the service's folder — and a failure only costs
/// the next run its head start.
pub fn save(data_dir: &Path, cache: &CheckCache) {
    if !data_dir.is_dir() {
        return;
    }
    let target = path(data_dir);
    let temporary = data_dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let written = std::fs::write(&temporary, cache.encode()).and_then(|()| std::fs::rename(&temporary, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        tracing::debug!(path = %target.display(), error = %e, "could not keep what this check learned");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        reference::parse(s).expect("valid reference")
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn references_survive_the_round_trip() {
        let images =
            ["nginx", "nginx:1.27-alpine", "ghcr.io/o/r:v1", "127.0.0.1:5000/a/b", "[::1]:5000/x:y", "library/a/b"]
                .map(image);
        let cache = CheckCache::new(&images, Vec::new(), at(1000));
        let back = CheckCache::decode(&cache.encode(), at(1001));
        let parsed: Vec<ImageRef> = back.images.iter().map(|s| image(s)).collect();
        assert_eq!(parsed, images.to_vec());
    }

    #[test]
    fn pinned_references_are_not_kept() {
        let pinned = format!("nginx@sha256:{}", "a".repeat(64));
        let cache = CheckCache::new(&[image(&pinned), image("redis")], Vec::new(), at(0));
        assert_eq!(cache.images, vec!["redis:latest".to_string()]);
    }

    #[test]
    fn stale_foreign_or_broken_caches_are_empty() {
        let cache = CheckCache::new(&[image("redis")], Vec::new(), at(10_000));
        let bytes = cache.encode();
        let mut other_format = cache.clone();
        other_format.format = FORMAT + 1;
        let cases: [(&[u8], SystemTime, bool); 6] = [
            (&bytes, at(10_000), true),
            (&bytes, at(10_000 + MAX_AGE.as_secs()), true),
            (&bytes, at(10_001 + MAX_AGE.as_secs()), false),
            (&bytes, at(9_999), false),
            (b"{not json", at(10_000), false),
            (&other_format.encode(), at(10_000), false),
        ];
        for (i, (bytes, now, kept)) in cases.into_iter().enumerate() {
            assert_eq!(CheckCache::decode(bytes, now) == cache, kept, "case {i}");
        }
    }

    #[test]
    fn prefetch_only_where_the_engine_cannot_change_the_scheme() {
        let https = KnownProtocol { scheme: Scheme::Https, h2: true };
        let http = KnownProtocol { scheme: Scheme::Http, h2: false };
        let images = [
            "nginx",                          // Docker Hub: always https
            "127.0.0.1:5000/loop",            // loopback: insecure whatever the engine says
            "ghcr.io/o/r",                    // answered https last time
            "registry.lan:5000/plain",        // answered http: only the engine can say it may
            "unknown.example/never-answered", // nothing known
            "extra.lan/listed",               // SHIPSHAPE_INSECURE_REGISTRIES
        ]
        .map(image);
        let registries = vec![("ghcr.io".to_string(), https), ("registry.lan:5000".to_string(), http)];
        let cache = CheckCache::new(&images, registries, at(0));
        let insecure = InsecureRegistries::without_engine(&["extra.lan".to_string()]);
        let names: Vec<String> = cache.prefetch(&insecure).iter().map(ImageRef::display_name).collect();
        assert_eq!(
            names,
            ["nginx:latest", "127.0.0.1:5000/loop:latest", "ghcr.io/o/r:latest", "extra.lan/listed:latest"]
        );
    }

    #[test]
    fn saves_only_into_an_existing_folder() {
        let dir = std::env::temp_dir().join(format!("shipshape-check-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CheckCache::new(&[image("redis")], Vec::new(), SystemTime::now());
        save(&dir, &cache);
        assert!(!dir.exists(), "check must not create the data directory");
        std::fs::create_dir_all(&dir).expect("temp dir");
        save(&dir, &cache);
        assert_eq!(load(&dir), cache);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("read dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(FILE_NAME)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
