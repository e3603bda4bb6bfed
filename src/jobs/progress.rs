//! Pull progress: the engine reports every layer on its own line, the UI shows
//! one bar. Folding the stream here, purely, keeps the rules (sums over the
//! layers known so far, a percentage that never goes backwards, the phase)
//! testable without a registry.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::docker::model::PullEvent;

/// The contract's `PullProgress` (`GET /api/images/{id}/progress`, websocket `progress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// The last layer that reported, 12 characters; empty before any.
    pub layer: String,
    /// Bytes downloaded, summed over the layers known so far.
    pub current: u64,
    /// Bytes to download, summed over the layers known so far (grows as layers are discovered).
    pub total: u64,
    /// 0–100; never lower than a value sent before for the same job.
    pub percent: u8,
    /// `connecting`, `Downloading`, `Extracting`, `recreating`, `verifying`, `done`, or `error: <reason>`.
    pub status: String,
}

impl PullProgress {
    /// Whether nothing follows: the job finished or failed. Such a state is
    /// never throttled away, so a client always sees how a job ended.
    pub fn is_final(&self) -> bool {
        self.status == Stage::Done.as_str() || self.status.starts_with(ERROR_PREFIX)
    }
}

const ERROR_PREFIX: &str = "error: ";

/// The phases a job goes through, as the `status` of its progress. An error is
/// not a stage: it carries a reason (see [`ProgressAggregator::error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Connecting,
    Downloading,
    Extracting,
    Recreating,
    Verifying,
    Done,
}

impl Stage {
    /// The contract's spelling. The pull phases keep the engine's capitals
    /// (`Downloading`), the job's own phases are lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connecting => "connecting",
            Stage::Downloading => "Downloading",
            Stage::Extracting => "Extracting",
            Stage::Recreating => "recreating",
            Stage::Verifying => "verifying",
            Stage::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Layer {
    id: String,
    current: u64,
    total: u64,
    /// Downloaded (or already present): its bytes all count as current.
    downloaded: bool,
}

impl Layer {
    fn current(&self) -> u64 {
        if self.downloaded {
            self.total
        } else {
            self.current.min(self.total)
        }
    }
}

/// Folds a pull's events, in order, into [`PullProgress`] snapshots.
#[derive(Debug, Clone)]
pub struct ProgressAggregator {
    /// In order of discovery; a pull has a handful of layers, so a scan is cheap.
    layers: Vec<Layer>,
    last_layer: String,
    stage: Stage,
    /// The engine said the pull is over (`Status: ...`).
    finished: bool,
    /// The highest percentage reported so far: layers discovered late grow
    /// the total, and a bar must not jump back because of it.
    percent: u8,
}

impl Default for ProgressAggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressAggregator {
    pub fn new() -> Self {
        Self { layers: Vec::new(), last_layer: String::new(), stage: Stage::Connecting, finished: false, percent: 0 }
    }

    /// Takes one line of the pull stream. An `Err` is the engine's reason the
    /// pull failed; the aggregator keeps its last state for [`Self::error`].
    pub fn apply(&mut self, ev: &PullEvent) -> Result<(), String> {
        if let Some(error) = &ev.error {
            let reason = one_line(error);
            return Err(if reason.is_empty() { "pull failed".to_string() } else { reason });
        }
        let status = ev.status.trim();
        if is_whole_pull_status(status) {
            // `Pulling from <repo>` (id = tag), `Digest: ...`, `Status: ...`:
            // about the image, not a layer, whatever their id says.
            if status.starts_with("Status:") {
                self.finished = true;
                self.update_percent();
            }
            return Ok(());
        }
        let Some(id) = ev.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) else {
            return Ok(());
        };
        self.last_layer = id.chars().take(12).collect();
        if self.stage < Stage::Downloading {
            self.stage = Stage::Downloading;
        }
        let index = match self.layers.iter().position(|l| l.id == id) {
            Some(i) => i,
            None => {
                self.layers.push(Layer { id: id.to_string(), ..Layer::default() });
                self.layers.len() - 1
            }
        };
        let layer = &mut self.layers[index];
        let total = ev.total.filter(|&t| t > 0);
        if status.starts_with("Downloading") {
            if let Some(total) = total {
                layer.total = total;
            }
            if let Some(current) = ev.current {
                layer.current = current;
            }
        } else if status.starts_with("Extracting") {
            // Extraction counts the same compressed bytes: it tells the size
            // of a layer whose download was too quick to report one.
            if layer.total == 0 {
                layer.total = total.unwrap_or(0);
            }
            layer.downloaded = true;
            self.stage = Stage::Extracting;
        } else if matches!(status, "Verifying Checksum" | "Download complete" | "Pull complete" | "Already exists") {
            layer.downloaded = true;
        }
        // `Pulling fs layer`, `Waiting`, `Retrying in ...`: the layer is known, nothing more.
        self.update_percent();
        Ok(())
    }

