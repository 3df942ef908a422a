//! Logs (tracing) and metrics (Prometheus recorder) for the whole process.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub mod fleet;
pub mod process;

/// Latency buckets (seconds) shared by every `*_duration_seconds` histogram: 1 ms to 5 min.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets (seconds) of `tenant_move_read_only_seconds`: a move's read-only window, target at most 10 s.
const READ_ONLY_WINDOW_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// Installs the global tracing subscriber. `RUST_LOG`, when set, overrides `log.level`.
/// Calling it twice is harmless (the second call keeps the first subscriber), which in-process tests rely on.
pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder. The first call installs it; later calls return the same handle, so
/// several in-process app instances (tests) share one registry instead of failing.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .expect("bucket list is non-empty")
                .set_buckets_for_metric(
                    Matcher::Full("tenant_move_read_only_seconds".into()),
                    READ_ONLY_WINDOW_BUCKETS,
                )
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); ours then still renders
            // whatever is recorded through it, which is nothing, rather than crashing the process.
            let _ = metrics::set_global_recorder(recorder);
            describe_metrics();
            handle
        })
        .clone()
}

/// Runs the recorder's housekeeping (histogram bucket rotation) and samples the process's resources until the
/// token is cancelled.
pub async fn run_metrics_upkeep(
    handle: PrometheusHandle,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                handle.run_upkeep();
                process::record();
            }
        }
    }
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "tenant_move_read_only_seconds",
        Unit::Seconds,
        "How long a tenant being moved to another database server could not be written to"
    );
    describe_counter!(
        "tenant_moves_total",
        "Tenant moves between database servers that ended, by outcome (succeeded, failed, aborted)"
    );
    describe_counter!(
        "jobs_deferred_total",
        "Job attempts put off without counting (their tenant database was read-only during a move), by kind"
    );
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by method, route template and status"
    );
    describe_gauge!(
        "http_requests_in_flight",
        "HTTP requests being handled right now"
    );
    describe_counter!(
        "http_connections_refused_total",
        "Connections closed at once on accept, by reason (per_ip_limit)"
    );
    describe_counter!(
        "http_connections_closed_total",
        "Connections closed for the client's slowness, by reason (header_timeout)"
    );
    describe_counter!(
        "webhook_payloads_repaired_total",
        "Webhook deliveries whose JSON jsonb cannot hold was stored repaired (raw bytes kept), by provider"
    );
    describe_counter!(
        "crm_proxy_requests_total",
        "Requests to /crm/*, by tenant plan and the status answered (Twenty's or the proxy's own)"
    );
    describe_histogram!(
        "crm_proxy_upstream_duration_seconds",
        Unit::Seconds,
        "Time to Twenty's response headers through /crm/*, by tenant plan and status class"
    );
    describe_counter!(
        "rate_limit_decisions_total",
        "Rate limit checks, by scope (tenant, ip, global), rule (plan or route rule) and outcome"
    );
    describe_counter!(
        "rate_limit_fallback_total",
        "Rate limit checks decided in process because Redis was unavailable or slow"
    );
    describe_gauge!(
        "rate_limit_redis_unavailable",
        "1 while the rate limiter cannot reach Redis and each process enforces its local share"
    );
    describe_counter!(
        "jobs_enqueued_total",
        "Jobs inserted into the queue, by kind"
    );
    describe_counter!("jobs_started_total", "Job attempts started, by kind");
    describe_counter!(
        "jobs_succeeded_total",
        "Job attempts that succeeded, by kind"
    );
    describe_counter!(
        "jobs_failed_total",
        "Job attempts that failed (including panics and lost leases), by kind"
    );
    describe_counter!(
        "jobs_retried_total",
        "Failed attempts scheduled for a retry, by kind"
    );
    describe_counter!(
        "jobs_discarded_total",
        "Jobs given up on after their last attempt, by kind"
    );
    describe_histogram!(
        "job_duration_seconds",
        Unit::Seconds,
        "Job attempt duration, by kind and outcome"
    );
    describe_gauge!(
        "jobs_queue_depth",
        "Jobs in the queue, by state (refreshed periodically)"
    );
    describe_gauge!(
        "jobs_due",
        "Jobs due to run and waiting for a worker, by kind (refreshed periodically)"
    );
    describe_gauge!(
        "jobs_oldest_due_age_seconds",
        Unit::Seconds,
        "How long the oldest due job of each kind has waited for a worker (0 when none)"
    );
    describe_gauge!(
        "jobs_longest_running_seconds",
        Unit::Seconds,
        "How long the longest running attempt of each kind has run (0 when none)"
    );
    describe_gauge!(
        "tenants",
        "Tenants in the registry, by status (refreshed periodically)"
    );
    describe_gauge!(
        "salla_stores",
        "Salla stores, by status; installed stores without tokens count as needs_reinstall"
    );
    describe_gauge!(
        "redis_up",
        "1 when this replica's last PING to Redis answered in time, 0 when not (absent without Redis)"
    );
    describe_gauge!(
        "tenant_db_connections_budget",
        "tenancy.pools.total_connections: tenant database connections this replica may hold"
    );
    describe_gauge!(
        "tenant_db_connections_reserved",
        "Part of the connection budget reserved by resident tenant pools"
    );
    describe_gauge!(
        "process_cpu_seconds_total",
        Unit::Seconds,
        "User and system CPU time this process has used (a running total)"
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of this process"
    );
    describe_gauge!(
        "process_virtual_memory_bytes",
        Unit::Bytes,
        "Virtual memory of this process"
    );
    describe_gauge!("process_threads", "Threads of this process");
    describe_gauge!("process_open_fds", "Open file descriptors of this process");
    describe_gauge!(
        "process_max_fds",
        "Soft limit of open file descriptors of this process"
    );
    describe_gauge!(
        "process_start_time_seconds",
        Unit::Seconds,
        "Start time of this process since the Unix epoch"
    );
}
