//! policy-svc's HTTP API: an object's state and current evaluation, and a
//! summary of objects, bytes and monthly cost per tier.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use rusqlite::Connection;
use serde_json::json;
use strata_runtime::{
    http::{KeyPath, error_response},
    tiers::{Tier, TierConfig},
};

use crate::{
    AppState, cost, engine, prefix,
    rules::{self, DAY_MS, Decision},
    store::{self, TierObject},
};

/// `GET /v1/objects/{key}`, `GET /v1/objects/{key}/explain`, `GET /v1/summary`.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/objects/{*path}", get(object))
        .route("/v1/summary", get(summary))
        .with_state(state)
}

async fn object(State(state): State<AppState>, KeyPath(path): KeyPath) -> Response {
    let wall_ms = strata_proto::time::now_millis();
    // The row, the clock and the prefix's prior from one snapshot.
    let found = state
        .store
        .read(move |tx| {
            let (mut key, mut explain) = match path.strip_suffix("/explain") {
                Some(key) => (key.to_owned(), true),
                None => (path.clone(), false),
            };
            let mut row = store::load(tx, &key)?;
            if explain && row.is_none() {
                // A key of its own that ends in `/explain`: its state, then.
                if let Some(whole) = store::load(tx, &path)? {
                    (key, explain, row) = (path, false, Some(whole));
                }
            }
            let now = store::read_clock(tx)?.now(wall_ms);
            let prior = match (&row, explain) {
                (Some(_), true) => store::prefix_prior(tx, &key, now)?,
                _ => None,
            };
            Ok((key, explain, row, now, prior))
        })
        .await;
    let (key, explain, row, now, prior) = match found {
        Ok(found) => found,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let Some(row) = row else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!("{key:?} is not known to the policy"),
        );
    };
    if !explain {
        return Json(row).into_response();
    }
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
        "deleted": row.deleted,
        "retryAfterMs": (row.retry_after_ms > now).then_some(row.retry_after_ms),
        "lastFailure": row.last_failure,
        "note": note(&row, now),
    }))
    .into_response()
}

/// What keeps the evaluation shown from becoming a job now, if anything.
fn note(row: &store::ObjectRow, now_ms: i64) -> String {
    if row.deleted {
        "the object was deleted; the policy makes no more jobs for it".into()
    } else if row.inflight_job.is_some() {
        "a job is in flight; no new decision until it ends, or until the job timeout \
         (STRATA_JOB_TIMEOUT_HOURS) if no outcome of it is heard"
            .into()
    } else if row.retry_after_ms > now_ms {
        let why = match &row.last_failure {
            Some(said) => format!("its last job ended {said}"),
            None => "its last job failed".into(),
        };
        format!(
            "no new job before {} ms (in {:.1} hours): {why}",
            row.retry_after_ms,
            (row.retry_after_ms - now_ms) as f64 / 3_600_000.0
        )
    } else {
        String::new()
    }
}

