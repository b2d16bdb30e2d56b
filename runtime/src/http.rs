//! The HTTP basics every daemon serves: `/healthz`, `/readyz`, `/metrics`,
//! bearer-token auth for the API routes, and serving until shutdown.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context;
use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio_util::sync::CancellationToken;

/// Set once the daemon is ready for work (topics exist, state opened).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the daemon ready.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `/healthz`, `/readyz` and `/metrics`, merged with `api` (which, when a
/// token is given, requires `Authorization: Bearer <token>`).
pub fn router(api: Router, token: Option<String>, ready: Readiness) -> Router {
    let api = match token {
        Some(token) => api.layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_bearer,
        )),
        None => api,
    };
    let basics = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { crate::telemetry::prometheus().render() }),
        )
        .with_state(ready);
    basics.merge(api)
}

async fn readyz(State(ready): State<Readiness>) -> Response {
    if ready.is_ready() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn require_bearer(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(token.as_str()) {
        next.run(req).await
    } else {
        let body = axum::Json(serde_json::json!({"error": "missing or wrong bearer token"}));
        (StatusCode::UNAUTHORIZED, body).into_response()
    }
}

/// A JSON error body `{"error": ...}` with `status`.
pub fn error_response(status: StatusCode, error: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": error.into()})),
    )
        .into_response()
}

/// Binds `addr` (failing at once when it is taken) and returns the task
/// serving `app` until `stop` is cancelled.
pub async fn spawn_server(
    addr: SocketAddr,
    app: Router,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind http {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    Ok(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .context("serve http")
    }))
}
