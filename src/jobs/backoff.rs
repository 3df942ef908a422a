use std::time::Duration;

use rand::Rng;

/// Delay before retry number `attempt` (1 = the first retry): `base * 2^(attempt-1)`, capped at `max`, with
/// ±25% jitter so jobs that failed together (an upstream outage) do not all come back in the same instant.
pub fn retry_delay(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let raw = base.saturating_mul(1u32 << exponent).min(max);
    let jitter = rand::rng().random_range(0.75..=1.25);
    raw.mul_f64(jitter).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_respects_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for _ in 0..100 {
            let first = retry_delay(1, base, max);
            assert!(first >= Duration::from_millis(750) && first <= Duration::from_millis(1250));
            let fourth = retry_delay(4, base, max);
            assert!(fourth >= Duration::from_secs(6) && fourth <= Duration::from_secs(10));
            assert!(retry_delay(40, base, max) <= max);
        }
    }
}
