//! `[log]`: the level filter and the output format, with their validation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogConfig {
    pub(super) fn validate(&self, problem: &mut impl FnMut(&str, String, &str)) {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            problem(
                "log.level",
                format!("{:?} is not a valid filter", self.level),
                "a level (error, warn, info, debug, trace) or directives like \"info,wosool=debug\"",
            );
        }
    }
}
