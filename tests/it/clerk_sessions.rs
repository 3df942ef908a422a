//! Clerk session tokens through the real HTTP stack: the token's active organization selects the tenant, the
//! gate and roles apply, and bad tokens get a 401 naming the reason. Tokens are signed in the test with a key
//! whose public half the fake Clerk serves as JWKS.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wosool::Role;

use crate::clerk_identity::{Shared, clerk_env, fake_clerk};
use crate::helpers::{self, TestApp};

pub(crate) const KID: &str = "ins_test_key_1";
pub(crate) const ISSUER: &str = "https://clerk.wosool.test";
pub(crate) const AZP: &str = "https://app.wosool.test";
/// The modulus of tests/fixtures/clerk-test-key.pem (base64url), for the JWKS.
const KEY_N: &str = "tC6YNI7wgtC2jV20LTYjG_2zbqoPF0ohsU5BRxwg86r1RAHebZW5gnm-FrLRBI3ODygtWLDCIZeLUteGkqmS7QSZwsp9YlSauPoxsTWsI-xFCrPUlOVfi2bL1bPv_ATOt9kHnaApCSaOBvhbxkfTWmwBGK0iOVpY9TNTLCwhb3pKHNgEtI8-SIPunJSrOO7ZUqqYSiVM1ovf6pxKzXxyOviDKHzq6ONIUO3s1k90AtPxtv657U1o-rwCMw0uwVzHZL50DNE1950eSXMP8wf_4OBhxQBaV_BTMLkzXGgt65eMblVQB6ca49PqX8x0Q2aoEvFtojzCE34CqOIny5Ua8Q";

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn sign(claims: &Value, kid: &str) -> String {
    use base64::Engine;
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clerk-test-key.pem"
    ))
    .unwrap();
    // PKCS#1 DER inside the PEM armour (jsonwebtoken's PEM parsing is an optional feature we do not build).
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der)).unwrap()
}

/// A v1 session token (org_id / org_role / org_slug claims).
pub(crate) fn v1_token(user: &str, org: Option<&str>, role: &str) -> String {
    let mut claims = json!({
        "sub": user, "sid": "sess_1", "iss": ISSUER, "azp": AZP,
        "iat": now() - 5, "nbf": now() - 10, "exp": now() + 60,
    });
    if let Some(org) = org {
        claims["org_id"] = json!(org);
        claims["org_role"] = json!(role);
        claims["org_slug"] = json!("acme");
        claims["org_permissions"] = json!(["org:sys_memberships:read"]);
    }
    sign(&claims, KID)
}

/// A v2 session token (compact `o` claim, unprefixed role).
pub(crate) fn v2_token(user: &str, org: &str, role: &str) -> String {
    sign(
        &json!({
            "v": 2, "sub": user, "sid": "sess_2", "iss": ISSUER, "azp": AZP,
            "iat": now() - 5, "nbf": now() - 10, "exp": now() + 60,
            "o": { "id": org, "rol": role, "slg": "acme" },
        }),
        KID,
    )
}

pub(crate) fn jwks(kids: &[&str]) -> Value {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": KEY_N, "e": "AQAB" }))
        .collect();
    json!({ "keys": keys })
}

/// An app with Clerk configured against the fake, and two ready tenants linked to Clerk organizations.
pub(crate) async fn app_with_two_tenants() -> (TestApp, (String, String), (String, String)) {
    let (app, a, b, _) = app_with_two_tenants_and_fake().await;
    (app, a, b)
}

