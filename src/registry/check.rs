//! One round of registry checks: the shared engine of the poller actor and
//! the `shipshape check` command.

use std::time::SystemTime;

use futures::stream::{self, Stream, StreamExt};

use super::client::{RegistryClient, RegistryError};
use super::messages::{RemoteState, RemoteStates};
use super::reference::ImageRef;

/// How many images are checked at once in total; the client bounds each registry further.
const PARALLEL_CHECKS: usize = 64;

/// Registries that must not be contacted. Docker Hub's aliases all count as `docker.io`.
#[derive(Debug, Clone, Default)]
pub struct IgnoredRegistries(Vec<String>);

impl IgnoredRegistries {
    pub fn new(entries: &[String]) -> Self {
        Self(entries.iter().map(|e| normalize_registry(e)).filter(|e| !e.is_empty()).collect())
    }

    pub fn contains(&self, image: &ImageRef) -> bool {
        self.0.iter().any(|r| *r == normalize_registry(&image.registry))
    }
}

fn normalize_registry(name: &str) -> String {
    let name = name.trim().trim_end_matches('/').to_ascii_lowercase();
    let name = name.trim_start_matches("https://").trim_start_matches("http://");
    match name {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        other => other.to_string(),
    }
}

/// The outcome of asking a registry about one image.
#[derive(Debug)]
pub struct CheckOutcome {
    pub image: ImageRef,
    pub result: Result<String, RegistryError>,
}

/// Checks every image once, concurrently, yielding each outcome as soon as
/// it is known (one slow registry does not hold back the others). A
/// digest-pinned reference needs no request: the pin is what the container is
/// meant to run.
pub fn check_each(
    client: RegistryClient,
    images: Vec<ImageRef>,
    ignored: IgnoredRegistries,
) -> impl Stream<Item = CheckOutcome> {
    stream::iter(images)
        .map(move |image| {
            let (client, ignored) = (client.clone(), ignored.clone());
            async move {
                let result = match &image.digest {
                    Some(pin) => Ok(pin.clone()),
                    None if ignored.contains(&image) => {
                        Err(RegistryError::Ignored { registry: image.registry.clone() })
                    }
                    None => client.remote_digest(&image).await,
                };
                CheckOutcome { image, result }
            }
        })
        .buffer_unordered(PARALLEL_CHECKS)
}

/// Folds outcomes into the states shown by the API. Transient failures
/// (rate limits, 5xx, timeouts, an unreachable registry) keep the last known
/// digest and its age and add the error; definite ones (401, 404) drop it.
pub fn merge(previous: &RemoteStates, outcomes: Vec<CheckOutcome>, now: SystemTime) -> RemoteStates {
    outcomes
        .into_iter()
        .map(|CheckOutcome { image, result }| {
            let key = image.display_name();
            let state = match result {
                Ok(digest) => RemoteState { digest: Some(digest), checked_at: Some(rfc3339(now)), error: None },
                Err(e) => {
                    let kept = previous.get(&key).filter(|_| e.keeps_last_status());
                    RemoteState {
                        digest: kept.and_then(|s| s.digest.clone()),
                        checked_at: kept.and_then(|s| s.checked_at.clone()),
                        error: Some(e.to_string()),
                    }
                }
            };
            (key, state)
        })
        .collect()
}

/// RFC 3339 UTC time with second precision, without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ignored_registries_match_aliases() {
        let ignored = IgnoredRegistries::new(&["Docker.io".into(), "https://127.0.0.1:5000/".into(), " ".into()]);
        let cases = [
            ("nginx", true),
            ("index.docker.io/library/nginx", true),
            ("127.0.0.1:5000/x", true),
            ("127.0.0.1:5001/x", false),
            ("ghcr.io/o/r", false),
        ];
        for (reference, expected) in cases {
            let image = crate::registry::reference::parse(reference).expect("valid");
            assert_eq!(ignored.contains(&image), expected, "{reference}");
        }
    }

    #[test]
    fn rfc3339_table() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)), expected);
        }
    }
}
