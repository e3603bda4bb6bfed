//! How many requests one registry gets at once: an AIMD controller.
//!
//! A fixed cap is either too small for a registry 50 ms away (the round
//! becomes a queue) or too big for one that is struggling. So the limit
//! starts generous and follows the registry's answers, the way TCP follows a
//! network: while answers come back fast and clean it grows (by one per
//! answer until the first sign of trouble — doubling per round trip — then
//! by one per limit's worth of answers); a 429, a 5xx or a timeout halves it.
//! Only one halving per burst: answers to requests sent before the last
//! halving say nothing new about the halved limit.
//!
//! [`Aimd`] is the pure controller; [`Limiter`] makes tasks wait for it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Where a registry starts when nobody set a ceiling.
pub const START_LIMIT: usize = 32;
/// Highest limit the controller grows to when nobody set a ceiling.
pub const MAX_LIMIT: usize = 64;
/// An answer this much slower than the fastest one seen (plus [`SLOW_SLACK`])
/// means requests are queueing — at the registry, or on our own CPU when the
/// registry is next door: more in flight would only cost memory, so the
/// limit doesn't grow on it. (A new connection costs a round trip more than
/// a kept-alive one: that is still "fast".)
const SLOW_FACTOR: u32 = 3;
const SLOW_SLACK: Duration = Duration::from_millis(5);

/// What one answer says about the registry's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A normal answer (any status but 429 and 5xx), and how long it took.
    Answered(Duration),
    /// 429, 5xx or a timeout.
    Overloaded,
}

/// The controller: pure state, no clock of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aimd {
    limit: usize,
    ceiling: usize,
    /// Growing by one per answer (before the first overload).
    slow_start: bool,
    /// Answers counted towards the next +1 after slow start.
    credit: usize,
    /// Halvings so far: requests carry the epoch they were sent in.
    epoch: u64,
    fastest: Option<Duration>,
}

impl Aimd {
    /// `ceiling`: the user's hard limit, or `None` for the built-in [`MAX_LIMIT`].
    pub fn new(ceiling: Option<usize>) -> Self {
        let ceiling = ceiling.unwrap_or(MAX_LIMIT).max(1);
        Aimd { limit: START_LIMIT.min(ceiling), ceiling, slow_start: true, credit: 0, epoch: 0, fastest: None }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The registry multiplexes requests over one connection (h2): more in
    /// flight costs it no connection of its own, so a limit nothing has
    /// troubled yet starts at the ceiling instead of doubling up to it one
    /// round trip at a time (`curl --parallel` sends its 64 at once too).
    /// Returns whether the limit changed.
    pub fn multiplexed(&mut self) -> bool {
        let before = self.limit;
        if self.slow_start && self.epoch == 0 {
            self.limit = self.limit.max(self.ceiling.min(MAX_LIMIT));
        }
        self.limit != before
    }

    /// Takes the answer to a request sent in `sent_in` (an [`Aimd::epoch`]);
    /// returns whether the limit changed.
    pub fn observe(&mut self, sent_in: u64, signal: Signal) -> bool {
        let before = self.limit;
        match signal {
            Signal::Overloaded => {
                if sent_in == self.epoch {
                    self.limit = (self.limit / 2).max(1);
                    self.slow_start = false;
                    self.credit = 0;
                    self.epoch += 1;
                }
            }
            Signal::Answered(took) => {
                let fastest = *self.fastest.get_or_insert(took);
                if took < fastest {
                    self.fastest = Some(took);
                }
                let slow = took > fastest.saturating_mul(SLOW_FACTOR) + SLOW_SLACK;
                if slow {
                    // Queueing somewhere: hold, and grow only linearly from now on.
                    self.slow_start = false;
                } else if self.slow_start {
                    self.limit += 1;
                } else {
                    self.credit += 1;
                    if self.credit >= self.limit {
                        self.credit = 0;
                        self.limit += 1;
                    }
                }
                self.limit = self.limit.min(self.ceiling);
            }
        }
        self.limit != before
    }
}

/// Makes tasks wait until the registry's current limit lets them send.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<LimiterState>,
    freed: Notify,
}

