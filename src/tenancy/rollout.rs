//! One piece of work run over many tenants: fleet migrations (`wosool migrate tenants`) and the CRM data-model
//! rollout (`wosool crm apply-model`). At most `concurrency` tenants at a time, progress reported as each one
//! finishes, and one failing tenant never stops the others. A tenant whose task panics is a failure in the
//! report like any other (never silently missing from it).

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::TenantId;

/// One tenant to run the work on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Target {
    #[sqlx(rename = "id")]
    pub tenant: TenantId,
    pub slug: String,
}

/// Progress of a rollout, reported as it happens. `target` is the version being rolled out (a tenant schema
/// version, a data-model version).
#[derive(Debug, Clone)]
pub enum RolloutEvent<T> {
    Started {
        total: usize,
        target: i64,
    },
    Succeeded {
        done: usize,
        total: usize,
        tenant: TenantId,
        slug: String,
        output: T,
    },
    Failed {
        done: usize,
        total: usize,
        tenant: TenantId,
        slug: String,
        error: String,
    },
}

/// What a rollout came to. Failed tenants are retried by the next run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolloutReport {
    pub target: i64,
    pub succeeded: usize,
    pub failed: Vec<(TenantId, String)>,
}

/// Runs `work` on every target, `concurrency` at a time, calling `progress` for each event. A tenant's error
/// is reported (and kept in the report) as its message.
pub async fn run<T, E, F, Fut>(
    targets: Vec<Target>,
    target: i64,
    concurrency: usize,
    work: F,
    progress: impl Fn(RolloutEvent<T>),
) -> RolloutReport
where
    T: Send + 'static,
    E: Display + Send + 'static,
    F: Fn(Target) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let total = targets.len();
    progress(RolloutEvent::Started { total, target });
    let mut report = RolloutReport {
        target,
        ..RolloutReport::default()
    };
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    // Which tenant each task runs, so that a panicked task is reported against its tenant.
    let mut running: HashMap<tokio::task::Id, Target> = HashMap::new();
    let mut finish = |joined: Result<(tokio::task::Id, Result<T, E>), tokio::task::JoinError>,
                      running: &mut HashMap<tokio::task::Id, Target>| {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result.map_err(|e| e.to_string())),
            Err(error) => (error.id(), Err(format!("the task failed: {error}"))),
        };
        let Some(Target { tenant, slug }) = running.remove(&id) else {
            return;
        };
        let done = report.succeeded + report.failed.len() + 1;
        progress(match result {
            Ok(output) => {
                report.succeeded += 1;
                RolloutEvent::Succeeded {
                    done,
                    total,
                    tenant,
                    slug,
                    output,
                }
            }
            Err(error) => {
                report.failed.push((tenant, error.clone()));
                RolloutEvent::Failed {
                    done,
                    total,
                    tenant,
                    slug,
                    error,
                }
            }
        });
    };
    for target in targets {
        let permit = limit.clone().acquire_owned().await;
        let task = work(target.clone());
        let handle = tasks.spawn(async move {
            let _permit = permit;
            task.await
        });
        running.insert(handle.id(), target);
        // Report finished ones as we go, so progress shows while work continues.
        while let Some(joined) = tasks.try_join_next_with_id() {
            finish(joined, &mut running);
        }
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        finish(joined, &mut running);
    }
    report
}

/// The line the CLI prints for each event; `started` phrases the first one from the tenant count and the
/// target version.
pub fn progress_line<T: Display>(
    event: &RolloutEvent<T>,
    started: impl Fn(usize, i64) -> String,
) -> String {
    match event {
        RolloutEvent::Started { total, target } => started(*total, *target),
        RolloutEvent::Succeeded {
            done,
            total,
            slug,
            output,
            ..
        } => format!("[{done}/{total}] {slug}: ok ({output})"),
        RolloutEvent::Failed {
            done,
            total,
            slug,
            error,
            ..
        } => format!("[{done}/{total}] {slug}: FAILED: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target {
                tenant: TenantId::new(),
                slug: format!("t{i}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_panicking_tenant_is_a_failure_in_the_report_and_the_others_run() {
        let targets = targets(5);
        let panicking = targets[2].tenant;
        let events = Mutex::new(Vec::new());
        let report = run(
            targets.clone(),
            7,
            2,
            |target| async move {
                if target.slug == "t2" {
                    panic!("boom");
                }
                if target.slug == "t3" {
                    return Err("refused".to_owned());
                }
                Ok(target.slug.len())
            },
            |event| events.lock().unwrap().push(event),
        )
        .await;
        assert_eq!((report.target, report.succeeded), (7, 3));
        let mut failed: Vec<TenantId> = report.failed.iter().map(|f| f.0).collect();
        failed.sort();
        let mut expected = vec![panicking, targets[3].tenant];
        expected.sort();
        assert_eq!(failed, expected);
        let panic = report.failed.iter().find(|f| f.0 == panicking).unwrap();
        assert!(panic.1.contains("panicked"), "{}", panic.1);
        let events = events.into_inner().unwrap();
        assert!(matches!(
            events[0],
            RolloutEvent::Started {
                total: 5,
                target: 7
            }
        ));
        let mut done: Vec<usize> = events[1..]
            .iter()
            .map(|e| match e {
                RolloutEvent::Succeeded { done, .. } | RolloutEvent::Failed { done, .. } => *done,
                RolloutEvent::Started { .. } => panic!("started twice"),
            })
            .collect();
        done.sort_unstable();
        assert_eq!(done, [1, 2, 3, 4, 5], "every tenant reported once");
    }

    #[tokio::test]
    async fn no_more_than_concurrency_tenants_run_at_once() {
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let report = run(
            targets(12),
            1,
            3,
            |_| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = running.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(now, SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, SeqCst);
                    Ok::<_, std::convert::Infallible>(())
                }
            },
            |_: RolloutEvent<()>| {},
        )
        .await;
        assert_eq!(report.succeeded, 12);
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak {peak}");
    }

    #[test]
    fn progress_lines_name_the_tenant_and_the_outcome() {
        let tenant = TenantId::new();
        let ok = RolloutEvent::Succeeded {
            done: 1,
            total: 2,
            tenant,
            slug: "acme".into(),
            output: "version 3",
        };
        assert_eq!(
            progress_line(&ok, |_, _| String::new()),
            "[1/2] acme: ok (version 3)"
        );
        let failed: RolloutEvent<&str> = RolloutEvent::Failed {
            done: 2,
            total: 2,
            tenant,
            slug: "acme".into(),
            error: "no".into(),
        };
        assert_eq!(
            progress_line(&failed, |_, _| String::new()),
            "[2/2] acme: FAILED: no"
        );
    }
}
