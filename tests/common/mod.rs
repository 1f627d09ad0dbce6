//! Pieces shared by the test binaries that run the real gateway process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

/// Reads the JSON log lines (`LOG_FORMAT=json`) of `child`'s piped stdout on a thread of its
/// own, hands every line to `on_line`, and returns the address of the "listening" line, waiting
/// at most `wait`. Panics when no such line comes in time.
pub fn listening_addr(
    child: &mut Child,
    wait: Duration,
    mut on_line: impl FnMut(String) + Send + 'static,
) -> SocketAddr {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v["addr"].as_str()
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("listening"))
                && let Ok(addr) = addr.parse::<SocketAddr>()
            {
                let _ = tx.send(addr);
            }
            on_line(line);
        }
    });
    rx.recv_timeout(wait).expect("the gateway logs its address")
}
