//! The `monitoring` profile's configuration (deploy/monitoring/): checked with the real tools scripts/test
//! installs (promtool, amtool, a real Prometheus scraping an in-process app), against the metrics the binary
//! exports, and against the runbooks (docs/runbooks.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml_ng::Value;

use crate::helpers::{closed_port, eventually, spawn_app_with};

/// Metrics of other programs Prometheus scrapes: its own `up`, node-exporter's `node_*`.
const EXPORTER_SIDE: &[&str] = &["up"];
const EXPORTER_SIDE_PREFIXES: &[&str] = &["node_"];

/// Metrics the binary emits only when talking to Salla, Twenty or Clerk, or under conditions the scrape test does
/// not create (a full connection budget, a slow client, Redis down). Each is asserted by the area's own tests;
/// here the test checks that the source really emits each one through a `metrics` macro, so a renamed metric
/// cannot hide behind this list.
const EMITTED_UNDER_CONDITIONS: &[&str] = &[
    "http_connections_refused_total",
    "http_connections_closed_total",
    "rate_limit_fallback_total",
    "crm_proxy_requests_total",
    "crm_proxy_upstream_duration_seconds",
    "crm_sync_lag_seconds",
    "crm_sync_pending",
    "crm_sync_records_total",
    "crm_sync_requests_total",
    "crm_instance_workspaces",
    "crm_instance_workspace_cap",
    "crm_instance_room",
    "crm_workspaces_waiting_for_capacity",
    "twenty_requests_total",
    "salla_webhooks_total",
    "salla_import_items_total",
    "salla_import_items_skipped_total",
    "salla_order_details_total",
    "salla_limiter_deferred_total",
    "salla_limiter_wait_seconds",
    "salla_token_refreshes_total",
    "salla_api_requests_total",
    "salla_api_request_duration_seconds",
    "upstream_requests_total",
    "clerk_session_verifications_total",
    // Backups, restore drills, notifications and tenant moves: emitted when those run.
    "backup_last_success_timestamp_seconds",
    "backup_runs_total",
    "backup_failures_total",
    "backup_duration_seconds",
    "backup_bytes_total",
    "backup_tenants_failing",
    "backup_restore_drill_total",
    "tenant_moves_total",
    "tenant_move_read_only_seconds",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is YAML: {e}"))
}

/// A tool's path from the variable scripts/test exports.
fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by scripts/test"))
}

/// Runs a tool; panics with its output unless it exits 0. Returns stdout and stderr.
fn run(var: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(tool(var))
        .args(args)
        .current_dir(repo(""))
        .output()
        .unwrap_or_else(|e| panic!("{var}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{var} {args:?} failed:\n{text}");
    text
}

const RULES: [&str; 2] = [
    "deploy/monitoring/rules/recording.yml",
    "deploy/monitoring/rules/alerts.yml",
];

/// Every rule of a rules file: (`alert` or `record` name, the rule).
fn rules(path: &str) -> Vec<(String, Value)> {
    let file = yaml(path);
    let mut out = Vec::new();
    for group in file["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .expect("alert or record");
            out.push((name.to_owned(), rule.clone()));
        }
    }
    out
}

fn alerts() -> Vec<(String, Value)> {
    let alerts: Vec<_> = rules("deploy/monitoring/rules/alerts.yml")
        .into_iter()
        .filter(|(_, r)| r["alert"].is_string())
        .collect();
    assert!(alerts.len() >= 12, "{} alerts", alerts.len());
    alerts
}

#[test]
fn promtool_accepts_the_prometheus_config_and_the_rules() {
    let out = run(
        "WOSOOL_TEST_PROMTOOL",
        &["check", "config", "deploy/monitoring/prometheus.yml"],
    );
    assert!(out.contains("SUCCESS: 2 rule files found"), "{out}");
    let mut args = vec!["check", "rules"];
    args.extend(RULES);
    run("WOSOOL_TEST_PROMTOOL", &args);
}