#[derive(Debug)]
struct LimiterState {
    aimd: Aimd,
    in_flight: usize,
}

/// A slot for one request; give it the answers with [`Permit::observe`].
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a Limiter,
    epoch: u64,
}

impl Limiter {
    pub fn new(ceiling: Option<usize>) -> Self {
        Limiter { state: Mutex::new(LimiterState { aimd: Aimd::new(ceiling), in_flight: 0 }), freed: Notify::new() }
    }

    fn state(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn limit(&self) -> usize {
        self.state().aimd.limit()
    }

    /// See [`Aimd::multiplexed`]; returns the new limit if it changed.
    pub fn multiplexed(&self) -> Option<usize> {
        let mut state = self.state();
        let changed = state.aimd.multiplexed();
        let limit = state.aimd.limit();
        drop(state);
        if changed {
            self.freed.notify_waiters();
        }
        changed.then_some(limit)
    }

    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registered before looking, so a release in between is not missed.
            let freed = self.freed.notified();
            {
                let mut state = self.state();
                if state.in_flight < state.aimd.limit() {
                    state.in_flight += 1;
                    return Permit { limiter: self, epoch: state.aimd.epoch() };
                }
            }
            freed.await;
        }
    }
}

impl Permit<'_> {
    /// Feeds an answer to the controller; returns the new limit if it changed.
    pub fn observe(&self, signal: Signal) -> Option<usize> {
        let mut state = self.limiter.state();
        let changed = state.aimd.observe(self.epoch, signal);
        let limit = state.aimd.limit();
        drop(state);
        if changed {
            // A higher limit lets waiting tasks go before this permit ends.
            self.limiter.freed.notify_waiters();
        }
        changed.then_some(limit)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.state().in_flight -= 1;
        self.limiter.freed.notify_waiters();
    }
}

/// The cap on requests in flight to all registries together; its limit is
/// asked for at each acquire, so it can follow the number of registries in use.
#[derive(Debug, Default)]
pub struct TotalLimit {
    in_flight: Mutex<usize>,
    freed: Notify,
}

/// A slot under [`TotalLimit`], given back on drop.
#[derive(Debug)]
pub struct TotalPermit<'a>(&'a TotalLimit);

impl TotalLimit {
    fn in_flight(&self) -> MutexGuard<'_, usize> {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn acquire(&self, limit: impl Fn() -> usize) -> TotalPermit<'_> {
        loop {
            let freed = self.freed.notified();
            {
                let mut n = self.in_flight();
                if *n < limit().max(1) {
                    *n += 1;
                    return TotalPermit(self);
                }
            }
            freed.await;
        }
    }
}