async fn app_with_two_tenants_and_fake() -> (TestApp, (String, String), (String, String), Shared) {
    let (api_url, fake) = fake_clerk().await;
    fake.lock().unwrap().jwks = jwks(&[KID]);
    let app = helpers::spawn_app_with(Role::All, |env| {
        clerk_env(&api_url)(env);
        env.push(("WOSOOL_CLERK__ISSUER".into(), ISSUER.into()));
        env.push((
            "WOSOOL_CLERK__AUTHORIZED_PARTIES".into(),
            format!("[\"{AZP}\"]"),
        ));
    })
    .await;
    let mut tenants = Vec::new();
    for name in ["Session Store A", "Session Store B"] {
        let registered = app.register_ready(name).await;
        let id = registered["tenant_id"].as_str().unwrap().to_owned();
        let org: String =
            sqlx::query_scalar("SELECT clerk_org_id FROM tenants WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        tenants.push((id, org));
    }
    let b = tenants.pop().unwrap();
    let a = tenants.pop().unwrap();
    (app, a, b, fake)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let response = app.get(path).bearer_auth(token).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_session_reaches_exactly_the_tenant_of_its_active_organization() {
    let (app, (a_id, a_org), (b_id, b_org)) = app_with_two_tenants().await;

    let (status, body) = get(
        &app,
        "/api/tenant",
        &v1_token("user_a", Some(&a_org), "org:admin"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(a_id));
    // Naming the other tenant in a header is refused: the verified org decides, and a conflict is no answer.
    let response = app
        .get("/api/tenant")
        .bearer_auth(v2_token("user_a", &a_org, "admin"))
        .header("x-tenant-id", &b_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tenant_mismatch", "{body}");
    let (_, body) = get(&app, "/api/tenant", &v2_token("user_a", &a_org, "admin")).await;
    assert_eq!(body["id"], json!(a_id), "v2 tokens resolve the same way");
    let (_, body) = get(&app, "/api/tenant", &v2_token("user_b", &b_org, "member")).await;
    assert_eq!(body["id"], json!(b_id));

    // The __session cookie works like the header.
    let response = app
        .get("/api/tenant")
        .header(
            "cookie",
            format!(
                "theme=dark; __session={}",
                v1_token("user_a", Some(&a_org), "org:admin")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, me) = get(
        &app,
        "/api/me",
        &v1_token("user_a", Some(&a_org), "org:admin"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], "user_a");
    assert_eq!(me["organization"]["id"], json!(a_org));
    assert_eq!(me["role"], "admin", "the org: prefix is stripped");
    assert_eq!(me["tenant"]["id"], json!(a_id));
    assert_eq!(me["tenant"]["settings"]["currency"], "SAR");
}

#[tokio::test]
async fn roles_from_the_token_decide_who_manages_api_keys() {
    let (app, (_, a_org), _) = app_with_two_tenants().await;
    let member = v2_token("user_m", &a_org, "member");
    let admin = v2_token("user_x", &a_org, "admin");
    let create = |token: String| {
        app.client
            .post(app.url("/api/tenant/api-keys"))
            .bearer_auth(token)
            .json(&json!({ "name": "from session" }))
            .send()
    };
    let response = create(member.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_role");
    assert_eq!(create(admin).await.unwrap().status(), StatusCode::CREATED);
    // Members still read their tenant.
    assert_eq!(get(&app, "/api/tenant", &member).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_sessions_are_refused_with_the_reason() {
    let (app, (_, a_org), _) = app_with_two_tenants().await;
    let cases = [
        (
            "no active organization",
            v1_token("user_a", None, ""),
            StatusCode::FORBIDDEN,
            "no_active_organization",
        ),
        (
            "unknown organization",
            v1_token("user_a", Some("org_unknown"), "org:admin"),
            StatusCode::NOT_FOUND,
            "tenant_not_found",
        ),
        (
            "expired",
            sign(
                &json!({ "sub": "u", "iss": ISSUER, "org_id": a_org, "iat": now() - 600, "nbf": now() - 600, "exp": now() - 60 }),
                KID,
            ),
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            "wrong issuer",
            sign(
                &json!({ "sub": "u", "iss": "https://evil.test", "org_id": a_org, "iat": now(), "nbf": now() - 10, "exp": now() + 60 }),
                KID,
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_issuer",
        ),
        (
            "not yet valid",
            sign(
                &json!({ "sub": "u", "iss": ISSUER, "azp": AZP, "org_id": a_org, "iat": now(), "nbf": now() + 120, "exp": now() + 600 }),
                KID,
            ),
            StatusCode::UNAUTHORIZED,
            "token_not_active",
        ),
        (
            "wrong authorized party",
            sign(
                &json!({ "sub": "u", "iss": ISSUER, "azp": "https://evil.test", "org_id": a_org, "iat": now(), "nbf": now() - 10, "exp": now() + 60 }),
                KID,
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_authorized_party",
        ),
        (
            "unknown kid",
            sign(
                &json!({ "sub": "u", "iss": ISSUER, "azp": AZP, "org_id": a_org, "iat": now(), "nbf": now() - 10, "exp": now() + 60 }),
                "ins_not_a_key",
            ),
            StatusCode::UNAUTHORIZED,
            "unknown_key",
        ),
        (
            "tampered payload",
            tampered(
                &v1_token("user_a", Some(&a_org), "org:member"),
                &admin_claims(&a_org),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        (
            "alg none",
            unsigned_token(&a_org),
            StatusCode::UNAUTHORIZED,
            "unsupported_algorithm",
        ),
        (
            "HS256 keyed with the public key",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(KID.to_owned());
                jsonwebtoken::encode(
                    &header,
                    &json!({ "sub": "u", "iss": ISSUER, "azp": AZP, "org_id": a_org, "iat": now(), "nbf": now() - 10, "exp": now() + 60 }),
                    &EncodingKey::from_secret(KEY_N.as_bytes()),
                )
                .unwrap()
            },
            StatusCode::UNAUTHORIZED,
            "unsupported_algorithm",
        ),
        (
            "garbage",
            "not.a.jwt".to_owned(),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
    ];
    for (what, token, status, code) in cases {
        let (got, body) = get(&app, "/api/tenant", &token).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(body["error"]["request_id"].is_string());
    }
    // An API key still works next to sessions.
    let (a_id, _) = sqlx::query_as::<_, (uuid::Uuid, String)>(
        "SELECT id, slug FROM tenants WHERE clerk_org_id = $1",
    )
    .bind(&a_org)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let key = app.api_key(&a_id.to_string()).await;
    assert_eq!(get(&app, "/api/tenant", &key).await.0, StatusCode::OK);
}

/// Claims an attacker would like: the same organization, but the admin role.
fn admin_claims(org: &str) -> Value {
    json!({
        "sub": "user_a", "sid": "sess_1", "iss": ISSUER, "azp": AZP,
        "iat": now() - 5, "nbf": now() - 10, "exp": now() + 60,
        "org_id": org, "org_role": "org:admin", "org_slug": "acme",
    })
}

/// `token` with its payload replaced by `claims` and the original signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    use base64::Engine;
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.{signature}")
}

/// An `alg: none` token with no signature.
fn unsigned_token(org: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT", "kid": KID })),
        b64(&admin_claims(org))
    )
}

#[tokio::test]
async fn a_rotated_key_costs_one_jwks_fetch_and_a_flood_of_unknown_kids_stays_bounded() {
    let (app, (a_id, a_org), _, fake) = app_with_two_tenants_and_fake().await;
    let fetches = || fake.lock().unwrap().jwks_fetches;
    let (status, body) = get(
        &app,
        "/api/tenant",
        &v1_token("user_a", Some(&a_org), "org:member"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = fetches();

    // Clerk rotates: the JWKS now also holds a new key, and new tokens carry its kid.
    fake.lock().unwrap().jwks = jwks(&[KID, "ins_test_key_2"]);
    let claims = json!({
        "sub": "user_a", "iss": ISSUER, "azp": AZP, "org_id": a_org, "org_role": "org:member",
        "iat": now(), "nbf": now() - 10, "exp": now() + 60,
    });
    for _ in 0..3 {
        let (status, body) = get(&app, "/api/tenant", &sign(&claims, "ins_test_key_2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], a_id.as_str());
    }
    assert_eq!(
        fetches(),
        before + 1,
        "one refetch for the new kid, then cached"
    );

    // 100 tokens with made-up kids at once: all refused, and Clerk sees at most one more fetch.
    let flood_start = fetches();
    let requests = (0..100).map(|i| {
        let token = sign(&claims, &format!("ins_bogus_{i}"));
        let app = &app;
        async move { get(app, "/api/tenant", &token).await }
    });
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unknown_key", "{body}");
    }
    assert!(
        fetches() - flood_start <= 1,
        "{} JWKS fetches for a flood of unknown kids",
        fetches() - flood_start
    );
}