    fn update_percent(&mut self) {
        let (current, total) = self.sums();
        let raw = if self.finished {
            100
        } else if total == 0 {
            0
        } else {
            // 100 only once the engine says the pull is over: until then a
            // layer may still be announced, or is still being extracted.
            (u128::from(current) * 100 / u128::from(total)).min(99) as u8
        };
        self.percent = self.percent.max(raw);
    }

    fn sums(&self) -> (u64, u64) {
        self.layers.iter().fold((0u64, 0u64), |(c, t), l| (c.saturating_add(l.current()), t.saturating_add(l.total)))
    }

    /// The pull as it stands.
    pub fn snapshot(&self) -> PullProgress {
        self.snapshot_with(self.stage.as_str().to_string())
    }

    fn snapshot_with(&self, status: String) -> PullProgress {
        let (current, total) = self.sums();
        PullProgress { layer: self.last_layer.clone(), current, total, percent: self.percent, status }
    }

    /// The pull's figures under a later stage of the job (`recreating`,
    /// `verifying`, `done`); `done` is 100 %.
    pub fn with_status(&self, stage: Stage) -> PullProgress {
        let mut p = self.snapshot_with(stage.as_str().to_string());
        if stage == Stage::Done {
            p.percent = 100;
        }
        p
    }

    /// The job failed and changed nothing: `error: <reason>`.
    pub fn error(&self, reason: &str) -> PullProgress {
        self.snapshot_with(format!("{ERROR_PREFIX}{}", one_line(reason)))
    }

    /// The job failed after touching the container and put it back: `error: rolled back: <reason>`.
    pub fn rolled_back(&self, reason: &str) -> PullProgress {
        self.snapshot_with(format!("{ERROR_PREFIX}rolled back: {}", one_line(reason)))
    }
}

/// Lines about the whole pull rather than one layer. The engine sends
/// `Pulling from` with the tag as id, and some engines send the others with it too.
fn is_whole_pull_status(status: &str) -> bool {
    ["Pulling from", "Digest:", "Status:", "Pulling repository", "Trying to pull"]
        .iter()
        .any(|prefix| status.starts_with(prefix))
}

