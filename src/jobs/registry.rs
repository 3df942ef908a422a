use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::job::{Job, JobContext, JobError, NewJob};

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;
type ErasedHandler = Arc<dyn Fn(JobContext, serde_json::Value) -> HandlerFuture + Send + Sync>;
type PayloadCheck = fn(&serde_json::Value) -> Result<(), serde_json::Error>;

#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) run: ErasedHandler,
    check: PayloadCheck,
}

/// A job enqueued once per `interval` across every worker replica.
#[derive(Debug, Clone)]
pub struct PeriodicJob {
    pub name: String,
    pub interval: Duration,
    pub job: NewJob,
}

/// Job kinds this process can run, and the periodic schedules it maintains. Built once at startup.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Handler>,
    periodic: Vec<PeriodicJob>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `J::KIND`. The payload is decoded into `J` before the handler runs; a payload
    /// that does not decode fails the job permanently (no retry can fix it).
    ///
    /// # Panics
    /// If the kind is registered twice: a startup wiring bug, not a runtime condition.
    pub fn register<J, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        J: Job,
        F: Fn(JobContext, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run: ErasedHandler = Arc::new(move |ctx, payload| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let payload: J = serde_json::from_value(payload).map_err(|e| {
                    JobError::permanent(format!("payload does not match {}: {e}", J::KIND))
                })?;
                handler(ctx, payload).await
            })
        });
        let check: PayloadCheck = |value| serde_json::from_value::<J>(value.clone()).map(drop);
        let previous = self
            .handlers
            .insert(J::KIND.to_string(), Handler { run, check });
        assert!(previous.is_none(), "job kind {} registered twice", J::KIND);
        self
    }

    /// Adds a periodic schedule. Its job's kind must have a handler (checked when the worker starts).
    pub fn periodic(
        &mut self,
        name: impl Into<String>,
        interval: Duration,
        job: NewJob,
    ) -> &mut Self {
        self.periodic.push(PeriodicJob {
            name: name.into(),
            interval,
            job,
        });
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    pub fn periodic_jobs(&self) -> &[PeriodicJob] {
        &self.periodic
    }

    pub(crate) fn handler(&self, kind: &str) -> Option<&Handler> {
        self.handlers.get(kind)
    }

    /// Whether `payload` would decode for `kind` (admin enqueue validates before inserting).
    pub fn check_payload(
        &self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Option<Result<(), serde_json::Error>> {
        self.handlers.get(kind).map(|h| (h.check)(payload))
    }
}
