//! mover-svc's HTTP API: where an object lives now, how a job went, and
//! which copies the mover could not delete.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use strata_runtime::http::{KeyPath, error_response};

use crate::AppState;

/// `GET /v1/objects/{key}`, `GET /v1/jobs/{job_key}` and `GET /v1/orphans`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/objects/{*key}", get(object))
        .route("/v1/jobs/{job_key}", get(job))
        .route("/v1/orphans", get(orphans))
        .with_state(state)
}

async fn object(State(state): State<AppState>, KeyPath(key): KeyPath) -> Response {
    if let Err(e) = strata_proto::validate::object_key(&key) {
        return error_response(StatusCode::BAD_REQUEST, e.to_string());
    }
    match state.db.catalog(&key).await {
        Ok(Some(row)) => {
            let tier = state.tiers.get(&row.tier);
            Json(json!({
                "key": row.object_key,
                "tier": row.tier,
                "location": tier.map(|t| t.url_of(&key)),
                "storageClass": tier.and_then(|t| t.storage_class()),
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

async fn job(State(state): State<AppState>, KeyPath(job_key): KeyPath) -> Response {
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

/// Orphans one listing shows at most (the oldest); `count` gives them all.
const ORPHANS_LISTED: usize = 1000;

/// Copies left behind by stores that refused to delete them, with the
/// location of each.
async fn orphans(State(state): State<AppState>) -> Response {
    let listed = async {
        let count = state.db.orphan_count().await?;
        Ok::<_, anyhow::Error>((count, state.db.orphans(ORPHANS_LISTED).await?))
    };
    match listed.await {
        Ok((count, rows)) => {
            let orphans: Vec<_> = rows
                .into_iter()
                .map(|row| {
                    let location = state
                        .tiers
                        .get(&row.tier)
                        .map(|t| t.url_of(&row.object_key));
                    let mut orphan = json!(row);
                    orphan["location"] = json!(location);
                    orphan
                })
                .collect();
            Json(json!({ "count": count, "orphans": orphans })).into_response()
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use strata_proto::MigrationJob;
    use strata_runtime::tiers::Tier;

    use super::*;
    use crate::transfer::Digest256;

    /// A ledger in `dir` where `a/b` (3 bytes) moved from hot to cold.
    async fn moved(dir: &std::path::Path) -> (crate::db::Db, MigrationJob) {
        let db = crate::db::Db::open(&dir.join("m.db")).unwrap();
        let job = MigrationJob {
            job_key: strata_proto::job_key("a/b", "hot", "cold", 0),
            object_key: "a/b".into(),
            from_tier: "hot".into(),
            to_tier: "cold".into(),
            ..Default::default()
        };
        db.accept(&job, Some(3)).await.unwrap();
        let copied = Digest256 {
            sha256: "ab".into(),
            bytes: 3,
        };
        db.switch(&job, &copied, None).await.unwrap();
        (db, job)
    }

    #[tokio::test]
    async fn orphans_are_listed_with_where_each_copy_is() {
        let dir = tempfile::tempdir().unwrap();
        let (db, job) = moved(dir.path()).await;
        db.complete_leaving_orphan(
            &job,
            1,
            ("source_not_deleted", "left"),
            ("permanent", "denied"),
            &object_store::ObjectMeta {
                location: "a/b".into(),
                last_modified: chrono::DateTime::from_timestamp_millis(5).unwrap(),
                size: 3,
                e_tag: Some("e".into()),
                version: None,
            },
            0,
        )
        .await
        .unwrap();
        let root = dir.path().join("hot");
        let hot: Tier =
            toml::from_str(&format!("name = 'hot'\nurl = 'file://{}'", root.display())).unwrap();
        let state = AppState {
            db,
            tiers: std::sync::Arc::new(HashMap::from([("hot".into(), hot.open().unwrap())])),
        };
        let response = orphans(State(state)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let listed = &body["orphans"];
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(listed[0]["objectKey"], "a/b");
        assert_eq!(listed[0]["tier"], "hot");
        assert_eq!(listed[0]["errorMessage"], "denied");
        assert_eq!(
            (listed[0]["size"].as_u64(), listed[0]["eTag"].as_str()),
            (Some(3), Some("e"))
        );
        assert_eq!(body["count"], 1);
        let location = format!("file://{}/a/b", root.display());
        assert_eq!(listed[0]["location"], location.as_str(), "{body}");
    }

    #[tokio::test]
    async fn an_object_is_shown_with_its_location_and_storage_class() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = moved(dir.path()).await;
        let cold: Tier =
            toml::from_str("name = 'cold'\nurl = 'memory://'\npreset = 'aws-s3-glacier-ir'")
                .unwrap();
        let state = AppState {
            db,
            tiers: std::sync::Arc::new(HashMap::from([("cold".into(), cold.open().unwrap())])),
        };
        let response = object(State(state.clone()), KeyPath("a/b".into())).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["tier"], "cold", "{body}");
        assert_eq!(body["location"], "memory:///a/b", "{body}");
        assert_eq!(body["storageClass"], "GLACIER_IR", "{body}");
        assert_eq!(body["generation"], 1, "{body}");
        let missing = object(State(state), KeyPath("a/c".into())).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
