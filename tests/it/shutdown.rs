//! Graceful shutdown: stop accepting, finish what is in flight, exit cleanly.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, spawn_app};

fn in_flight(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("http_requests_in_flight"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_in_flight_request_completes_after_shutdown_begins() {
    let app = spawn_app().await;
    let body =
        br#"{"kind":"jobs.prune","payload":{"retention_hours":1,"discarded_retention_hours":1}}"#;

    // Send the headers and half the body: the request is now being handled, waiting for the rest.
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /admin/jobs HTTP/1.1\r\nhost: test\r\nx-admin-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        crate::helpers::ADMIN_KEY,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    // The scrape counts itself, so a second request in flight means ours has reached the handler.
    eventually(
        "the slow request to be in flight",
        Duration::from_secs(10),
        || async { (in_flight(&app.metrics().await) >= 2.0).then_some(()) },
    )
    .await;

    app.shutdown.cancel();
    // New connections are refused once the server has stopped accepting.
    eventually("the listener to close", Duration::from_secs(10), || async {
        TcpStream::connect(app.address).await.is_err().then_some(())
    })
    .await;

    stream.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "in-flight request completed: {response}"
    );

    let result = tokio::time::timeout(Duration::from_secs(15), app.server)
        .await
        .expect("server stops");
    result.expect("task not panicked").expect("clean exit");
}
