//! mover-svc's HTTP API: where an object lives now, and how a job went.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use strata_runtime::http::error_response;

use crate::AppState;

/// `GET /v1/objects/{key}` and `GET /v1/jobs/{job_key}`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/objects/{*key}", get(object))
        .route("/v1/jobs/{job_key}", get(job))
        .with_state(state)
}

async fn object(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    if let Err(e) = strata_proto::validate::object_key(&key) {
        return error_response(StatusCode::BAD_REQUEST, e.to_string());
    }
    match state.db.catalog(&key).await {
        Ok(Some(row)) => {
            let location = state.tiers.get(&row.tier).map(|t| t.url_of(&key));
            Json(json!({
                "key": row.object_key,
                "tier": row.tier,
                "location": location,
                "generation": row.generation,
                "sha256": row.sha256,
                "size": row.size,
                "updatedAtMs": row.updated_at_ms,
            }))
            .into_response()
        }
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            format!("{key:?} is not in the catalog"),
        ),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn job(State(state): State<AppState>, Path(job_key): Path<String>) -> Response {
    match state.db.ledger(&job_key).await {
        Ok(Some(row)) => Json(json!({
            "jobKey": row.job_key,
            "objectKey": row.object_key,
            "fromTier": row.from_tier,
            "toTier": row.to_tier,
            "generation": row.generation,
            "state": row.state.as_str_name(),
            "attempt": row.attempt,
            "sha256": row.sha256,
            "bytes": row.bytes,
            "newGeneration": row.new_generation,
            "error": row.error.map(|(class, message)| json!({"class": class, "message": message})),
        }))
        .into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, "unknown job key"),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}
