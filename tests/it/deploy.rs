//! The Dockerfile and the Dokploy compose file can't be built or started here (no Docker engine), so their
//! invariants are checked by reading them.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dokploy.yml"))
        .unwrap();
    serde_yaml_ng::from_str(&text).expect("deploy/dokploy.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service {name} exists"))
}

fn env_of(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => panic!("unexpected env value {other:?}"),
                    };
                    (k.as_str().unwrap().to_string(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_has_the_four_services_with_health_checks_and_limits() {
    let compose = compose();
    for name in ["api", "worker", "postgres", "redis"] {
        let service = service(&compose, name);
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has a health check"
        );
        assert!(
            service["deploy"]["resources"]["limits"]["memory"].is_string(),
            "{name} has a memory limit"
        );
        assert!(
            service["deploy"]["resources"]["limits"]["cpus"].is_string(),
            "{name} has a CPU limit"
        );
        assert!(service["restart"].is_string(), "{name} restarts");
    }
}

#[test]
fn api_and_worker_share_the_image_and_differ_by_role() {
    let compose = compose();
    let api = service(&compose, "api");
    let worker = service(&compose, "worker");
    assert_eq!(api["image"], worker["image"]);
    let command = |s: &Value| {
        s["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(command(api), ["serve", "--role", "api"]);
    assert_eq!(command(worker), ["serve", "--role", "worker"]);
    for s in [api, worker] {
        assert_eq!(s["healthcheck"]["test"][1], "/usr/local/bin/wosool");
        assert_eq!(s["healthcheck"]["test"][2], "health");
        for dependency in ["postgres", "redis"] {
            assert_eq!(
                s["depends_on"][dependency]["condition"], "service_healthy",
                "waits for {dependency}"
            );
        }
    }
}

#[test]
fn traefik_routes_to_the_api_only() {
    let compose = compose();
    let labels: Vec<String> = service(&compose, "api")["labels"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(labels.contains(&"traefik.enable=true".to_string()));
    assert!(
        labels
            .iter()
            .any(|l| l.contains("loadbalancer.server.port=8080"))
    );
    assert!(labels.iter().any(|l| l.contains(".rule=Host(")));
    assert!(
        service(&compose, "worker")["labels"].is_null(),
        "workers take no traffic"
    );
}

#[test]
fn postgres_and_redis_are_pinned_persistent_and_redis_never_evicts() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    let image = postgres["image"].as_str().unwrap();
    let tag = image.split(':').nth(1).expect("postgres image has a tag");
    assert!(
        tag.chars().next().unwrap().is_ascii_digit(),
        "major version pinned: {image}"
    );
    assert!(
        postgres["volumes"][0]
            .as_str()
            .unwrap()
            .ends_with(":/var/lib/postgresql/data")
    );
    let redis = service(&compose, "redis");
    let command: Vec<&str> = redis["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let policy = command
        .iter()
        .position(|a| *a == "--maxmemory-policy")
        .expect("policy set");
    assert_eq!(command[policy + 1], "noeviction");
    assert!(redis["volumes"][0].as_str().unwrap().ends_with(":/data"));
}

#[test]
fn no_secret_is_written_inline() {
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        for (key, value) in env_of(service) {
            let sensitive = ["PASSWORD", "KEY", "SECRET", "TOKEN", "DATABASE_URL"]
                .iter()
                .any(|s| key.contains(s));
            if sensitive {
                assert!(
                    value.contains("${"),
                    "{name:?}.{key} must come from a ${{VAR}}, found {value:?}"
                );
            }
        }
    }
}

#[test]
fn every_wosool_variable_is_a_real_config_key() {
    let compose = compose();
    let env: Vec<(String, String)> = compose["services"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(wosool_env)
        .collect();
    assert!(!env.is_empty());
    let keys: BTreeSet<&String> = env.iter().map(|(k, _)| k).collect();
    for key in keys {
        let pairs: Vec<(String, String)> = env.iter().filter(|(k, _)| k == key).cloned().collect();
        if let Err(error) = wosool::config::Config::load_from(None, pairs) {
            panic!("{key} in deploy/dokploy.yml is not accepted by the config loader: {error}");
        }
    }
}

#[test]
fn with_only_the_required_variables_every_integration_is_off() {
    let compose = compose();
    for name in ["api", "worker"] {
        let config = wosool::config::Config::load_from(None, wosool_env(service(&compose, name)))
            .unwrap_or_else(|e| panic!("{name}: the compose defaults load: {e}"));
        assert!(!config.clerk.enabled(), "{name}: Clerk off");
        assert!(!config.salla.enabled(), "{name}: Salla off");
        assert!(!config.crm.enabled(), "{name}: Twenty off");
        assert!(config.secrets.encryption_keys.is_empty(), "{name}");
    }
}

/// A service's `WOSOOL_*` variables as the container would see them with only the required variables set:
/// defaults taken, the admin key given a plausible shape, other required values a placeholder.
fn wosool_env(service: &Value) -> Vec<(String, String)> {
    env_of(service)
        .into_iter()
        .filter(|(key, _)| key.starts_with("WOSOOL_"))
        .map(|(key, value)| {
            let value = value.replace("${WOSOOL_ADMIN_KEY}", "\"0123456789abcdef0123\"");
            (key, regex_free_interpolate(&value))
        })
        .collect()
}

/// `${VAR:-default}` → `default`; `${VAR}` → a placeholder.
fn regex_free_interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or(rest.len() - 1);
        let inner = &rest[start + 2..end];
        out.push_str(
            inner
                .split_once(":-")
                .map(|(_, d)| d)
                .unwrap_or("placeholder"),
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn twenty_is_an_optional_profile_set_up_headless_and_multi_workspace() {
    let compose = compose();
    let profile = |name: &str| service(&compose, name)["profiles"].clone();
    for name in ["twenty", "twenty-worker", "twenty-db"] {
        assert_eq!(
            profile(name),
            serde_yaml_ng::from_str::<Value>("[twenty]").unwrap(),
            "{name} runs only with the twenty profile"
        );
    }
    for name in ["api", "worker", "postgres", "redis"] {
        assert!(profile(name).is_null(), "{name} always runs");
        assert!(
            service(&compose, name)["depends_on"]
                .get("twenty")
                .is_none(),
            "{name} must start without Twenty"
        );
    }
    let server = service(&compose, "twenty");
    let worker = service(&compose, "twenty-worker");
    assert_eq!(server["image"], worker["image"]);
    assert_eq!(worker["command"][0], "yarn");
    assert_eq!(worker["command"][1], "worker:prod");
    assert!(
        server["healthcheck"]["test"][1]
            .as_str()
            .is_some_and(|t| t.contains("/healthz")),
        "the server is probed on /healthz"
    );
    for (service, expected) in [
        (
            server,
            &[
                ("IS_MULTIWORKSPACE_ENABLED", "true"),
                ("IS_BILLING_ENABLED", "false"),
                ("IS_EMAIL_VERIFICATION_REQUIRED", "false"),
            ][..],
        ),
        (
            worker,
            &[
                ("IS_MULTIWORKSPACE_ENABLED", "true"),
                ("IS_BILLING_ENABLED", "false"),
            ][..],
        ),
    ] {
        let env = env_of(service);
        for (key, value) in expected {
            assert!(
                env.iter().any(|(k, v)| k == key && v == value),
                "{key}={value} in {env:?}"
            );
        }
        assert!(
            !env.iter().any(|(k, _)| k == "CAPTCHA_DRIVER"),
            "no captcha"
        );
        let secret = env
            .iter()
            .find(|(k, _)| k == "APP_SECRET")
            .expect("APP_SECRET");
        assert_eq!(
            secret.1, "${TWENTY_APP_SECRET}",
            "one stable secret for both"
        );
    }
    let db = service(&compose, "twenty-db")["image"].as_str().unwrap();
    assert!(
        db.starts_with("postgres:16"),
        "Twenty's database pinned: {db}"
    );
}

#[test]
fn twenty_is_pinned_to_the_tested_version_and_never_routed_publicly() {
    let compose = compose();
    let pinned = format!("twentycrm/twenty:v{}", wosool::crm::twenty::PINNED_VERSION);
    for name in ["twenty", "twenty-worker"] {
        assert_eq!(
            service(&compose, name)["image"].as_str(),
            Some(pinned.as_str()),
            "{name} runs the version the documents are checked against"
        );
    }
    let services = compose["services"].as_mapping().unwrap();
    for (name, definition) in services {
        let name = name.as_str().unwrap();
        let labels: Vec<&str> = definition["labels"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let routed = labels.iter().any(|l| l.starts_with("traefik.enable=true"))
            || labels.iter().any(|l| l.contains(".rule="));
        let on_edge = definition["networks"]
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|n| n.as_str() == Some("dokploy-network"));
        if name == "api" {
            assert!(routed && on_edge, "the API is the public entry point");
        } else {
            assert!(!routed, "{name} must not be routed publicly: {labels:?}");
            assert!(!on_edge, "{name} must not be on Traefik's network");
        }
    }
    // Twenty's own URL is internal: api and worker reach it at http://twenty:3000.
    assert_eq!(
        env_of(service(&compose, "twenty"))
            .into_iter()
            .find(|(k, _)| k == "SERVER_URL")
            .map(|(_, v)| v),
        Some("http://twenty:3000".to_owned())
    );
}

#[test]
fn api_and_worker_configure_the_same_integrations() {
    let compose = compose();
    let integrations = |name: &str| -> BTreeSet<(String, String)> {
        env_of(service(&compose, name))
            .into_iter()
            .filter(|(k, _)| {
                [
                    "WOSOOL_CLERK__",
                    "WOSOOL_SALLA__",
                    "WOSOOL_CRM__",
                    "WOSOOL_SECRETS__",
                ]
                .iter()
                .any(|p| k.starts_with(p))
            })
            .collect()
    };
    let api = integrations("api");
    assert!(
        api.iter().any(|(k, _)| k == "WOSOOL_CRM__BASE_URL")
            && api.iter().any(|(k, _)| k == "WOSOOL_SALLA__CLIENT_ID")
            && api.iter().any(|(k, _)| k == "WOSOOL_CLERK__SECRET_KEY")
            && api
                .iter()
                .any(|(k, _)| k == "WOSOOL_SECRETS__ENCRYPTION_KEYS"),
        "{api:?}"
    );
    assert_eq!(
        api,
        integrations("worker"),
        "a worker runs the same integrations' jobs"
    );
}

#[test]
fn dockerfile_is_multistage_non_root_with_binary_healthcheck() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("\nUSER wosool"), "runs as non-root");
    assert!(
        dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"health\"]"),
        "health via the binary"
    );
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/wosool\"]"),
        "exec-form entrypoint, no shell"
    );
    assert!(dockerfile.contains("EXPOSE 8080"));
    let installs_curl = dockerfile
        .lines()
        .any(|l| !l.trim_start().starts_with('#') && l.contains("curl"));
    assert!(!installs_curl, "no curl in the image");
}