async fn summary(State(state): State<AppState>) -> Response {
    let (config, wall_ms) = (state.tiers.clone(), strata_proto::time::now_millis());
    let summary = state
        .store
        .read(move |tx| Ok(summary_of(tx, &config, wall_ms)?))
        .await;
    match summary {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

/// Objects, bytes and monthly storage cost per tier, now and once the jobs
/// in flight are done, against all of it on the first tier; from one
/// snapshot of the store, at its event time when the wall clock says
/// `wall_ms`. Billed on the bytes, without the per-object minimums; an
/// auto-tiering tier object by object, at its idle step's price and its fee.
fn summary_of(
    tx: &Connection,
    config: &TierConfig,
    wall_ms: i64,
) -> rusqlite::Result<serde_json::Value> {
    let now_ms = store::read_clock(tx)?.now(wall_ms);
    // Aggregate bytes at a tier's (first) price.
    let storage = |tier: &Tier, bytes: u64| bytes as f64 / cost::GB * tier.storage_usd_per_gb_month;
    let totals = store::tier_totals(tx)?;
    let mut tiers = Vec::new();
    let (mut cost_now, mut cost_projected) = (0.0, 0.0);
    let (mut total_bytes, mut total_objects) = (0u64, 0u64);
    for tier in &config.tiers {
        let here = totals.iter().filter(|t| t.tier == tier.name);
        let (objects, bytes) = here.fold((0u64, 0u64), |(o, b), t| {
            (o.saturating_add(t.objects), b.saturating_add(t.bytes))
        });
        // After the jobs in flight: what stays here and what is on its way in.
        let projected_bytes: u64 = totals
            .iter()
            .filter(|t| t.moving_to.as_deref().unwrap_or(&t.tier) == tier.name)
            .fold(0u64, |sum, t| sum.saturating_add(t.bytes));
        let (monthly, projected) = if tier.auto_tiering.is_some() {
            let fold = |(sum_now, sum_after): (f64, f64), o: TierObject| {
                let idle = (now_ms - o.idle_since_ms).max(0) as f64 / DAY_MS as f64;
                let rate = |days| cost::storage_rate_now(tier, o.size, days);
                // An arrival starts its idle clock on the tier afresh.
                let idle_after = if o.on_tier { idle } else { 0.0 };
                (
                    sum_now + if o.on_tier { rate(idle) } else { 0.0 },
                    sum_after + if o.after_jobs { rate(idle_after) } else { 0.0 },
                )
            };
            store::fold_tier_objects(tx, &tier.name, (0.0, 0.0), fold)?
        } else {
            (storage(tier, bytes), storage(tier, projected_bytes))
        };
        cost_now += monthly;
        cost_projected += projected;
        total_bytes = total_bytes.saturating_add(bytes);
        total_objects = total_objects.saturating_add(objects);
        tiers.push(json!({
            "tier": tier.name,
            "objects": objects,
            "bytes": bytes,
            "monthlyStorageUsd": monthly,
            "projectedBytes": projected_bytes,
            "projectedMonthlyStorageUsd": projected,
        }));
    }
    let all_hot = storage(&config.tiers[0], total_bytes);
    Ok(json!({
        "objects": total_objects,
        "bytes": total_bytes,
        "tiers": tiers,
        "monthlyStorageUsd": cost_now,
        "monthlyStorageUsdAllHot": all_hot,
        "monthlySavingsUsd": all_hot - cost_now,
        "projectedMonthlyStorageUsd": cost_projected,
        "projectedMonthlySavingsUsd": all_hot - cost_projected,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{presets, store::Store};

    const GB: u64 = 1_000_000_000;
    const NOW: i64 = 1_000 * DAY_MS;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn the_note_says_what_keeps_an_evaluation_from_a_job() {
        let mut row = store::ObjectRow::new("a", 10, "hot", 0);
        assert_eq!(note(&row, NOW), "");
        row.retry_after_ms = NOW + 2 * 3_600_000;
        row.last_failure = Some("REJECTED occupied: s3://b/a already holds another object".into());
        let said = note(&row, NOW);
        assert!(said.contains("in 2.0 hours"), "{said}");
        assert!(said.contains("ended REJECTED occupied: s3://b/a"), "{said}");
        assert_eq!(note(&row, NOW + 3 * 3_600_000), "", "the backoff is over");
        row.inflight_job = Some("k".into());
        assert!(note(&row, NOW).contains("in flight"));
        row.deleted = true;
        assert!(note(&row, NOW).contains("deleted"));
    }

    /// `/v1/objects/{key}/explain` explains `key`; a key that itself ends
    /// in `/explain`, with no object at the shorter key, gets its state.
    #[tokio::test]
    async fn a_key_ending_in_explain_is_found_when_the_shorter_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let tiers = presets::aws_s3_intelligent();
        let first = tiers.tiers[0].name.clone();
        store
            .transaction(move |tx| {
                store::save(tx, &store::ObjectRow::new("a", 1, &first, 0))?;
                Ok(store::save(
                    tx,
                    &store::ObjectRow::new("b/explain", 2, &first, 0),
                )?)
            })
            .await
            .unwrap();
        let state = AppState {
            store,
            tiers: std::sync::Arc::new(tiers),
            params: crate::rules::RuleParams {
                promote_reads: 3,
                promote_window_ms: 7 * DAY_MS,
                min_object_bytes: 0,
                cost: None,
            },
        };
        let get = |path: &str| {
            let state = state.clone();
            let path = path.to_owned();
            async move {
                let response = object(State(state), KeyPath(path)).await;
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (status, a) = get("a/explain").await;
        assert_eq!((status, a["key"].as_str()), (StatusCode::OK, Some("a")));
        assert!(a["decision"]["action"].is_string(), "{a}");
        let (status, b) = get("b/explain").await;
        assert_eq!(
            (status, b["objectKey"].as_str()),
            (StatusCode::OK, Some("b/explain")),
            "{b}"
        );
        let (status, c) = get("c/explain").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            c["error"].as_str().unwrap().contains("\"c\" is not known"),
            "{c}"
        );
    }

    /// An Intelligent-Tiering tier is billed object by object at its idle
    /// step, with its fee; what arrives starts at its first price.
    #[tokio::test]
    async fn the_summary_bills_an_auto_tiering_tier_by_idle_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let config = presets::aws_s3_intelligent();
        let (standard, it) = (&config.tiers[0].name, &config.tiers[1].name);
        // key, size, tier, days since the last read, in flight to.
        let objects = [
            ("idle-100", GB, it, 100, None),
            ("idle-40-leaving", GB, it, 40, Some("glacier-ir")),
            ("arriving", GB, standard, 40, Some(it.as_str())),
            ("small", 100_000, it, 200, None),
        ];
        let rows: Vec<_> = objects
            .iter()
            .map(|(k, size, tier, idle, to)| {
                let read = NOW - idle * DAY_MS;
                (
                    k.to_string(),
                    *size,
                    tier.to_string(),
                    read,
                    to.map(str::to_owned),
                )
            })
            .collect();
        store
            .transaction(move |tx| {
                for (key, size, tier, read, to) in rows {
                    tx.execute(
                        "INSERT INTO objects (object_key, size, tier, first_seen_ms, last_access_ms,
                            recent_reads, tier_since_ms, inflight_job, inflight_to, due_ms)
                         VALUES (?1, ?2, ?3, 0, ?4, json_array(?4), 0, ?5, ?5, 0)",
                        rusqlite::params![key, size as i64, tier, read, to],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();

        let snapshot = config.clone();
        let summary = store
            .transaction(move |tx| Ok(summary_of(tx, &snapshot, NOW)?))
            .await
            .unwrap();
        let tier = |name: &str| {
            summary["tiers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tier"] == name)
                .unwrap()
                .clone()
        };
        let fee = 0.0025 / 1000.0;
        let small = 100_000.0 / GB as f64 * 0.023;
        let on_it = tier(it);
        assert_eq!(on_it["objects"], 3);
        let now = on_it["monthlyStorageUsd"].as_f64().unwrap();
        assert!(close(now, 0.004 + 0.0125 + 2.0 * fee + small), "{now}");
        // The leaver goes; the arrival, however long unread before, pays
        // Frequent Access and the fee.
        let after = on_it["projectedMonthlyStorageUsd"].as_f64().unwrap();
        assert!(close(after, 0.004 + 0.023 + 2.0 * fee + small), "{after}");
        let hot = tier(standard)["monthlyStorageUsd"].as_f64().unwrap();
        assert!(close(hot, 0.023), "{hot}");
        let total = summary["monthlyStorageUsd"].as_f64().unwrap();
        assert!(close(total, now + hot), "{total}");
        let all_hot = summary["monthlyStorageUsdAllHot"].as_f64().unwrap();
        assert!(close(
            all_hot,
            (3.0 * GB as f64 + 100_000.0) / GB as f64 * 0.023
        ));
    }
}