impl Drop for TotalPermit<'_> {
    fn drop(&mut self) {
        *self.0.in_flight() -= 1;
        self.0.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Each step: the epoch the answer's request was sent in (`None`: the
    /// current one), the signal, and the limit after it.
    fn run(ceiling: Option<usize>, steps: &[(Option<u64>, Signal, usize)]) -> Aimd {
        let mut aimd = Aimd::new(ceiling);
        for (i, (epoch, signal, want)) in steps.iter().enumerate() {
            let epoch = epoch.unwrap_or(aimd.epoch());
            aimd.observe(epoch, *signal);
            assert_eq!(aimd.limit(), *want, "step {i}: {signal:?} sent in epoch {epoch}");
        }
        aimd
    }

    #[test]
    fn starts_generous_and_grows_per_answer_until_trouble() {
        use Signal::*;
        run(None, &[(None, Answered(MS(50)), 33), (None, Answered(MS(50)), 34), (None, Answered(MS(60)), 35)]);
        // The built-in maximum.
        let mut aimd = Aimd::new(None);
        for _ in 0..100 {
            aimd.observe(0, Answered(MS(50)));
        }
        assert_eq!(aimd.limit(), MAX_LIMIT);
    }

    #[test]
    fn overload_halves_once_per_burst() {
        use Signal::*;
        run(
            None,
            &[
                (None, Overloaded, 16),
                // Answers to the burst sent at 32: already accounted for.
                (Some(0), Overloaded, 16),
                (Some(0), Overloaded, 16),
                (None, Overloaded, 8),
                (None, Overloaded, 4),
                (None, Overloaded, 2),
                (None, Overloaded, 1),
                (None, Overloaded, 1),
            ],
        );
    }

    #[test]
    fn after_trouble_growth_is_one_per_window() {
        use Signal::*;
        let mut steps = vec![(None, Overloaded, 16)];
        // 16 answers at 16 make 17; 17 more make 18.
        steps.extend((0..15).map(|_| (None, Answered(MS(50)), 16)));
        steps.push((None, Answered(MS(50)), 17));
        steps.extend((0..16).map(|_| (None, Answered(MS(50)), 17)));
        steps.push((None, Answered(MS(50)), 18));
        run(None, &steps);
    }

    #[test]
    fn slow_answers_hold_the_limit() {
        use Signal::*;
        run(
            None,
            &[
                (None, Answered(MS(50)), 33),
                // 3 × 50 ms + 5 ms is still fast; more is queueing.
                (None, Answered(MS(155)), 34),
                (None, Answered(MS(156)), 34),
                // Out of slow start: fast answers now add one per window.
                (None, Answered(MS(50)), 34),
            ],
        );
    }

    #[test]
    fn the_ceiling_is_hard() {
        use Signal::*;
        run(
            Some(2),
            &[
                (None, Answered(MS(1)), 2),
                (None, Overloaded, 1),
                (None, Answered(MS(1)), 2),
                (None, Answered(MS(1)), 2),
            ],
        );
        run(Some(40), &(0..10).map(|i| (None, Answered(MS(1)), (33 + i).min(40))).collect::<Vec<_>>());
        run(Some(0), &[(None, Answered(MS(1)), 1)]);
        assert_eq!(Aimd::new(Some(500)).limit(), START_LIMIT);
    }

    #[test]
    fn a_multiplexing_registry_starts_at_the_ceiling_unless_troubled() {
        use Signal::*;
        let multiplexed = |ceiling: Option<usize>, before: &[Signal]| {
            let mut aimd = Aimd::new(ceiling);
            for signal in before {
                aimd.observe(aimd.epoch(), *signal);
            }
            aimd.multiplexed();
            aimd.limit()
        };
        assert_eq!(multiplexed(None, &[]), MAX_LIMIT);
        assert_eq!(multiplexed(Some(40), &[]), 40);
        assert_eq!(multiplexed(Some(500), &[]), MAX_LIMIT, "a user's ceiling is a ceiling, not a start");
        assert_eq!(multiplexed(Some(8), &[]), 8);
        assert_eq!(multiplexed(None, &[Answered(MS(50))]), MAX_LIMIT);
        assert_eq!(multiplexed(None, &[Overloaded]), START_LIMIT / 2, "trouble seen: AIMD as before");
        assert_eq!(
            multiplexed(None, &[Answered(MS(50)), Answered(MS(500))]),
            START_LIMIT + 1,
            "queueing seen: no jump"
        );
    }

    #[tokio::test]
    async fn limiter_holds_tasks_at_the_limit() {
        let limiter = Limiter::new(Some(2));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let third = limiter.acquire();
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        // Overload halves to 1: freeing one slot is not enough.
        assert_eq!(a.observe(Signal::Overloaded), Some(1));
        drop(a);
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(_b);
        let _c = third.await;
        assert_eq!(limiter.limit(), 1);
    }
}
