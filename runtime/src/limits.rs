//! Per-tier caps on operations per second and bytes per second, shared by
//! every job touching the tier (a token bucket each, via `governor`).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The caps of one tier; unlimited where unset.
#[derive(Debug, Default)]
pub struct Limits {
    ops: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    /// Largest single acquisition of the byte bucket (its burst), in bytes.
    byte_burst: u32,
}

impl Limits {
    /// Caps of `ops_per_sec` requests and `bytes_per_sec` bytes; a second's
    /// worth may be spent at once. Zero or `None` means no cap.
    pub fn new(ops_per_sec: Option<u32>, bytes_per_sec: Option<u64>) -> Self {
        let ops = ops_per_sec
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_second(n)));
        // governor counts in u32 cells: cap the burst at 4 GiB/s worth.
        let byte_rate = bytes_per_sec
            .map(|b| b.min(u64::from(u32::MAX)) as u32)
            .and_then(NonZeroU32::new);
        let bytes = byte_rate.map(|n| RateLimiter::direct(Quota::per_second(n)));
        Limits {
            ops,
            bytes,
            byte_burst: byte_rate.map_or(0, NonZeroU32::get),
        }
    }

    /// True when neither cap is set.
    pub fn is_unlimited(&self) -> bool {
        self.ops.is_none() && self.bytes.is_none()
    }

    /// Waits for one operation's turn.
    pub async fn op(&self) {
        if let Some(ops) = &self.ops {
            ops.until_ready().await;
        }
    }

    /// Waits until `n` bytes may pass, in bursts the bucket can hold.
    pub async fn bytes(&self, n: usize) {
        let Some(bytes) = &self.bytes else { return };
        let mut left = n as u64;
        while left > 0 {
            let take = left.min(u64::from(self.byte_burst)) as u32;
            if let Some(cells) = NonZeroU32::new(take) {
                // `take` never exceeds the burst, so this cannot be refused.
                let _ = bytes.until_n_ready(cells).await;
            }
            left -= u64::from(take);
        }
    }

    /// Takes one operation's turn now, if the cap allows it.
    pub fn try_op(&self) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.check().is_ok())
    }

    /// Lets `n` bytes pass now, if the cap allows it.
    pub fn try_bytes(&self, n: u32) -> bool {
        match (&self.bytes, NonZeroU32::new(n)) {
            (Some(bytes), Some(cells)) => matches!(bytes.check_n(cells), Ok(Ok(()))),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_refuse_past_a_seconds_worth_and_none_means_unlimited() {
        let limits = Limits::new(Some(3), Some(1000));
        assert!((0..3).all(|_| limits.try_op()));
        assert!(!limits.try_op(), "a fourth op within the same second");
        assert!(limits.try_bytes(600));
        assert!(
            !limits.try_bytes(600),
            "1200 bytes within a second at 1000/s"
        );
        let free = Limits::new(None, Some(0));
        assert!(free.is_unlimited());
        assert!((0..10_000).all(|_| free.try_op() && free.try_bytes(u32::MAX)));
    }

    #[tokio::test]
    async fn waiting_acquisitions_are_split_into_bursts() {
        // 1 MB/s: acquiring 2.5 MB is split into 1 MB bursts instead of
        // being refused as larger than the bucket.
        let limits = Limits::new(None, Some(1_000_000));
        let started = std::time::Instant::now();
        limits.bytes(2_500_000).await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(1400));
    }
}