/// A status is one line of JSON for clients that print it as such.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decides which progress updates are sent to clients: the engine reports
/// several lines per layer per second, a UI needs at most ten a second. A
/// new phase and a final state always go out, so nothing a client must see is
/// dropped; a dropped update is covered by the next one, which carries the
/// whole state. `now` is a parameter so that time is the caller's (and the
/// tests') to give.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<(Instant, PullProgress)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// Ten updates a second per container.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

    pub fn new() -> Self {
        Self::with_interval(Self::DEFAULT_INTERVAL)
    }

    pub fn with_interval(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    /// Whether `progress` should be sent at `now`; if so, it is remembered as
    /// sent. Unchanged progress is not sent again (except a final state). A
    /// caller holding an update that was held back can offer it again later.
    pub fn should_emit(&mut self, now: Instant, progress: &PullProgress) -> bool {
        let emit = match &self.last {
            None => true,
            Some((at, sent)) => {
                progress.is_final()
                    || sent.status != progress.status
                    || (sent != progress && now.saturating_duration_since(*at) >= self.interval)
            }
        };
        if emit {
            self.last = Some((now, progress.clone()));
        }
        emit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, status: &str, current: Option<u64>, total: Option<u64>) -> PullEvent {
        PullEvent { id: id.map(str::to_string), status: status.to_string(), current, total, error: None }
    }

    fn layer(id: &str, status: &str) -> PullEvent {
        ev(Some(id), status, None, None)
    }

    fn dl(id: &str, current: u64, total: u64) -> PullEvent {
        ev(Some(id), "Downloading", Some(current), Some(total))
    }

    fn ex(id: &str, current: u64, total: u64) -> PullEvent {
        ev(Some(id), "Extracting", Some(current), Some(total))
    }

    fn failed(message: &str) -> PullEvent {
        PullEvent { error: Some(message.to_string()), ..PullEvent::default() }
    }

    fn p(layer: &str, current: u64, total: u64, percent: u8, status: &str) -> PullProgress {
        PullProgress { layer: layer.into(), current, total, percent, status: status.into() }
    }

    const A: &str = "a3ed95caeb02";
    const B: &str = "b35322cfa614";
    const C: &str = "7734477f3820";
    const DIGEST: &str = "Digest: sha256:aff373646ed500ec3820d33a5c3e6522379e25a28282efb23a954159d70c4947";

    /// Each case: the events and, after each one, the snapshot expected.
    #[test]
    fn folds_pull_streams() {
        let cases: Vec<(&str, Vec<(PullEvent, PullProgress)>)> = vec![
            (
                "two layers, one already present, as the lab engine sends them",
                vec![
                    (ev(Some("1"), "Pulling from shipshape/app", None, None), p("", 0, 0, 0, "connecting")),
                    (layer(C, "Already exists"), p(C, 0, 0, 0, "Downloading")),
                    (layer(B, "Pulling fs layer"), p(B, 0, 0, 0, "Downloading")),
                    (dl(B, 116, 116), p(B, 116, 116, 99, "Downloading")),
                    (layer(B, "Verifying Checksum"), p(B, 116, 116, 99, "Downloading")),
                    (layer(B, "Download complete"), p(B, 116, 116, 99, "Downloading")),
                    (ex(B, 116, 116), p(B, 116, 116, 99, "Extracting")),
                    (layer(B, "Pull complete"), p(B, 116, 116, 99, "Extracting")),
                    (ev(None, DIGEST, None, None), p(B, 116, 116, 99, "Extracting")),
                    (
                        ev(None, "Status: Downloaded newer image for 127.0.0.1:5000/app:1.2", None, None),
                        p(B, 116, 116, 100, "Extracting"),
                    ),
                ],
            ),
            (
                "three layers downloading in parallel, then extracting one by one",
                vec![
                    (layer(A, "Pulling fs layer"), p(A, 0, 0, 0, "Downloading")),
                    (layer(B, "Pulling fs layer"), p(B, 0, 0, 0, "Downloading")),
                    (layer(C, "Waiting"), p(C, 0, 0, 0, "Downloading")),
                    (dl(A, 100, 1000), p(A, 100, 1000, 10, "Downloading")),
                    (dl(B, 500, 1000), p(B, 600, 2000, 30, "Downloading")),
                    (dl(A, 1000, 1000), p(A, 1500, 2000, 75, "Downloading")),
                    (layer(A, "Download complete"), p(A, 1500, 2000, 75, "Downloading")),
                    // C appears with its size: the total grows, percent holds
                    (dl(C, 0, 6000), p(C, 1500, 8000, 75, "Downloading")),
                    (ex(A, 500, 1000), p(A, 1500, 8000, 75, "Extracting")),
                    (dl(B, 1000, 1000), p(B, 2000, 8000, 75, "Extracting")),
                    (layer(B, "Download complete"), p(B, 2000, 8000, 75, "Extracting")),
                    (dl(C, 6000, 6000), p(C, 8000, 8000, 99, "Extracting")),
                    (layer(A, "Pull complete"), p(A, 8000, 8000, 99, "Extracting")),
                    (layer(C, "Download complete"), p(C, 8000, 8000, 99, "Extracting")),
                    (ex(B, 1000, 1000), p(B, 8000, 8000, 99, "Extracting")),
                    (layer(B, "Pull complete"), p(B, 8000, 8000, 99, "Extracting")),
                    (layer(C, "Pull complete"), p(C, 8000, 8000, 99, "Extracting")),
                    (ev(Some("1.2"), DIGEST, None, None), p(C, 8000, 8000, 99, "Extracting")),
                    (
                        ev(Some("1.2"), "Status: Downloaded newer image for 127.0.0.1:5000/app:1.2", None, None),
                        p(C, 8000, 8000, 100, "Extracting"),
                    ),
                ],
            ),
            (
                "image up to date: whole-pull lines only, with the tag as id",
                vec![
                    (ev(Some("1.2"), "Pulling from app", None, None), p("", 0, 0, 0, "connecting")),
                    (ev(Some("1.2"), DIGEST, None, None), p("", 0, 0, 0, "connecting")),
                    (
                        ev(Some("1.2"), "Status: Image is up to date for 127.0.0.1:5000/app:1.2", None, None),
                        p("", 0, 0, 100, "connecting"),
                    ),
                ],
            ),
            (
                "layer ids longer than 12 characters are cut; a download too quick to report its size",
                vec![
                    (layer("sha256:0123456789abcdef", "Pulling fs layer"), p("sha256:01234", 0, 0, 0, "Downloading")),
                    (layer(A, "Pulling fs layer"), p(A, 0, 0, 0, "Downloading")),
                    (dl(A, 10, 40), p(A, 10, 40, 25, "Downloading")),
                    (
                        layer("sha256:0123456789abcdef", "Download complete"),
                        p("sha256:01234", 10, 40, 25, "Downloading"),
                    ),
                    (ex("sha256:0123456789abcdef", 30, 60), p("sha256:01234", 70, 100, 70, "Extracting")),
                ],
            ),
            (
                "a retry resets a layer's bytes; the bar does not go back",
                vec![
                    (dl(A, 800, 1000), p(A, 800, 1000, 80, "Downloading")),
                    (layer(A, "Retrying in 5 seconds"), p(A, 800, 1000, 80, "Downloading")),
                    (dl(A, 100, 1000), p(A, 100, 1000, 80, "Downloading")),
                    (dl(A, 900, 1000), p(A, 900, 1000, 90, "Downloading")),
                ],
            ),
            ("a current beyond the total is capped", vec![(dl(A, 2000, 1000), p(A, 1000, 1000, 99, "Downloading"))]),
        ];
        for (name, steps) in cases {
            let mut agg = ProgressAggregator::new();
            assert_eq!(agg.snapshot(), p("", 0, 0, 0, "connecting"), "{name}: before any event");
            for (i, (event, expected)) in steps.into_iter().enumerate() {
                assert_eq!(agg.apply(&event), Ok(()), "{name}: step {i}");
                assert_eq!(agg.snapshot(), expected, "{name}: after step {i} ({event:?})");
            }
        }
    }

    #[test]
    fn an_error_line_fails_the_pull_and_keeps_the_last_state() {
        let cases = [
            ("manifest for app:9 not found: manifest unknown", "manifest for app:9 not found: manifest unknown"),
            ("unauthorized:\n authentication required", "unauthorized: authentication required"),
            ("", "pull failed"),
        ];
        for (message, reason) in cases {
            let mut agg = ProgressAggregator::new();
            agg.apply(&dl(A, 300, 1000)).unwrap();
            assert_eq!(agg.apply(&failed(message)), Err(reason.to_string()));
            assert_eq!(agg.snapshot(), p(A, 300, 1000, 30, "Downloading"));
            assert_eq!(agg.error(reason), p(A, 300, 1000, 30, &format!("error: {reason}")));
        }
    }

    #[test]
    fn job_stages_keep_the_pull_figures() {
        let mut agg = ProgressAggregator::new();
        for e in [dl(A, 500, 1000), dl(B, 0, 1000)] {
            agg.apply(&e).unwrap();
        }
        // 50 % after the first layer's half; the second layer's size does not pull it back
        let cases = [
            (agg.with_status(Stage::Recreating), p(B, 500, 2000, 50, "recreating"), false),
            (agg.with_status(Stage::Verifying), p(B, 500, 2000, 50, "verifying"), false),
            (agg.with_status(Stage::Done), p(B, 500, 2000, 100, "done"), true),
            (agg.error("no space left"), p(B, 500, 2000, 50, "error: no space left"), true),
            (
                agg.rolled_back("exited with code 1\nafter start"),
                p(B, 500, 2000, 50, "error: rolled back: exited with code 1 after start"),
                true,
            ),
        ];
        for (got, expected, is_final) in cases {
            assert_eq!(got, expected);
            assert_eq!(got.is_final(), is_final, "{}", got.status);
        }
        // the aggregator itself is still in its pull phase
        assert_eq!(agg.snapshot().status, "Downloading");
    }

    #[test]
    fn serialises_as_the_contract_says() {
        let json = serde_json::to_value(p(A, 1048576, 8388608, 12, "Downloading")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"layer": A, "current": 1048576, "total": 8388608, "percent": 12, "status": "Downloading"})
        );
        let back: PullProgress = serde_json::from_value(json).unwrap();
        assert_eq!(back, p(A, 1048576, 8388608, 12, "Downloading"));
    }

    #[test]
    fn throttle_sends_at_most_ten_a_second_but_every_phase_and_the_end() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // (time, progress, sent?)
        let steps = [
            (ms(0), p("", 0, 0, 0, "connecting"), true),
            (ms(5), p(A, 10, 100, 10, "Downloading"), true), // new phase
            (ms(20), p(A, 20, 100, 20, "Downloading"), false),
            (ms(99), p(A, 30, 100, 30, "Downloading"), false),
            (ms(105), p(A, 40, 100, 40, "Downloading"), true), // 100 ms after the last one sent
            (ms(300), p(A, 40, 100, 40, "Downloading"), false), // nothing changed
            (ms(301), p(A, 50, 100, 50, "Downloading"), true),
            (ms(302), p(A, 100, 100, 100, "Extracting"), true), // new phase
            (ms(303), p(A, 100, 100, 100, "recreating"), true),
            (ms(304), p(A, 100, 100, 100, "verifying"), true),
            (ms(305), p(A, 100, 100, 100, "done"), true), // final
            (ms(306), p(A, 100, 100, 100, "done"), true), // final, even repeated
        ];
        let mut throttle = Throttle::new();
        for (i, (now, progress, sent)) in steps.into_iter().enumerate() {
            assert_eq!(throttle.should_emit(now, &progress), sent, "step {i}: {progress:?}");
        }
    }

    #[test]
    fn throttle_never_holds_back_an_error() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new();
        assert!(throttle.should_emit(t0, &p(A, 10, 100, 10, "Downloading")));
        assert!(!throttle.should_emit(t0 + Duration::from_millis(1), &p(A, 11, 100, 11, "Downloading")));
        assert!(throttle.should_emit(t0 + Duration::from_millis(2), &p(A, 11, 100, 11, "error: boom")));
        // a held-back update offered again once the interval has passed goes out
        let mut throttle = Throttle::with_interval(Duration::from_secs(1));
        assert!(throttle.should_emit(t0, &p(A, 10, 100, 10, "Downloading")));
        assert!(!throttle.should_emit(t0 + Duration::from_millis(500), &p(A, 60, 100, 60, "Downloading")));
        assert!(throttle.should_emit(t0 + Duration::from_millis(1000), &p(A, 60, 100, 60, "Downloading")));
        // an instant earlier than the last one sent (clock given out of order) holds back, never panics
        assert!(!throttle.should_emit(t0, &p(A, 70, 100, 70, "Downloading")));
    }
}
