//! How many calls may be in flight: a limit that halves on rate limiting (4008) and grows back,
//! and that starts at one call after an account-level stop until a call succeeds.
//!
//! Built on a tokio semaphore: lowering the limit leaves a "debt" of permits that are forgotten
//! instead of returned as calls finish; raising it pays the debt first, then adds permits.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Successes needed before the limit grows by one after a slowdown.
const SUCCESSES_PER_STEP: u32 = 8;

#[derive(Debug)]
struct Limits {
    /// The limit calls are admitted under now.
    current: usize,
    /// Permits to forget as calls finish, because the limit was lowered below those in flight.
    debt: usize,
    successes: u32,
    /// One call at a time until one succeeds (see [`Pace::probing`]).
    probing: bool,
}

/// An adaptive cap on calls in flight, between 1 and the configured `api.concurrency`.
#[derive(Debug, Clone)]
pub struct Pace {
    semaphore: Arc<Semaphore>,
    limits: Arc<Mutex<Limits>>,
    ceiling: usize,
}

/// A slot for one call in flight; dropping it ends the call.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limits: Arc<Mutex<Limits>>,
}

impl Drop for Slot {
    /// Gives the permit back, unless the limit was lowered meanwhile: then it is forgotten.
    fn drop(&mut self) {
        let mut limits = lock(&self.limits);
        if limits.debt > 0
            && let Some(permit) = self.permit.take()
        {
            limits.debt -= 1;
            permit.forget();
        }
    }
}

fn lock(limits: &Mutex<Limits>) -> std::sync::MutexGuard<'_, Limits> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    limits.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pace {
    /// A pace that starts at, and never exceeds, `ceiling` calls in flight.
    pub fn new(ceiling: usize) -> Pace {
        let ceiling = ceiling.max(1);
        Pace {
            semaphore: Arc::new(Semaphore::new(ceiling)),
            limits: Arc::new(Mutex::new(Limits {
                current: ceiling,
                debt: 0,
                successes: 0,
                probing: false,
            })),
            ceiling,
        }
    }

    /// A pace for the first calls after an account-level stop: one call in flight until one
    /// succeeds, then `ceiling` at once. If the account is still blocked, one call finds out.
    pub fn probing(ceiling: usize) -> Pace {
        let ceiling = ceiling.max(1);
        Pace {
            semaphore: Arc::new(Semaphore::new(1)),
            limits: Arc::new(Mutex::new(Limits {
                current: 1,
                debt: 0,
                successes: 0,
                probing: true,
            })),
            ceiling,
        }
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        lock(&self.limits)
    }

    /// Waits for a slot under the current limit.
    pub async fn acquire(&self) -> Slot {
        let permit = Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the pace's semaphore is never closed"));
        self.slot(permit)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            limits: Arc::clone(&self.limits),
        }
    }

    /// A call was rate limited: halve the limit (at least 1).
    pub fn slow_down(&self) -> usize {
        let mut limits = self.limits();
        let lowered = (limits.current / 2).max(1);
        let removed = limits.current - lowered;
        limits.current = lowered;
        limits.successes = 0;
        // Rate limited while probing: the account answers; grow back step by step from here.
        limits.probing = false;
        // Take free permits now; the rest are forgotten as the calls holding them finish.
        let mut owed = removed;
        while owed > 0 {
            match self.semaphore.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    owed -= 1;
                }
                Err(_) => break,
            }
        }
        limits.debt += owed;
        lowered
    }

    /// A call succeeded: after enough successes, grow the limit by one towards the ceiling (at
    /// once to the ceiling after probing).
    pub fn succeeded(&self) {
        let mut limits = self.limits();
        if limits.probing {
            limits.probing = false;
            let added = self.ceiling - limits.current;
            limits.current = self.ceiling;
            self.semaphore.add_permits(added);
            return;
        }
        if limits.current >= self.ceiling {
            return;
        }
        limits.successes += 1;
        if limits.successes < SUCCESSES_PER_STEP {
            return;
        }
        limits.successes = 0;
        limits.current += 1;
        if limits.debt > 0 {
            limits.debt -= 1;
        } else {
            self.semaphore.add_permits(1);
        }
    }

    /// The limit in force now.
    pub fn current(&self) -> usize {
        self.limits().current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every slot available right now.
    fn take_free(pace: &Pace) -> Vec<Slot> {
        std::iter::from_fn(|| {
            Arc::clone(&pace.semaphore)
                .try_acquire_owned()
                .ok()
                .map(|permit| pace.slot(permit))
        })
        .collect()
    }

    #[tokio::test]
    async fn the_limit_caps_slots_in_flight() {
        let pace = Pace::new(4);
        let slots = take_free(&pace);
        assert_eq!(slots.len(), 4);
    }

    #[tokio::test]
    async fn slowing_down_halves_the_limit_even_with_calls_in_flight() {
        let pace = Pace::new(8);
        let in_flight = take_free(&pace);
        assert_eq!(pace.slow_down(), 4);
        // All 8 are busy: finishing them gives back only 4.
        drop(in_flight);
        assert_eq!(take_free(&pace).len(), 4);
    }

    #[tokio::test]
    async fn probing_allows_one_call_until_one_succeeds_then_all() {
        let pace = Pace::probing(4);
        let probe = take_free(&pace);
        assert_eq!((probe.len(), pace.current()), (1, 1));
        drop(probe);
        assert_eq!(
            take_free(&pace).len(),
            1,
            "a failed probe frees one slot only"
        );
        pace.succeeded();
        assert_eq!(pace.current(), 4);
        assert_eq!(take_free(&pace).len(), 4);
    }

    #[tokio::test]
    async fn a_probe_rate_limited_grows_back_step_by_step() {
        let pace = Pace::probing(4);
        assert_eq!(pace.slow_down(), 1);
        pace.succeeded();
        assert_eq!(pace.current(), 1, "one success is not a step");
        for _ in 1..SUCCESSES_PER_STEP {
            pace.succeeded();
        }
        assert_eq!(pace.current(), 2);
        assert_eq!(take_free(&pace).len(), 2);
    }

    #[tokio::test]
    async fn slowing_down_with_free_slots_takes_them_at_once() {
        let pace = Pace::new(8);
        assert_eq!(pace.slow_down(), 4);
        assert_eq!(pace.slow_down(), 2);
        assert_eq!(pace.slow_down(), 1);
        assert_eq!(pace.slow_down(), 1, "never below one");
        assert_eq!(take_free(&pace).len(), 1);
    }

    #[tokio::test]
    async fn successes_grow_the_limit_back_to_the_ceiling_only() {
        let pace = Pace::new(4);
        pace.slow_down();
        assert_eq!(pace.current(), 2);
        for _ in 0..SUCCESSES_PER_STEP * 10 {
            pace.succeeded();
        }
        assert_eq!(pace.current(), 4);
        assert_eq!(take_free(&pace).len(), 4);
    }

    #[tokio::test]
    async fn growing_back_while_busy_pays_the_debt_first() {
        let pace = Pace::new(4);
        let in_flight = take_free(&pace);
        pace.slow_down();
        for _ in 0..SUCCESSES_PER_STEP {
            pace.succeeded();
        }
        assert_eq!(pace.current(), 3);
        drop(in_flight);
        assert_eq!(take_free(&pace).len(), 3);
    }
}
