//! Configuration layering: defaults < file < DATABASE_URL/REDIS_URL < WOSOOL_* < *_FILE.

use std::io::Write;

use wosool::config::Config;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

#[test]
fn each_layer_overrides_the_one_below() {
    let overrides = file(
        "[server]\nlisten = \"127.0.0.1:7000\"\nrequest_timeout_secs = 11\n[jobs]\nconcurrency = 3\n",
    );
    let secret = file("postgres://u:from-file@filehost/db\n");

    let only_file = Config::load_from(Some(overrides.path()), env(&[])).unwrap();
    assert_eq!(only_file.server.listen, "127.0.0.1:7000");
    assert_eq!(
        only_file.server.body_limit_bytes, 1_048_576,
        "untouched keys keep their defaults"
    );

    let layered = Config::load_from(
        Some(overrides.path()),
        env(&[
            ("WOSOOL_SERVER__LISTEN", "127.0.0.1:7001"),
            ("DATABASE_URL", "postgres://u:p@alias/db"),
            ("REDIS_URL", "redis://alias:6379"),
            ("WOSOOL_JOBS__CONCURRENCY", "5"),
        ]),
    )
    .unwrap();
    assert_eq!(layered.server.listen, "127.0.0.1:7001", "env beats file");
    assert_eq!(
        layered.server.request_timeout_secs, 11,
        "file beats defaults"
    );
    assert_eq!(layered.jobs.concurrency, 5);
    assert_eq!(
        layered.db.url.expose(),
        "postgres://u:p@alias/db",
        "alias beats defaults"
    );
    assert_eq!(layered.redis.url.expose(), "redis://alias:6379");

    let with_secret_file = Config::load_from(
        None,
        env(&[
            ("DATABASE_URL", "postgres://u:p@alias/db"),
            ("WOSOOL_DB__URL_FILE", secret.path().to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(
        with_secret_file.db.url.expose(),
        "postgres://u:from-file@filehost/db",
        "trailing newline trimmed"
    );
}

#[test]
fn alias_files_work_like_docker_secrets() {
    let secret = file("redis://:pw@secret-host:6379");
    let config = Config::load_from(
        None,
        env(&[("REDIS_URL_FILE", secret.path().to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(config.redis.url.expose(), "redis://:pw@secret-host:6379");
}

#[test]
fn an_unreadable_secret_file_is_a_clear_error() {
    let error = Config::load_from(None, env(&[("WOSOOL_DB__URL_FILE", "/nonexistent/secret")]))
        .unwrap_err();
    assert_eq!(error.problems.len(), 1);
    assert!(
        error.problems[0].contains("WOSOOL_DB__URL_FILE") && error.problems[0].contains("db.url")
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let error =
        Config::load_from(Some(std::path::Path::new("/nope/wosool.toml")), env(&[])).unwrap_err();
    assert!(error.problems[0].contains("/nope/wosool.toml"));
}

#[test]
fn validation_reports_every_problem_at_once() {
    let error = Config::load_from(
        None,
        env(&[
            ("WOSOOL_SERVER__LISTEN", "nowhere"),
            ("WOSOOL_SERVER__METRICS_LISTEN", "also nowhere"),
            ("WOSOOL_DB__MAX_CONNECTIONS", "1"),
            ("WOSOOL_REDIS__URL", "http://not-redis"),
            ("WOSOOL_LOG__LEVEL", "info,[[["),
            ("WOSOOL_ADMIN__API_KEYS", "[\"short\"]"),
        ]),
    )
    .unwrap_err();
    let keys = [
        "server.listen",
        "server.metrics_listen",
        "db.max_connections",
        "redis.url",
        "log.level",
        "admin.api_keys[0]",
    ];
    assert_eq!(error.problems.len(), keys.len(), "{:#?}", error.problems);
    for (problem, key) in error.problems.iter().zip(keys) {
        assert!(problem.starts_with(&format!("{key}:")), "{problem}");
        assert!(
            problem.contains("expected"),
            "says what is expected: {problem}"
        );
        assert!(!problem.contains('\n'));
    }
}

#[test]
fn a_wrong_type_names_the_key() {
    let error = Config::load_from(None, env(&[("WOSOOL_JOBS__LEASE_SECS", "soon")])).unwrap_err();
    assert!(
        error.problems[0].starts_with("jobs.lease_secs:"),
        "{:?}",
        error.problems
    );
}

#[test]
fn the_documented_defaults_are_the_compiled_defaults() {
    // Every key in config/default.toml is documented with a comment line right above it.
    let mut previous = "";
    for line in wosool::config::DEFAULT_TOML.lines() {
        let is_key = line.contains(" = ") && !line.starts_with('#');
        if is_key {
            assert!(
                previous.starts_with('#') || previous.contains(" = "),
                "undocumented key: {line}"
            );
        }
        previous = line;
    }
    let config = Config::load_from(None, env(&[])).unwrap();
    let rendered: toml::Value = toml::from_str(&config.to_redacted_toml()).unwrap();
    let documented: toml::Value = toml::from_str(wosool::config::DEFAULT_TOML).unwrap();
    for (section, keys) in documented.as_table().unwrap() {
        for key in keys.as_table().unwrap().keys() {
            assert!(
                rendered[section].get(key).is_some(),
                "{section}.{key} is a real key"
            );
        }
    }
}

#[test]
fn the_production_example_is_a_valid_config_file() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/production.toml"
    ));
    let config = Config::load_from(Some(path), env(&[])).unwrap();
    assert_eq!(config.server.metrics_listen, "0.0.0.0:9100");
}

#[test]
fn twenty_instances_are_checked_and_the_base_url_is_their_shorthand() {
    let key = (
        "WOSOOL_SECRETS__ENCRYPTION_KEYS",
        "[\"k:d29zb29sLXR3ZW50eS10ZXN0LWtleS0zMi1ieXRlcyE=\"]",
    );
    let shorthand = Config::load_from(
        None,
        env(&[
            key,
            ("WOSOOL_CRM__BASE_URL", "http://twenty:3000"),
            ("WOSOOL_CRM__MAX_WORKSPACES", "7"),
        ]),
    )
    .unwrap();
    let instances = shorthand.crm.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(
        (
            instances[0].key.as_str(),
            instances[0].base_url.as_str(),
            instances[0].max_workspaces
        ),
        ("default", "http://twenty:3000", 7)
    );
    let listed = Config::load_from(
        None,
        env(&[
            key,
            (
                "WOSOOL_CRM__INSTANCES",
                "[{key=\"t1\",base_url=\"http://t1:3000\"},{key=\"t2\",base_url=\"http://t2:3000\",max_workspaces=100}]",
            ),
        ]),
    )
    .unwrap();
    let caps: Vec<u32> = listed
        .crm
        .instances()
        .iter()
        .map(|i| i.max_workspaces)
        .collect();
    assert_eq!(
        caps,
        [5, 100],
        "5 (Twenty v2.43 without an Enterprise key) unless set"
    );

    let error = Config::load_from(
        None,
        env(&[
            key,
            ("WOSOOL_CRM__BASE_URL", "http://twenty:3000"),
            (
                "WOSOOL_CRM__INSTANCES",
                "[{key=\"t1\",base_url=\"ftp://t1\",max_workspaces=0,workspace_url_pattern=\"https://crm.example.com\"},\
                  {key=\"t1\",base_url=\"http://t1b:3000\"}]",
            ),
        ]),
    )
    .unwrap_err();
    let keys: Vec<&str> = error
        .problems
        .iter()
        .map(|p| p.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "crm.base_url",
            "crm.instances[0].base_url",
            "crm.instances[0].workspace_url_pattern",
            "crm.instances[0].max_workspaces",
            "crm.instances[1].key",
        ],
        "{:#?}",
        error.problems
    );
}

/// A server being emptied takes no new tenant (`draining`), but at least one must take them.
#[test]
fn tenant_servers_may_drain_but_not_all_of_them() {
    let servers = |first: bool, second: bool| {
        file(&format!(
            "[[db.tenant_servers]]\nkey = \"pg-1\"\nurl = \"postgres://u:p@h1/postgres\"\ndraining = {first}\n\
             [[db.tenant_servers]]\nkey = \"pg-2\"\nurl = \"postgres://u:p@h2/postgres\"\ndraining = {second}\n"
        ))
    };
    let one = servers(true, false);
    let config = Config::load_from(Some(one.path()), env(&[])).unwrap();
    assert!(config.db.tenant_servers[0].draining && !config.db.tenant_servers[1].draining);
    let all = servers(true, true);
    let error = Config::load_from(Some(all.path()), env(&[])).unwrap_err();
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.contains("db.tenant_servers") && p.contains("draining")),
        "{:?}",
        error.problems
    );
}