#[test]
fn the_alert_unit_tests_pass_and_cover_every_alert_firing() {
    run(
        "WOSOOL_TEST_PROMTOOL",
        &["test", "rules", "deploy/monitoring/rules/alerts_test.yml"],
    );
    let tests = yaml("deploy/monitoring/rules/alerts_test.yml");
    let rule_files: Vec<&str> = tests["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rule_files, ["alerts.yml", "recording.yml"]);
    let mut firing = BTreeSet::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let fires = case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty());
            if fires {
                firing.insert(case["alertname"].as_str().unwrap().to_owned());
            }
        }
    }
    for (alert, _) in alerts() {
        assert!(
            firing.contains(&alert),
            "alerts_test.yml has no case where {alert} fires"
        );
    }
}

/// GitHub's anchor of a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The `## ` sections of docs/runbooks.md: anchor → body.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = read("docs/runbooks.md");
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((a, body)) = current.take() {
                sections.insert(a, body);
            }
            current = Some((anchor(heading), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((a, body)) = current {
        sections.insert(a, body);
    }
    sections
}

#[test]
fn every_alert_links_to_its_runbook_section_and_every_section_to_an_alert() {
    let sections = runbook_sections();
    let mut linked = BTreeSet::new();
    for (alert, rule) in alerts() {
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert} has a runbook_url"));
        let (doc, target) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{alert}: {url}"));
        assert_eq!(doc, "docs/runbooks.md", "{alert}");
        assert_eq!(
            target,
            alert.to_lowercase(),
            "{alert}: the anchor is its name"
        );
        let body = sections
            .get(target)
            .unwrap_or_else(|| panic!("{alert}: docs/runbooks.md has no section #{target}"));
        for part in [
            "**What it means.**",
            "**Check.**",
            "**Fix.**",
            "**Escalate**",
        ] {
            assert!(body.contains(part), "{alert}'s runbook lacks {part}");
        }
        for key in ["summary", "description"] {
            assert!(rule["annotations"][key].is_string(), "{alert}: {key}");
        }
        assert!(
            ["critical", "warning", "info"].contains(&rule["labels"]["severity"].as_str().unwrap()),
            "{alert}: severity"
        );
        linked.insert(target.to_owned());
    }
    let stale: Vec<_> = sections.keys().filter(|s| !linked.contains(*s)).collect();
    assert!(
        stale.is_empty(),
        "runbook sections without an alert: {stale:?}"
    );
    // Links between runbooks (`](#anchor)`) land on a section.
    let text = read("docs/runbooks.md");
    for link in text.split("](#").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(sections.contains_key(target), "dangling link #{target}");
    }
}

#[test]
fn amtool_accepts_the_alertmanager_config_and_the_documented_receivers() {
    let out = run(
        "WOSOOL_TEST_AMTOOL",
        &["check-config", "deploy/monitoring/alertmanager.yml"],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let config = yaml("deploy/monitoring/alertmanager.yml");
    assert_eq!(config["route"]["receiver"], "operators");
    assert_eq!(config["receivers"][0]["name"], "operators");

    // docs/monitoring.md's example replaces `global` and `receivers` of the shipped file: the result must load.
    let docs = read("docs/monitoring.md");
    let marker = docs
        .find("<!-- alertmanager-receivers-example")
        .expect("the example is marked");
    let block = &docs[marker..];
    let start = block.find("```yaml\n").unwrap() + "```yaml\n".len();
    let example: Value =
        serde_yaml_ng::from_str(&block[start..start + block[start..].find("```").unwrap()])
            .expect("the example is YAML");
    let mut filled = config.clone();
    filled["global"] = example["global"].clone();
    filled["receivers"] = example["receivers"].clone();
    assert!(
        filled["receivers"][0]["email_configs"].is_sequence()
            && filled["receivers"][0]["webhook_configs"].is_sequence(),
        "the example shows e-mail and a webhook"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&filled).unwrap()).unwrap();
    run(
        "WOSOOL_TEST_AMTOOL",
        &["check-config", path.to_str().unwrap()],
    );
}