/// `/metrics` is served only on the metrics listener (port 9100 of api and worker, on the internal network),
/// which no Traefik router reaches: the public API host answers 404 for it.
#[test]
fn metrics_are_served_only_on_the_internal_metrics_listener() {
    let compose = compose();
    for name in ["api", "worker"] {
        let config = wosool::config::Config::load_from(None, wosool_env(service(&compose, name)))
            .unwrap_or_else(|e| panic!("{name}: the compose defaults load: {e}"));
        let metrics = &config.server.metrics_listen;
        assert!(!metrics.is_empty(), "{name} sets server.metrics_listen");
        let port = |address: &str| address.rsplit(':').next().unwrap().to_owned();
        assert_ne!(
            port(metrics),
            port(&config.server.listen),
            "{name}: metrics on their own port"
        );
        let service = service(&compose, name);
        assert!(
            service["ports"].is_null(),
            "{name} publishes no port on the host"
        );
        let labels: Vec<&str> = service["labels"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            !labels.iter().any(|l| l.contains(&port(metrics))),
            "{name}: no Traefik label mentions the metrics port: {labels:?}"
        );
        for label in labels
            .iter()
            .filter(|l| l.contains("loadbalancer.server.port="))
        {
            assert!(
                label.ends_with(&format!("={}", port(&config.server.listen))),
                "{name}: Traefik routes the API listener only: {label}"
            );
        }
    }
}

