//! policy-svc's HTTP API: an object's state and current evaluation, and a
//! summary of objects, bytes and monthly cost per tier.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use strata_runtime::http::error_response;

use crate::{
    AppState, cost, engine, prefix,
    rules::{self, DAY_MS, Decision},
};

/// `GET /v1/objects/{key}`, `GET /v1/objects/{key}/explain`, `GET /v1/summary`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/objects/{*path}", get(object))
        .route("/v1/summary", get(summary))
        .with_state(state)
}

async fn object(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let (key, explain) = match path.strip_suffix("/explain") {
        Some(key) => (key.to_owned(), true),
        None => (path, false),
    };
    let row = match state.store.object(&key).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                format!("{key:?} is not known to the policy"),
            );
        }
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    if !explain {
        return Json(row).into_response();
    }
    let (now, prior) = match state.store.clock_and_prior(&key).await {
        Ok(found) => found,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let view = engine::view(&row, prior);
    let decision = rules::decide(&view, &state.tiers, &state.params, now);
    let (action, to, why, rule) = match &decision {
        Decision::Move { to, why, rule } => ("move", Some(to.clone()), why.clone(), Some(*rule)),
        Decision::Stay { why, .. } => ("stay", None, why.clone(), None),
    };
    let target = to.clone().unwrap_or_else(|| row.tier.clone());
    let reason = engine::reason(
        &view,
        &target,
        &why,
        rule.unwrap_or("stay"),
        &state.tiers,
        &state.params,
        now,
    );
    Json(json!({
        "key": key,
        "tier": row.tier,
        "generation": row.generation,
        "inflightJob": row.inflight_job,
        "inflightTo": row.inflight_to,
        "clockMs": now,
        "idleDays": (now - row.last_access_ms) as f64 / DAY_MS as f64,
        "readsInWindow": rules::reads_in_window(&view, &state.params, now),
        "predictedReads30d": reason.predicted_reads_30d,
        "prefixPrior": prior.map(|p| json!({
            "prefix": prefix::prefix_of(&key),
            "reads30d": p.reads_30d,
            "followupsAfterIdle": p.followups,
            "provisional": p.provisional,
        })),
        "decision": {"action": action, "to": to, "why": why, "rule": rule},
        "monthlyCostUsd": reason.monthly_cost_usd,
        "moveCostUsd": reason.move_cost_usd,
        "breakEvenDays": reason.break_even_days,
        "note": if row.inflight_job.is_some() { "a job is in flight; no new decision until it ends" } else { "" },
    }))
    .into_response()
}

async fn summary(State(state): State<AppState>) -> Response {
    let totals = match state.store.tier_totals().await {
        Ok(t) => t,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    // Aggregate bytes, billed without the per-object minimums.
    let storage = |bytes: u64, usd_per_gb_month: f64| bytes as f64 / cost::GB * usd_per_gb_month;
    let mut tiers = Vec::new();
    let (mut cost_now, mut cost_projected) = (0.0, 0.0);
    let (mut total_bytes, mut total_objects) = (0u64, 0u64);
    for tier in &state.tiers.tiers {
        let here = totals.iter().filter(|t| t.tier == tier.name);
        let (objects, bytes) = here.fold((0, 0), |(o, b), t| (o + t.objects, b + t.bytes));
        // After the jobs in flight: what stays here and what is on its way in.
        let projected_bytes: u64 = totals
            .iter()
            .filter(|t| t.moving_to.as_deref().unwrap_or(&t.tier) == tier.name)
            .map(|t| t.bytes)
            .sum();
        let monthly = storage(bytes, tier.storage_usd_per_gb_month);
        let projected = storage(projected_bytes, tier.storage_usd_per_gb_month);
        cost_now += monthly;
        cost_projected += projected;
        total_bytes += bytes;
        total_objects += objects;
        tiers.push(json!({
            "tier": tier.name,
            "objects": objects,
            "bytes": bytes,
            "monthlyStorageUsd": monthly,
            "projectedBytes": projected_bytes,
            "projectedMonthlyStorageUsd": projected,
        }));
    }
    let all_hot = storage(total_bytes, state.tiers.tiers[0].storage_usd_per_gb_month);
    Json(json!({
        "objects": total_objects,
        "bytes": total_bytes,
        "tiers": tiers,
        "monthlyStorageUsd": cost_now,
        "monthlyStorageUsdAllHot": all_hot,
        "monthlySavingsUsd": all_hot - cost_now,
        "projectedMonthlyStorageUsd": cost_projected,
        "projectedMonthlySavingsUsd": all_hot - cost_projected,
    }))
    .into_response()
}
