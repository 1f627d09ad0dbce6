//! The benchmark's ceiling: an axum route answering the same XML as a successful `pay`, with
//! no database and no parsing. What the gateway reaches is read against this. It also plays
//! the fast webhook receiver of the drain benchmark: `POST /hook` answers 200 at once, and
//! `POST /flaky` answers 500 to every second request (the load test's failing receiver).

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{StatusCode, header};
use axum::routing::{get, post};

const ANSWER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n\
<osmp_txn_id>1234567</osmp_txn_id>\n<prv_txn>2016</prv_txn>\n<sum>10.45</sum>\n\
<result>0</result>\n<comment>OK</comment>\n</response>\n";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = Router::new()
        .route(
            "/payment",
            get(|| async { ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], ANSWER) }),
        )
        .route("/hook", post(|| async { "ok" }))
        .route(
            "/flaky",
            post(|| async {
                static N: AtomicUsize = AtomicUsize::new(0);
                if N.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