/// What the compose settings mean at run time: with `server.metrics_listen` set, the API listener answers
/// `/metrics` with 404 and the metrics listener serves it.
#[tokio::test]
async fn with_the_compose_metrics_setting_the_public_listener_has_no_metrics() {
    let compose = compose();
    let set = wosool_env(service(&compose, "api"))
        .into_iter()
        .any(|(k, _)| k == "WOSOOL_SERVER__METRICS_LISTEN");
    assert!(set, "the api service sets WOSOOL_SERVER__METRICS_LISTEN");
    let metrics_port = crate::helpers::closed_port();
    let app = crate::helpers::spawn_app_with(wosool::Role::Api, |env| {
        env.push((
            "WOSOOL_SERVER__METRICS_LISTEN".into(),
            format!("127.0.0.1:{metrics_port}"),
        ));
    })
    .await;
    let public = app.get("/metrics").send().await.unwrap();
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
    let body: serde_json::Value = public.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert_eq!(
        app.get("/health/live").send().await.unwrap().status(),
        reqwest::StatusCode::OK
    );
    let internal = app
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(internal.status(), reqwest::StatusCode::OK);
}

#[test]
fn registration_is_off_unless_the_operator_opens_it() {
    let compose = compose();
    let config = wosool::config::Config::load_from(None, wosool_env(service(&compose, "api")))
        .expect("the compose defaults load");
    assert_eq!(
        config.tenancy.self_service,
        wosool::config::SelfService::Off
    );
}