// --- metric names in PromQL -------------------------------------------------------------------------------

/// PromQL words that are not metric names: aggregations (which may precede `by (...)`), keywords.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];
const KEYWORDS: &[&str] = &["and", "or", "unless", "offset", "bool", "inf", "nan"];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects. A small scanner rather than a parser: it skips strings, label
/// matchers `{…}`, ranges `[…]`, numbers and durations, label lists after `by`/`on`/…, and any identifier
/// followed by `(` (a function) — what remains are metric names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| -> usize {
        let mut j = i + 1;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_to(i, c);
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c.is_ascii_digit() || c == '$' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "._$".contains(chars[i]))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if chars.get(after) == Some(&'(') {
                    i = skip_to(after, ')');
                }
            } else if KEYWORDS.contains(&word.as_str()) {
                if word == "offset" {
                    // The duration after it.
                    i = after;
                    while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                }
            } else if AGGREGATIONS.contains(&word.as_str()) || chars.get(after) == Some(&'(') {
                // A function or an aggregation.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn the_promql_scanner_finds_metric_names_only() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"/x|y", a="}"}[$__rate_interval])))
           / on (job) group_left max without (instance) (up offset 1h) > bool 24 * 3600 and wosool:tenants:by_status"#,
    );
    let expected: BTreeSet<String> = [
        "http_request_duration_seconds_bucket",
        "up",
        "wosool:tenants:by_status",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
}

/// Every PromQL expression of the dashboards: (dashboard file, panel title, expr).
fn dashboard_exprs() -> Vec<(String, String, String)> {
    let dir = repo("deploy/monitoring/grafana/dashboards");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name} is JSON: {e}"));
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("a PromQL target");
                out.push((
                    name.clone(),
                    panel["title"].as_str().unwrap().to_owned(),
                    expr.to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn dashboards_are_provisioned_unique_and_their_queries_parse() {
    let datasource = yaml("deploy/monitoring/grafana/provisioning/datasources/prometheus.yml");
    let uid = datasource["datasources"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    let provider = yaml("deploy/monitoring/grafana/provisioning/dashboards/wosool.yml");
    assert_eq!(
        provider["providers"][0]["options"]["path"],
        "/etc/grafana/dashboards"
    );

    let mut uids = BTreeSet::new();
    let dir = repo("deploy/monitoring/grafana/dashboards");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Json =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "uids are unique"
        );
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "{path:?}: panel ids unique"
            );
            if panel["type"] != "row" {
                assert_eq!(
                    panel["datasource"]["uid"],
                    uid.as_str(),
                    "{path:?}: {}",
                    panel["title"]
                );
            }
        }
    }
    for topic in [
        "fleet",
        "http",
        "jobs",
        "integrations",
        "resources",
        "backups",
    ] {
        assert!(
            uids.contains(&format!("wosool-{topic}")),
            "a {topic} dashboard"
        );
    }

    // Every query, with Grafana's variables given values, as a recording rule: promtool parses them all.
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 50, "{} queries", exprs.len());
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, _, expr))| {
            serde_json::json!({
                "record": format!("dashboard:query:{i}"),
                "expr": expr.replace("$__rate_interval", "5m").replace("$__interval", "1m"),
            })
        })
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboards.yml");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    run(
        "WOSOOL_TEST_PROMTOOL",
        &["check", "rules", path.to_str().unwrap()],
    );
}

/// Metric names in a Prometheus text exposition, with each histogram's and summary's base name.
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split_whitespace().next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// `name` is emitted by a `metrics` macro somewhere under src/.
fn emitted_in_source(name: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                return walk(&path, needle);
            }
            if path.extension().is_none_or(|e| e != "rs") {
                return false;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            text.match_indices(needle).any(|(at, _)| {
                let before = &text[at.saturating_sub(60)..at];
                ["counter!(", "gauge!(", "histogram!("]
                    .iter()
                    .any(|m| before.contains(m))
            })
        })
    }
    walk(&repo("src"), &format!("\"{name}\""))
}

