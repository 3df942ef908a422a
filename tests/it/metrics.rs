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

/// The gauges sampled for the dashboards and alerts: process resources, the connection budget, Redis, Salla
/// stores by status, and per job kind the due count, the oldest wait and the longest run.
#[tokio::test]
async fn fleet_process_and_job_age_gauges_follow_the_database() {
    let app = spawn_app_with(wosool::Role::All, |env| {
        env.push(("WOSOOL_JOBS__STATS_INTERVAL_SECS".into(), "1".into()));
        env.push((
            "WOSOOL_TENANCY__POOLS__TOTAL_CONNECTIONS".into(),
            "42".into(),
        ));
    })
    .await;
    // A job of a kind nobody handles, due for ten minutes; one running for an hour; a store whose tokens
    // were revoked and an installed one without tokens (both need a reinstall).
    sqlx::query(
        "INSERT INTO jobs (kind, max_attempts, run_at) VALUES ('monitor.test', 1, now() - interval '10 minutes')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO jobs (kind, max_attempts, state, started_at, locked_by, locked_until) \
         VALUES ('monitor.stuck', 1, 'running', now() - interval '1 hour', 'elsewhere', now() + interval '1 hour')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO salla_stores (merchant_id, status) VALUES (9001, 'needs_reinstall'), (9002, 'installed'), \
         (9003, 'uninstalled')",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let value = |text: &str, name: &str, labels: &[(&str, &str)]| {
        crate::helpers::metric_value(text, name, labels)
    };
    let metrics = crate::helpers::eventually(
        "the gauges to be sampled",
        std::time::Duration::from_secs(20),
        || async {
            let metrics = app.metrics().await;
            let ready = value(&metrics, "jobs_due", &[("kind", "monitor.test")]) == Some(1.0)
                && value(&metrics, "salla_stores", &[("status", "needs_reinstall")]) == Some(2.0);
            ready.then_some(metrics)
        },
    )
    .await;
    let waited = value(
        &metrics,
        "jobs_oldest_due_age_seconds",
        &[("kind", "monitor.test")],
    )
    .unwrap();
    assert!((600.0..700.0).contains(&waited), "{waited}");
    let ran = value(
        &metrics,
        "jobs_longest_running_seconds",
        &[("kind", "monitor.stuck")],
    )
    .unwrap();
    assert!((3600.0..3700.0).contains(&ran), "{ran}");
    // Registered kinds are reported at 0 when idle, their failure counters exist from the start.
    assert_eq!(
        value(
            &metrics,
            "jobs_longest_running_seconds",
            &[("kind", "jobs.prune")]
        ),
        Some(0.0)
    );
    assert!(metrics.contains("jobs_discarded_total{kind=\"jobs.prune\"}"));
    assert_eq!(
        value(&metrics, "salla_stores", &[("status", "uninstalled")]),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, "salla_stores", &[("status", "installed")]),
        Some(0.0)
    );
    assert_eq!(
        value(&metrics, "tenant_db_connections_budget", &[]),
        Some(42.0)
    );
    assert_eq!(
        value(&metrics, "tenant_db_connections_reserved", &[]),
        Some(0.0)
    );
    assert!(metrics.contains("tenant_pool_budget_exhausted_total 0"));
    assert_eq!(value(&metrics, "redis_up", &[]), Some(1.0));
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let v = value(&metrics, name, &[]).unwrap_or_else(|| panic!("{name} exported"));
        assert!(v > 0.0, "{name} = {v}");
    }
}

/// `redis_up` tells when the replica's Redis stops answering.
#[tokio::test]
async fn redis_up_drops_to_zero_when_redis_goes_away() {
    let redis = crate::helpers::OwnRedis::start_on(crate::helpers::closed_port()).await;
    let url = redis.url();
    let app = spawn_app_with(wosool::Role::Api, |env| {
        env.push(("WOSOOL_REDIS__URL".into(), url));
        env.push(("WOSOOL_REDIS__TIMEOUT_SECS".into(), "1".into()));
        env.push(("WOSOOL_JOBS__STATS_INTERVAL_SECS".into(), "1".into()));
    })
    .await;
    let value = |text: &str| crate::helpers::metric_value(text, "redis_up", &[]);
    crate::helpers::eventually("redis_up 1", std::time::Duration::from_secs(10), || async {
        (value(&app.metrics().await) == Some(1.0)).then_some(())
    })
    .await;
    redis.kill().await;
    crate::helpers::eventually("redis_up 0", std::time::Duration::from_secs(20), || async {
        (value(&app.metrics().await) == Some(0.0)).then_some(())
    })
    .await;
}
