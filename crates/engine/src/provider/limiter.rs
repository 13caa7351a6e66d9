//! Rate limits and backoff: token buckets for requests and tokens per minute, and exponential
//! backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Bucket {
        let capacity = per_minute.max(1) as f64;
        Bucket {
            capacity,
            tokens: capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Time until `n` can be taken (a request larger than the bucket waits for a full bucket).
    fn wait_for(&self, n: f64) -> Duration {
        let need = n.min(self.capacity) - self.tokens;
        if need <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(need / self.per_sec)
        }
    }
}

/// Requests-per-minute and tokens-per-minute limits shared by a provider's calls.
pub struct RateLimiter {
    state: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

impl RateLimiter {
    pub fn new(requests_per_minute: Option<u32>, tokens_per_minute: Option<u32>) -> RateLimiter {
        RateLimiter {
            state: Mutex::new((
                requests_per_minute.map(Bucket::new),
                tokens_per_minute.map(Bucket::new),
            )),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.0.is_none() && s.1.is_none())
            .unwrap_or(true)
    }

    /// Wait until one request of about `tokens` tokens may be sent, then take it.
    pub async fn acquire(&self, tokens: u64) {
        loop {
            let wait = {
                let Ok(mut s) = self.state.lock() else { return };
                let now = Instant::now();
                let (req, tok) = &mut *s;
                let mut wait = Duration::ZERO;
                if let Some(b) = req.as_mut() {
                    b.refill(now);
                    wait = wait.max(b.wait_for(1.0));
                }
                if let Some(b) = tok.as_mut() {
                    b.refill(now);
                    wait = wait.max(b.wait_for(tokens as f64));
                }
                if wait.is_zero() {
                    if let Some(b) = req.as_mut() {
                        b.tokens -= 1.0;
                    }
                    if let Some(b) = tok.as_mut() {
                        b.tokens -= (tokens as f64).min(b.capacity);
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The delay before retry number `attempt` (1-based): a server's `Retry-After` when given
/// (never sooner), else a uniform random delay in [0, min(max, base·2^(attempt-1))].
pub fn backoff(
    attempt: u32,
    retry_after: Option<Duration>,
    base: Duration,
    max: Duration,
) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(max.max(ra));
    }
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(max);
    Duration::from_secs_f64(fastrand::f64() * cap.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..10 {
            let d = backoff(attempt, None, base, max);
            assert!(d <= max && d <= base * (1 << (attempt - 1)));
        }
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3)), base, max),
            Duration::from_secs(3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_are_spaced() {
        let lim = RateLimiter::new(Some(60), None); // 1 per second after a burst of 60
        let start = tokio::time::Instant::now();
        for _ in 0..62 {
            lim.acquire(1).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_are_spent_and_refilled() {
        // 6,000 tokens a minute: a full bucket, then 100 tokens a second.
        let lim = RateLimiter::new(None, Some(6_000));
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            lim.acquire(2_000).await; // the whole bucket, at once
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        // 1,000 more tokens need 10 s of refill.
        lim.acquire(1_000).await;
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(9_900), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(11_000), "{elapsed:?}");
    }
}
