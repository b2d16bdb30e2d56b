//! The HTTP basics every daemon serves: `/healthz`, `/readyz`, `/metrics`,
//! bearer-token auth for the API routes, and serving until shutdown.

use std::{
    future::IntoFuture,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::{
    Router,
    extract::{FromRequestParts, Path, Request, State},
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
/// token is given, requires `Authorization: Bearer <token>`). Installs the
/// metrics recorder now, so that what the daemon counts before the first
/// scrape is not lost.
pub fn router(api: Router, token: Option<String>, ready: Readiness) -> Router {
    let metrics = crate::telemetry::prometheus();
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
        .route("/metrics", get(move || async move { metrics.render() }))
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

/// Bytes of an error message an HTTP answer keeps: an error may quote
/// its input, which may be as large as the request.
pub const ERROR_KEPT_BYTES: usize = 4 << 10;

/// A JSON error body `{"error": ...}` with `status`, the message cut to
/// [`ERROR_KEPT_BYTES`].
pub fn error_response(status: StatusCode, error: impl Into<String>) -> Response {
    error_response_with(status, error, serde_json::Map::new())
}

/// [`error_response`] with more fields beside `error` (the item and the
/// field a refused batch names).
pub fn error_response_with(
    status: StatusCode,
    error: impl Into<String>,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let error = error.into();
    fields.insert(
        "error".into(),
        crate::shortened(&error, ERROR_KEPT_BYTES).into(),
    );
    (status, axum::Json(fields)).into_response()
}

/// A route's one path parameter (an object key, a job key) whose
/// rejection, a path that is not UTF-8 once decoded, is answered as JSON
/// (`{"error": ...}`), as every other refusal of the API is.
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(key)) => Ok(Self(key)),
            Err(rejection) => Err(error_response(rejection.status(), rejection.body_text())),
        }
    }
}

/// A daemon's HTTP server: `api` behind the basics ([`router`]) with the
/// daemon's token, on `addr`, until `stop` and its shutdown grace.
pub async fn serve(
    addr: SocketAddr,
    api: Router,
    common: &crate::args::CommonArgs,
    ready: Readiness,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let app = router(api, common.http_token.clone(), ready);
    spawn_server(addr, app, stop, common.shutdown_grace()).await
}

/// Binds `addr` (failing at once when it is taken) and returns the task
/// serving `app` until `stop` is cancelled; requests in progress then have
/// `grace` to finish (a client that sends its body slowly cannot hold the
/// daemon's stop).
pub async fn spawn_server(
    addr: SocketAddr,
    app: Router,
    stop: CancellationToken,
    grace: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind http {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "http listening");
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future();
        tokio::select! {
            served = serve => served.context("serve http"),
            () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "http requests still open after the grace period; stopping anyway");
                Ok(())
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_path_that_does_not_decode_is_refused_in_json() {
        use tower::ServiceExt;
        let app = Router::new().route(
            "/v1/objects/{*key}",
            get(|KeyPath(key): KeyPath| async move { key }),
        );
        let get = |uri: &'static str| {
            let app = app.clone();
            async move {
                let request = axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(
            get("/v1/objects/a/b%20c").await,
            (StatusCode::OK, "a/b c".into())
        );
        let (status, body) = get("/v1/objects/a%FF").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("UTF-8"), "{body}");
    }

    #[test]
    fn what_is_counted_before_the_first_scrape_is_kept() {
        let _app = router(Router::new(), None, Readiness::default());
        metrics::counter!("strata_counted_early_total").increment(3);
        let page = crate::telemetry::prometheus().render();
        assert!(page.contains("strata_counted_early_total 3"), "{page}");
    }

    #[test]
    fn job_durations_are_a_histogram_prometheus_can_aggregate() {
        let _app = router(Router::new(), None, Readiness::default());
        metrics::histogram!("strata_mover_job_seconds").record(0.3);
        let page = crate::telemetry::prometheus().render();
        // The dashboard's histogram_quantile reads the buckets.
        assert!(
            page.contains(r#"strata_mover_job_seconds_bucket{le="0.5"} 1"#),
            "{page}"
        );
        assert!(
            !page.contains("strata_mover_job_seconds{quantile"),
            "{page}"
        );
    }
}