/// The image builds from what the crate compiles in: every directory `include_bytes!`, askama and
/// `sqlx::migrate!` read is copied into the build stage, and the dependency layer's stubs cover every
/// `[[bench]]` of Cargo.toml (cargo refuses a manifest whose targets are missing).
#[test]
fn dockerfile_copies_everything_the_crate_compiles_in_and_stubs_every_bench() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    for dir in ["src", "migrations", "config", "templates", "assets"] {
        assert!(
            std::path::Path::new(&format!("{root}/{dir}")).is_dir(),
            "{dir} exists"
        );
        assert!(
            dockerfile.contains(&format!("\nCOPY {dir} ./{dir}\n")),
            "the build stage copies {dir}/"
        );
    }
    let manifest: toml::Table = std::fs::read_to_string(format!("{root}/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut benches: Vec<String> = manifest["bench"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    benches.sort();
    // Run the Dockerfile's own stub loop (its command substitution) against Cargo.toml.
    let start = dockerfile.find("for bench in $(").expect("a stub loop") + "for bench in $(".len();
    let end = start
        + dockerfile[start..]
            .find("); do")
            .expect("end of the substitution");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&dockerfile[start..end])
        .current_dir(root)
        .output()
        .unwrap();
    let mut stubbed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    stubbed.sort();
    assert_eq!(stubbed, benches, "stubs for exactly the manifest's benches");
}

const MONITORING: [&str; 4] = ["prometheus", "alertmanager", "grafana", "node-exporter"];

#[test]
fn monitoring_is_an_optional_profile_with_health_checks_and_limits() {
    let compose = compose();
    for name in MONITORING {
        let service = service(&compose, name);
        assert_eq!(
            service["profiles"],
            serde_yaml_ng::from_str::<Value>("[monitoring]").unwrap(),
            "{name} runs only with the monitoring profile"
        );
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has a health check"
        );
        assert!(
            service["deploy"]["resources"]["limits"]["memory"].is_string(),
            "{name} has a memory limit"
        );
        assert!(service["restart"].is_string(), "{name} restarts");
        // Their pages are for operators: loopback of the host at most, never Traefik (checked for every
        // service in `twenty_is_pinned_to_the_tested_version_and_never_routed_publicly`).
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    for name in ["api", "worker", "postgres", "redis"] {
        for dependency in MONITORING {
            assert!(
                service(&compose, name)["depends_on"]
                    .get(dependency)
                    .is_none(),
                "{name} must start without {dependency}"
            );
        }
    }
    let env = env_of(service(&compose, "grafana"));
    assert!(
        env.iter()
            .any(|(k, v)| k == "GF_SECURITY_ADMIN_PASSWORD" && v == "${GRAFANA_ADMIN_PASSWORD}"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|(k, v)| k == "GF_USERS_ALLOW_SIGN_UP" && v == "false")
    );
}

