//! `command=check` against the merchant's check backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;

use crate::helpers::*;

/// A backend whose answer depends on the account: `ok` → 200, `missing` → 404, `broken` → 500,
/// `slow` → hangs past the gateway's timeout. It records the queries it saw.
async fn backend(seen: Arc<Mutex<Vec<String>>>) -> String {
    let router = Router::new().route(
        "/check",
        get(move |Query(q): Query<Vec<(String, String)>>| {
            let seen = seen.clone();
            async move {
                let account = q
                    .iter()
                    .find(|(k, _)| k == "account")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                seen.lock().unwrap().push(
                    q.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&"),
                );
                match account.as_str() {
                    "ok" => StatusCode::OK,
                    "missing" => StatusCode::NOT_FOUND,
                    "created" => StatusCode::CREATED,
                    "broken" => StatusCode::INTERNAL_SERVER_ERROR,
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        StatusCode::OK
                    }
                    _ => StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    spawn_backend(router).await
}

#[tokio::test]
async fn check_backend_verdicts_map_to_result_codes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let base = backend(seen.clone()).await;
    let app = spawn_app_with(|c| {
        c.check.url = Some(format!("{base}/check?shop=7").parse().unwrap());
        c.check.timeout = Duration::from_secs(1);
    })
    .await;
    assert_eq!(app.check("1", "ok", "10").await.result(), 0);
    assert_eq!(app.check("2", "missing", "10").await.result(), 5);
    // only 200 is valid: 201 is "another status"
    assert_eq!(app.check("3", "created", "10").await.result(), 5);
    assert_eq!(app.check("4", "broken", "10").await.result(), 1);
    let started = std::time::Instant::now();
    assert_eq!(app.check("5", "slow", "10").await.result(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the check timeout was not applied"
    );
    // the account is appended to the URL's own query
    assert_eq!(seen.lock().unwrap()[0], "shop=7&account=ok");
    // check stores no transaction, and pay never calls the backend
    assert_eq!(app.pay("6", "missing", "10").await.result(), 0);
    assert_eq!(seen.lock().unwrap().len(), 5);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

#[tokio::test]
async fn unreachable_check_backend_answers_1() {
    let url = refused_url().await;
    let app = spawn_app_with(|c| c.check.url = Some(url.parse().unwrap())).await;
    assert_eq!(app.check("1", "ok", "10").await.result(), 1);
}

#[tokio::test]
async fn without_check_url_every_well_formed_account_is_accepted() {
    let app = spawn_app().await;
    assert_eq!(app.check("1", "anything-at-all", "10").await.result(), 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
}