/// The dashboards and the rules query only metrics the binary exports: those an in-process app (api and
/// worker) shows on its metrics listener after provisioning a tenant and serving requests, plus the listed
/// exceptions (other exporters, other branches, conditions the test does not create).
#[tokio::test]
async fn dashboards_and_rules_query_only_metrics_the_binary_exports() {
    let metrics_port = closed_port();
    let app = spawn_app_with(wosool::Role::All, |env| {
        env.push((
            "WOSOOL_SERVER__METRICS_LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ));
        env.push(("WOSOOL_JOBS__STATS_INTERVAL_SECS".into(), "1".into()));
        // Idle tenant pools are closed within a second (pool evictions).
        env.push((
            "WOSOOL_TENANCY__POOLS__IDLE_TIMEOUT_SECS".into(),
            "1".into(),
        ));
    })
    .await;
    // Provisioning, a tenant request (a tenant pool), an operator request, a refused webhook (Salla is not
    // configured here), a tenant deletion.
    let tenant = app.register_ready("Monitoring Store").await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let key = app.api_key(&tenant_id).await;
    let stats = app
        .get("/api/stats")
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(stats.status().is_success(), "{}", stats.status());
    app.admin_get("/api/admin/jobs").send().await.unwrap();
    let refused = app
        .client
        .post(app.url("/webhooks/salla"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error() || refused.status().is_server_error());
    let scrape = || async {
        app.client
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    };
    // The pool is closed once idle, then the tenant deleted; the sampled gauges appear within an interval.
    eventually("the idle pool evicted", Duration::from_secs(20), || async {
        scrape()
            .await?
            .contains("tenant_pool_evictions_total")
            .then_some(())
    })
    .await;
    app.admin_delete(&format!("/api/admin/tenants/{tenant_id}"))
        .send()
        .await
        .unwrap();
    let text = eventually(
        "sampled gauges and deletion steps",
        Duration::from_secs(30),
        || async {
            let text = scrape().await?;
            [
                "tenant_deletion_steps_total",
                "jobs_oldest_due_age_seconds",
                "process_resident_memory_bytes",
                "salla_stores",
                "redis_up",
            ]
            .iter()
            .all(|m| text.contains(&format!("\n{m}")))
            .then_some(text)
        },
    )
    .await;
    let exported = exposed_names(&text);

    let recorded: BTreeSet<String> = rules("deploy/monitoring/rules/recording.yml")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for name in EMITTED_UNDER_CONDITIONS {
        assert!(
            emitted_in_source(name),
            "{name} is listed as emitted but src/ never emits it"
        );
        assert!(
            !exported.contains(*name),
            "{name} is scraped: drop it from EMITTED_UNDER_CONDITIONS"
        );
    }
    let known = |name: &str| {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        [name, base].iter().any(|n| {
            exported.contains(*n)
                || EXPORTER_SIDE.contains(n)
                || EMITTED_UNDER_CONDITIONS.contains(n)
        }) || EXPORTER_SIDE_PREFIXES.iter().any(|p| name.starts_with(p))
    };

    let mut queries: Vec<(String, String)> = dashboard_exprs()
        .into_iter()
        .map(|(file, title, expr)| (format!("{file}: {title}"), expr))
        .collect();
    for path in RULES {
        for (name, rule) in rules(path) {
            queries.push((
                format!("{path}: {name}"),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in &queries {
        for name in metric_names(expr) {
            if name.contains(':') {
                assert!(
                    recorded.contains(&name),
                    "{place}: {name} is not a recording rule"
                );
            } else if !known(&name) {
                unknown.push(format!("{place}: {name}"));
            }
            used.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "queries use metrics nothing exports:\n{}",
        unknown.join("\n")
    );
    // The dashboards cover what the brief asks for, including the metrics added for them.
    for name in [
        "tenants",
        "tenant_provisioning_duration_seconds_bucket",
        "jobs_oldest_due_age_seconds",
        "jobs_longest_running_seconds",
        "jobs_due",
        "webhook_deliveries_total",
        "salla_stores",
        "crm_sync_lag_seconds",
        "tenant_db_connections_budget",
        "tenant_db_connections_reserved",
        "redis_up",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "backup_last_success_timestamp_seconds",
        "node_filesystem_avail_bytes",
    ] {
        assert!(used.contains(name), "no dashboard or rule uses {name}");
    }
}

// --- a real Prometheus ------------------------------------------------------------------------------------

/// A Prometheus process of one test: own data directory, loopback port; killed by pid when dropped.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(config: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, serde_yaml_ng::to_string(config).unwrap()).unwrap();
        let port = closed_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = tokio::process::Command::new(tool("WOSOOL_TEST_PROMETHEUS"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Json> {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.url), query).unwrap();
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let body: Json = response.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// The samples of an instant query.
    async fn query(&self, promql: &str) -> Vec<Json> {
        self.get("/api/v1/query", &[("query", promql)])
            .await
            .and_then(|d| d["result"].as_array().cloned())
            .unwrap_or_default()
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        self.child
            .kill()
            .await
            .unwrap_or_else(|e| panic!("kill prometheus {pid}: {e}"));
    }
}

/// deploy/monitoring/prometheus.yml with the jobs `wosool-api` and `wosool-worker` given static targets instead
/// of Docker's DNS (after checking that DNS discovery asks for the metrics port), the other jobs dropped,
/// intervals of a second and the rule files by absolute path.
fn test_config(api: &[String], worker: &[String]) -> Value {
    let mut config = yaml("deploy/monitoring/prometheus.yml");
    for key in ["scrape_interval", "evaluation_interval", "scrape_timeout"] {
        config["global"][key] = Value::from("1s");
    }
    config.as_mapping_mut().unwrap().remove("alerting");
    let files: Vec<Value> = config["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| {
            Value::from(
                repo(&format!("deploy/monitoring/{}", f.as_str().unwrap()))
                    .display()
                    .to_string(),
            )
        })
        .collect();
    config["rule_files"] = Value::Sequence(files);
    let jobs = [("wosool-api", api), ("wosool-worker", worker)].map(|(name, targets)| {
        let mut job = config["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|job| job["job_name"] == name)
            .unwrap_or_else(|| panic!("a {name} job"))
            .clone();
        assert_eq!(job["dns_sd_configs"][0]["port"].as_u64(), Some(9100));
        let job_map = job.as_mapping_mut().unwrap();
        job_map.remove("dns_sd_configs");
        let targets: Vec<Value> = targets.iter().map(|t| Value::from(t.as_str())).collect();
        let mut static_config = serde_yaml_ng::Mapping::new();
        static_config.insert(Value::from("targets"), Value::Sequence(targets));
        job_map.insert(
            Value::from("static_configs"),
            Value::Sequence(vec![Value::Mapping(static_config)]),
        );
        job
    });
    config["scrape_configs"] = Value::Sequence(jobs.to_vec());
    config
}

/// A real Prometheus, configured from deploy/monitoring/ (its jobs and its rules), scrapes the metrics listeners
/// of an in-process api and worker, records a rule from what it scraped, and evaluates the alerts: a second
/// worker replica that is gone shows as a pending `WosoolInstanceDown` with its instance.
#[tokio::test]
async fn a_real_prometheus_scrapes_the_metrics_listener_and_evaluates_the_rules() {
    let prefix = crate::helpers::new_key_prefix();
    let (api_port, worker_port, gone_port) = (closed_port(), closed_port(), closed_port());
    let listen = |port: u16| {
        (
            "WOSOOL_SERVER__METRICS_LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        )
    };
    let stats = || {
        (
            "WOSOOL_JOBS__STATS_INTERVAL_SECS".to_owned(),
            "1".to_owned(),
        )
    };
    let api = spawn_app_with(wosool::Role::All, |env| {
        env.extend([listen(api_port), stats()]);
        env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), prefix.clone()));
    })
    .await;
    let _worker =
        crate::helpers::spawn_replica(&api.database, &prefix, wosool::Role::Worker, |env| {
            env.extend([listen(worker_port), stats()]);
        })
        .await;
    api.register_ready("Scraped Store").await;
    let target = |port: u16| format!("127.0.0.1:{port}");
    let prometheus = Prometheus::start(&test_config(
        &[target(api_port)],
        &[target(worker_port), target(gone_port)],
    ))
    .await;
    let wait = Duration::from_secs(60);

    eventually(
        "Prometheus scrapes both metrics listeners",
        wait,
        || async {
            let up = prometheus.query(r#"up{job=~"wosool-.*"} == 1"#).await;
            let mut instances: Vec<&str> = up
                .iter()
                .filter_map(|s| s["metric"]["instance"].as_str())
                .collect();
            instances.sort();
            let mut expected = [target(api_port), target(worker_port)];
            expected.sort();
            (instances == expected.iter().map(String::as_str).collect::<Vec<_>>()).then_some(())
        },
    )
    .await;
    eventually(
        "the recording rule over the scraped tenants",
        wait,
        || async {
            let ready = prometheus
                .query(r#"wosool:tenants:by_status{status="ready"}"#)
                .await;
            (ready.first()?["value"][1] == "1").then_some(())
        },
    )
    .await;
    eventually("the request counter by route template", wait, || async {
        let rate = prometheus
            .query(
                r#"http_requests_total{job="wosool-api", route="/api/auth/register-organization"}"#,
            )
            .await;
        (!rate.is_empty()).then_some(())
    })
    .await;
    let alerts = eventually("WosoolInstanceDown for the gone replica", wait, || async {
        let alerts = prometheus.get("/api/v1/alerts", &[]).await?;
        let down: Vec<Json> = alerts["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "WosoolInstanceDown")
            .cloned()
            .collect();
        // Before the first scrapes the roles look absent; then only the gone replica stays down.
        (down.len() == 1 && down[0]["labels"]["instance"].is_string()).then_some(down)
    })
    .await;
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["job"], "wosool-worker", "{alert}");
    assert_eq!(
        alert["labels"]["instance"],
        target(gone_port).as_str(),
        "{alert}"
    );
    assert_eq!(alert["state"], "pending", "for: 2m has not passed: {alert}");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "docs/runbooks.md#wosoolinstancedown"
    );
    // Every rule has been evaluated without error against real data.
    let groups = eventually("every rule evaluated", wait, || async {
        let rules = prometheus.get("/api/v1/rules", &[]).await?;
        let groups = rules["groups"].as_array()?.clone();
        groups
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            })
            .then_some(groups)
    })
    .await;
    let mut evaluated = 0;
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        assert_eq!(rule["health"], "ok", "{rule}");
        evaluated += 1;
    }
    assert_eq!(
        evaluated,
        RULES.iter().map(|p| rules(p).len()).sum::<usize>(),
        "Prometheus loaded every rule"
    );
    prometheus.stop().await;
}

/// An Alertmanager process of one test, on loopback without clustering; killed by pid when dropped.
struct Alertmanager {
    child: tokio::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(config: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, serde_yaml_ng::to_string(config).unwrap()).unwrap();
        let address = format!("127.0.0.1:{}", closed_port());
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = tokio::process::Command::new(tool("WOSOOL_TEST_ALERTMANAGER"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start alertmanager");
        Self {
            child,
            address,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        self.child
            .kill()
            .await
            .unwrap_or_else(|e| panic!("kill alertmanager {pid}: {e}"));
    }
}

/// The whole path of an alert: Prometheus evaluates the shipped rules against a replica that is gone, sends
/// the alert to an Alertmanager running the shipped routing, which delivers it to the `operators` receiver
/// (here a webhook, as docs/monitoring.md shows) with its runbook link.
#[tokio::test]
async fn an_alert_reaches_the_operators_receiver_through_alertmanager() {
    // The webhook receiver: records every notification's body.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Json>::new()));
    let sink = received.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Json>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });

    // The shipped Alertmanager configuration, with the receiver filled and its waits shortened.
    let mut config = yaml("deploy/monitoring/alertmanager.yml");
    config["receivers"][0]["webhook_configs"] =
        serde_yaml_ng::from_str(&format!("[{{url: '{hook_url}', send_resolved: true}}]")).unwrap();
    for key in ["group_wait", "group_interval"] {
        config["route"][key] = Value::from("1s");
    }
    let alertmanager = Alertmanager::start(&config);

    // The shipped rules with WosoolInstanceDown's `for` dropped, so that it fires at its first evaluation.
    let dir = tempfile::tempdir().unwrap();
    let mut alerts_file = yaml("deploy/monitoring/rules/alerts.yml");
    for group in alerts_file["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            if rule["alert"] == "WosoolInstanceDown" {
                rule.as_mapping_mut().unwrap().remove("for");
            }
        }
    }
    let alerts_path = dir.path().join("alerts.yml");
    std::fs::write(
        &alerts_path,
        serde_yaml_ng::to_string(&alerts_file).unwrap(),
    )
    .unwrap();
    let gone = format!("127.0.0.1:{}", closed_port());
    let mut prometheus_config =
        test_config(std::slice::from_ref(&gone), std::slice::from_ref(&gone));
    prometheus_config["rule_files"] =
        serde_yaml_ng::from_str(&format!("['{}']", alerts_path.display())).unwrap();
    prometheus_config["alerting"] = serde_yaml_ng::from_str(&format!(
        "{{alertmanagers: [{{static_configs: [{{targets: ['{}']}}]}}]}}",
        alertmanager.address
    ))
    .unwrap();
    let prometheus = Prometheus::start(&prometheus_config).await;

    let notification = eventually(
        "the alert delivered to the operators' webhook",
        Duration::from_secs(60),
        || async {
            received
                .lock()
                .unwrap()
                .iter()
                .find(|n| n["status"] == "firing")
                .cloned()
        },
    )
    .await;
    assert_eq!(notification["receiver"], "operators", "{notification}");
    let alert = &notification["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "WosoolInstanceDown");
    assert_eq!(alert["labels"]["instance"], gone.as_str());
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "docs/runbooks.md#wosoolinstancedown"
    );
    prometheus.stop().await;
    alertmanager.stop().await;
}

/// Every admin API query the runbooks show (GET) is answered by a running app with 200 (404 for a placeholder
/// id). Their `wosool …` commands are checked with every other document's by `docs::`.
#[tokio::test]
async fn the_runbooks_admin_queries_are_real() {
    let text = read("docs/runbooks.md");
    let placeholder = |word: &str| -> String {
        match word {
            "<kind>" => "jobs.prune".into(),
            w if w.starts_with('<') => uuid::Uuid::new_v4().to_string(),
            w => w.to_owned(),
        }
    };
    let app = crate::helpers::spawn_app().await;
    let mut queries = 0;
    for line in text.lines() {
        for (at, _) in line.match_indices("\"$API/") {
            let rest = &line[at + "\"$API".len()..];
            let path = &rest[..rest.find('"').unwrap()];
            if line[..at].contains("-XPOST") {
                continue;
            }
            let (route, query) = path.split_once('?').unwrap_or((path, ""));
            let route: String = route
                .split('/')
                .map(placeholder)
                .collect::<Vec<_>>()
                .join("/");
            let query: String = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => format!("{k}={}", placeholder(v)),
                    None => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            let url = format!("/api/admin{route}?{query}");
            let status = app.admin_get(&url).send().await.unwrap().status();
            let expected = if path.split('?').next().unwrap().contains('<') {
                reqwest::StatusCode::NOT_FOUND
            } else {
                reqwest::StatusCode::OK
            };
            assert_eq!(status, expected, "docs/runbooks.md: GET {url}");
            queries += 1;
        }
    }
    assert!(queries >= 6, "{queries} queries checked");
}
