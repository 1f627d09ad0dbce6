//! Slow and broken peers: nothing keeps QIWI waiting beyond the configured timeouts, and a
//! failing webhook receiver is retried on the schedule, never in a spin.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::helpers::*;

/// A "slow-loris" peer: accepts, then drips an HTTP answer one byte a second, never finishing
/// in time. Returns its base URL.
async fn slow_loris() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                for b in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" {
                    if sock.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_slow_loris_check_backend_costs_at_most_the_check_timeout() {
    let base = slow_loris().await;
    let app = spawn_app_with(|c| {
        c.check.url = Some(format!("{base}/check").parse().unwrap());
        // Well under the peer's one byte a second: the first bytes arrive at once, the answer
        // never does.
        c.check.timeout = Duration::from_millis(250);
    })
    .await;
    let started = Instant::now();
    let a = app.check("1", "acc", "10").await;
    assert_eq!(a.result(), 1, "{}", a.raw);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hanging_webhook_receiver_does_not_slow_payments() {
    let base = slow_loris().await;
    let timeout = Duration::from_secs(2);
    let app = spawn_app_with(|c| {
        c.webhook.url = Some(format!("{base}/hook").parse().unwrap());
        c.webhook.timeout = timeout;
    })
    .await;
    for i in 0..20 {
        let started = Instant::now();
        assert_eq!(
            app.pay(&format!("{}", 500 + i), "acc", "1").await.result(),
            0
        );
        // A pay that waited for its hanging delivery would take the whole webhook timeout.
        assert!(
            started.elapsed() < timeout,
            "pay {i}: {:?}",
            started.elapsed()
        );
    }
    // the deliveries hang in flight, and time out as failed attempts (polled: a busy machine
    // may take a while past the timeout to record them)
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.count("SELECT COUNT(*) FROM qiwi_webhook_attempt WHERE error LIKE 'timeout%'") < 1 {
        assert!(
            Instant::now() < deadline,
            "no attempt timed out within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_transaction WHERE status = 1"),
        0
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule_not_in_a_spin() {
    const STEP: Duration = Duration::from_millis(250);
    use std::sync::{Arc, Mutex};
    // When each attempt reached the receiver.
    let hits = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let base =
        spawn_backend(
            Router::new()
                .route(
                    "/hook",
                    post(
                        |axum::extract::State(hits): axum::extract::State<
                            Arc<Mutex<Vec<Instant>>>,
                        >| async move {
                            hits.lock().unwrap().push(Instant::now());
                            StatusCode::INTERNAL_SERVER_ERROR
                        },
                    ),
                )
                .with_state(hits.clone()),
        )
        .await;
    let app = spawn_app_with(|c| {
        c.webhook.url = Some(format!("{base}/hook").parse().unwrap());
        c.webhook.backoff.initial = STEP;
        c.webhook.backoff.max = STEP;
    })
    .await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    // Initial and maximum delay STEP: half to all of the base with jitter, kept at or above
    // the 1 s floor (backoff's MIN_DELAY) unless the cap is lower, and the cap wins: every retry
    // is due exactly STEP after the previous attempt ended (a configured delay is whole
    // seconds; the test takes the cap below the floor to run in a second, not four). Wait
    // (polling, generously) for four attempts...
    let deadline = Instant::now() + Duration::from_secs(60);
    while hits.lock().unwrap().len() < 4 {
        assert!(Instant::now() < deadline, "fewer than 4 attempts in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and check that none came sooner than STEP after the one before; a spinning loop
    // would make them a millisecond or less apart. (10 ms of slack for the millisecond due
    // times.)
    let hits = hits.lock().unwrap().clone();
    for pair in hits.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= STEP - Duration::from_millis(10),
            "a retry came after {gap:?}"
        );
    }
}

#[tokio::test]
async fn a_full_database_answers_1_never_0_and_recovers_when_space_returns() {
    let app = spawn_app().await;
    assert_eq!(app.pay("1", "acc", "1").await.result(), 0);
    // Cap the file at its current size on the writer's own connection: the next pay that needs
    // a new page fails with SQLITE_FULL, as on a full disk.
    let set_cap = |cap: Option<i64>| {
        app.state.db.writer().write(move |c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.pragma_update(None, "max_page_count", cap.unwrap_or(pages))?;
            Ok(())
        })
    };
    set_cap(None).await.unwrap();
    // Pays fill the free room left in existing pages, then the file is full: from then on
    // every pay is answered 1, and every pay answered 0 is stored.
    let (mut stored, mut refused) = (1, 0);
    for i in 0..400 {
        let a = app
            .pay(&format!("{}", 100 + i), &"x".repeat(150), "1")
            .await;
        match a.result() {
            0 => stored += 1,
            1 => refused += 1,
            other => panic!("result {other}: {}", a.raw),
        }
    }
    assert!(refused >= 300, "only {refused} pays were refused");
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), stored);
    set_cap(Some(1 << 30)).await.unwrap();
    assert_eq!(app.pay("9999", &"x".repeat(150), "1").await.result(), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_transaction"),
        stored + 1
    );
}
