//! The future that resolves on SIGINT or SIGTERM, which starts a graceful
//! stop. A second signal during the stop exits at once, unless it comes
//! within [`SAME_STOP`] of the first: a supervisor that signals both the
//! process and its group (GNU `timeout`, some init systems) sends two at
//! once, and means one stop.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Signals this close after the first are part of the same stop.
pub const SAME_STOP: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves on the first SIGINT or SIGTERM; afterwards a second signal, at
/// least [`SAME_STOP`] later, ends the process immediately with status 130.
pub async fn signal_received() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
    }
    let first = tokio::time::Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if first.elapsed() >= SAME_STOP {
                break;
            }
            tracing::info!("another stop signal at once: the same stop");
        }
        tracing::warn!("second signal: exiting without finishing work in flight");
        std::process::exit(130);
    });
}

/// A token cancelled when `shutdown` resolves: the one stop signal every
/// task of a daemon watches.
pub fn token(shutdown: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let stop = CancellationToken::new();
    let on_shutdown = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_shutdown.cancel();
    });
    stop
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sigterm_self() {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Two SIGTERMs at once (a supervisor signalling the process and its
    /// group) are one graceful stop: the process is still here after.
    #[tokio::test]
    async fn two_signals_at_once_are_one_stop() {
        let stopped = tokio::spawn(signal_received());
        tokio::time::sleep(Duration::from_millis(200)).await;
        sigterm_self();
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("the first signal stops")
            .unwrap();
        sigterm_self();
        // Had the second counted, the process would have exited with 130.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
