//! Prometheus exposition, labelled by route template.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let app = spawn_app().await;
    app.admin_get("/admin/jobs/424242").send().await.unwrap();
    app.get("/definitely/not/a/route/77").send().await.unwrap();
    app.get("/health/live").send().await.unwrap();

    let metrics = app.metrics().await;
    let line = |needle: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("http_requests_total") && l.contains(needle))
            .map(str::to_owned)
    };
    let templated = line("route=\"/admin/jobs/{id}\"").expect("templated admin route counted");
    assert!(
        templated.contains("status=\"404\"") && templated.contains("method=\"GET\""),
        "{templated}"
    );
    assert!(
        line("route=\"unmatched\"").is_some(),
        "unknown paths share one label"
    );
    assert!(line("route=\"/health/live\"").is_some());
    assert!(!metrics.contains("424242"), "raw ids never become labels");
    assert!(
        !metrics.contains("/definitely/not"),
        "raw paths never become labels"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "latency histogram exposed"
    );
    assert!(metrics.contains("# TYPE http_requests_total counter"));
}

#[tokio::test]
async fn metrics_can_move_to_a_separate_listener() {
    let metrics_port = crate::helpers::closed_port();
    let app = spawn_app_with(wosool::Role::Api, |env| {
        env.push((
            "WOSOOL_SERVER__METRICS_LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ))
    })
    .await;
    app.get("/health/live").send().await.unwrap();
    assert_eq!(
        app.get("/metrics").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let separate = app
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(separate.status(), StatusCode::OK);
    assert!(
        separate
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
}

#[tokio::test]
async fn no_secret_appears_in_metrics() {
    let app = spawn_app().await;
    app.admin_get("/admin/jobs").send().await.unwrap();
    let metrics = app.metrics().await;
    assert!(!metrics.contains(crate::helpers::ADMIN_KEY));
    assert!(!metrics.contains("postgres://"));
}

#[tokio::test]
async fn job_metrics_are_exposed_by_kind_and_state() {
    // Role `all` runs the worker, whose periodic prune job fires at start.
    let app = spawn_app_with(wosool::Role::All, |_| {}).await;
    let metrics = crate::helpers::eventually(
        "the prune job to be counted",
        std::time::Duration::from_secs(20),
        || async {
            let metrics = app.metrics().await;
            metrics
                .lines()
                .any(|l| l.starts_with("jobs_succeeded_total{kind=\"jobs.prune\"}"))
                .then_some(metrics)
        },
    )
    .await;
    for name in [
        "jobs_enqueued_total{kind=\"jobs.prune\"}",
        "jobs_started_total{kind=\"jobs.prune\"}",
        "job_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    crate::helpers::eventually(
        "queue depth gauges",
        std::time::Duration::from_secs(20),
        || async {
            let metrics = app.metrics().await;
            metrics
                .contains("jobs_queue_depth{state=\"pending\"}")
                .then_some(())
        },
    )
    .await;
}