/// Every image other than Wosool's own names an exact version: a tag with a digit, never `latest`.
#[test]
fn every_third_party_image_is_pinned() {
    let compose = compose();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let image = service["image"].as_str().unwrap();
        if ["api", "worker"].contains(&name) {
            assert!(image.starts_with("${WOSOOL_IMAGE"), "{name}: {image}");
            continue;
        }
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{name}: {image} has a tag"));
        assert!(
            tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
            "{name}: {image} is not pinned"
        );
    }
    for (name, minimum_dots) in [
        ("prometheus", 2),
        ("alertmanager", 2),
        ("grafana", 2),
        ("node-exporter", 2),
    ] {
        let image = service(&compose, name)["image"].as_str().unwrap();
        let tag = image.rsplit_once(':').unwrap().1;
        assert!(
            tag.matches('.').count() >= minimum_dots,
            "{name}: a full version, {image}"
        );
    }
}

/// Docker's default json-file log grows without bound: every service rotates (size and count limits).
#[test]
fn every_service_rotates_its_logs() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    assert!(services.len() >= 11);
    for (name, service) in services {
        let logging = &service["logging"];
        assert_eq!(logging["driver"], "json-file", "{name:?}");
        let size = logging["options"]["max-size"].as_str().unwrap_or_default();
        assert!(
            size.ends_with('m') || size.ends_with('k'),
            "{name:?}: max-size {size:?}"
        );
        let files: u32 = logging["options"]["max-file"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name:?}: max-file"));
        assert!((1..=20).contains(&files), "{name:?}: max-file {files}");
    }
}

/// Prometheus scrapes api and worker on the metrics listener the compose file gives them (every replica, via
/// Docker's DNS), never on the public listener.
#[test]
fn prometheus_scrapes_the_metrics_port_of_every_replica() {
    let compose = compose();
    let config_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/monitoring/prometheus.yml"
    ))
    .unwrap();
    let prometheus: Value = serde_yaml_ng::from_str(&config_text).unwrap();
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();
    for (job_name, service_name) in [("wosool-api", "api"), ("wosool-worker", "worker")] {
        let config =
            wosool::config::Config::load_from(None, wosool_env(service(&compose, service_name)))
                .unwrap();
        let port = |address: &str| address.rsplit(':').next().unwrap().parse::<u64>().unwrap();
        let job = jobs
            .iter()
            .find(|j| j["job_name"] == job_name)
            .unwrap_or_else(|| panic!("job {job_name}"));
        let dns = &job["dns_sd_configs"][0];
        assert_eq!(
            dns["names"][0], service_name,
            "{job_name} resolves the service"
        );
        assert_eq!(dns["type"], "A", "{job_name}: one address per replica");
        assert_eq!(
            dns["port"].as_u64(),
            Some(port(&config.server.metrics_listen)),
            "{job_name} scrapes the metrics listener"
        );
        assert_ne!(
            dns["port"].as_u64(),
            Some(port(&config.server.listen)),
            "{job_name} never scrapes the public port"
        );
        assert!(job["metrics_path"].is_null() || job["metrics_path"] == "/metrics");
    }
    assert!(
        !config_text.contains(":8080"),
        "no target on the public port"
    );
    // The files the compose file mounts exist, and the rule files Prometheus loads are among them.
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/");
    for name in MONITORING {
        for volume in service(&compose, name)["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let volume = volume.as_str().unwrap();
            // `${VAR:-default}:target` mounts the default unless the operator sets VAR.
            let source = match volume.strip_prefix("${ALERTMANAGER_CONFIG:-") {
                Some(rest) => rest.split('}').next().unwrap(),
                None => volume.split(':').next().unwrap(),
            };
            if let Some(relative) = source.strip_prefix("./") {
                assert!(
                    std::path::Path::new(deploy).join(relative).exists(),
                    "{name} mounts {source}, which is missing"
                );
            }
        }
    }
    for file in prometheus["rule_files"].as_sequence().unwrap() {
        let file = file.as_str().unwrap();
        assert!(
            std::path::Path::new(deploy)
                .join("monitoring")
                .join(file)
                .exists(),
            "{file}"
        );
    }
    let mounts: Vec<&str> = service(&compose, "prometheus")["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(mounts.contains(&"./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro"));
    assert!(mounts.contains(&"./monitoring/rules:/etc/prometheus/rules:ro"));
}
