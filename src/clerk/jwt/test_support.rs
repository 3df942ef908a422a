//! Test keys and token minting shared by the Clerk unit tests.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// Fixed RSA-2048 test keys (generated once with `openssl genrsa -traditional 2048`); never used elsewhere.
pub const KEY1_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAk6jF1oLkgIS1S2wVbBiai/eKGxQXNsALLDWQL2cQXN6WMGud
6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco+MCp8baBCpI9roNa6EFvamhXwXX
D81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt+eqerYayPKspK0I7vDnLIxJDj1E
QfaGxefH5xDF8DK/Rcp+wQwZ4+6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sF
dd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i/YjUCtXvCoiqoxDYpLq3/
O5lmQQlDrZDLU+dNvf3ufe2xpbtLR5KjKNZLvwIDAQABAoIBAAql+6prYxDKQTa7
XdTJ9hniPpaS/X+THDB9Jl+SFlHUMs7dcT7/o7EcI1ipVga69Bsps3Gss+70iyF4
dJ8NBVHjn5U7gmJq2DsuvKQGhzRKb4WQ6sBMJUxXoDnj6vZWrjoOaGa6sVMZrqSS
aLs+HdR4A554081VBCfrWz8RUWKFbpoWxkmZuXdhCG0EydWf6AJeJZCy/oG4uQeo
3EAe7rk1itHbhE4n2tkCegm3nuIV4LvpYNfdcweynB0TLgzZqHtoJtMYZVPi9lsJ
b857rBxcLGrGNwigiRuwVZB7vDW2r/thEZfHV3bJYXVXjxZS5Eqm1cV97k+WRcZC
K6WCG+kCgYEAz3RH80qHnqmPhIce07EEgx1LwBeRYcKhtWrVA5Ij6EtjgzQm5X95
BdCalhU08JzwCUNe1745WM6dIEo/14Qe4wHLMyCW3kn+N0YQ5kQfwVFmqpPDeVOz
3wg5Vf6rugwIaXvUBB9ta/q8YMaduoTuokeo0Mbq5KcnCvICf2qag8kCgYEAtjZs
yYeo85aif/v8u73vbkGjUeB9xL07yiJH27ycBiGZxwTPoB9n+HtP9N3QIWoAgSYQ
BE2LLsdMjbtNrPDa+hXMaSwDBgyYxot8PaVhlmYFxtRodVySnQZUlWG7AHGWVXKI
96SDMM3n1Z6JdCyeDU176+i73xEpqLq/xCN3R0cCgYBdpMChur/TR/jnutKYfixq
Pvwlnr3aYi/6o1m6PeqFfhpSbGUubUck79AH9VSrVDwqAkY6nrxmMQXOQJXm49XJ
ZNLjpk9T0hS1wKP6PUAUVHlCgGbZSoZEJAM1pTrBRZM6glHm9oS/HDSSfrVOL5lE
mZJDg7ceNbGzCCFGgMl0uQKBgHLQuJwEr6FOOfcLgaWLeWOwWIkvPBDMbPBhyYXc
wzPZ2Fxf27S6FXmtuiRB4PQtJ0Q6B72uXxWK3+IvNDLVUiZjtfpPkVgud9Yj7pWp
sGRkxR8UmP3a50eqxYGbo4oUCPauxT/GmiQWmw8wZsydkLoxKPTuIfPdjLKVemDN
OEvhAoGBALdj5JWAQySjXUt16DBsOXiqecpwH22bFURjJ0DsecAdpn0Dk0L2ePJA
0M4FSc3cPSNHPsZs2zzyQKaH/6jYd9xPFBz831LMh/HCipdV7vzEldgKIMoYj310
LKkquOeRJz7c3/RC6sZ0TO+72YnMCt2kfoqwlzIr6JMq9Xg/iPvT
-----END RSA PRIVATE KEY-----";
pub const KEY1_N: &str = "k6jF1oLkgIS1S2wVbBiai_eKGxQXNsALLDWQL2cQXN6WMGud6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Eco-MCp8baBCpI9roNa6EFvamhXwXXD81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8wt-eqerYayPKspK0I7vDnLIxJDj1EQfaGxefH5xDF8DK_Rcp-wQwZ4-6n06GzqEwBrjq1Ec9OIJkrMXkxYJ3FcmJOw1sFdd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadBWPRcn0i_YjUCtXvCoiqoxDYpLq3_O5lmQQlDrZDLU-dNvf3ufe2xpbtLR5KjKNZLvw";
pub const KEY1_PUBLIC_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk6jF1oLkgIS1S2wVbBia
i/eKGxQXNsALLDWQL2cQXN6WMGud6Qb2MPmyPfxDfr1SONipsBzCXff4TyIH09Ec
o+MCp8baBCpI9roNa6EFvamhXwXXD81QeQWedLyU74qGf9AtfT9CqKOIagG2sZ8w
t+eqerYayPKspK0I7vDnLIxJDj1EQfaGxefH5xDF8DK/Rcp+wQwZ4+6n06GzqEwB
rjq1Ec9OIJkrMXkxYJ3FcmJOw1sFdd5hIqUfL4CrLbjkDlrktMZ50ShC2o8OAadB
WPRcn0i/YjUCtXvCoiqoxDYpLq3/O5lmQQlDrZDLU+dNvf3ufe2xpbtLR5KjKNZL
vwIDAQAB
-----END PUBLIC KEY-----";
pub const KEY2_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAtaWH2w1ChybKaeKcuUQ6xEmfetIPrT/gWhpRleFmbLnXzsOg
vmCrXx7swHP3uVnRmN/7kByof8P5HeH4nQGvgWT+1ewlAqo2zLj+rdSjGrsftlH2
3xGd4QdHYQhFlCQwilCbjA4gj9GdUGA+HfmbUqvVOSl6qS4YcrDvHEUjtS1eOdVz
7dLTPPB4hDRmx0mKzVeuP3tQ1rIJI0Munvd5cqOsdp+pY1uITi124g7x3mvejeI6
Pl7l6eeoNysc5MUuJDvpT8rbrxHWn5QOuHUWuQyUgDdcODAsP9La3CAoOwWiGk3N
jwV0pNnK/fJ0nYYWDFRb5mexJLftcAi7UeYVJQIDAQABAoIBAAa0v0C/ixK5RGTH
WHjgg3jmrOwYYDrJrms1KIjrguAFtmlsQH12zSzcU+pA/cbKgZnuvvdRj4jz/7jy
ND77pnKU+3GDX9Rq204QkFpzjLf6a4/ME9ylZlo97g0vhH4VHfOlSTDQ/rPAjdm/
S9vIcMsLC/qpxN0FFiL51EILbWeNXq/C2ApiKcDM3qB0aniwJnYw7pYQO9sVeJJj
meHPBBdnBEMyY/JVIHOwQtG0/r5ZqKmZV1XVr4bflaURXokpBTsoZAAU9TFJqFhz
Wz+sjoyDcIiv8kBCooBDey8Rv/snBZVdoR8L1puV/2Dff0zfAN5eSWyIRKfh1JDR
AbPERdECgYEA89FPwYYDJpWEgS3B7IqY1oZ//p2UoSjMPql8oG6Fu729d7eEbNK5
9QMkXeA0eIM0592bV1w1ct8YGnYs3IWJMlIoerowB5lArFHCg+zqZLd9bHn+D11R
vHCV7nedt381zyDcm6/56/GO4Z8Ck4JVMnnuanYbBbtXGIFDgqYqa+kCgYEAvrj8
OMGeq91Dtt3tspF7TwlGLA/ahuj0zI3BPIQK6D/rDkNZVIG0YQBdvhHMCWBAOGub
l3o0TyrbxcM2sEKAc8lwlAsAiGhBrUgVZXEmePf8Ie1O8bu4h7uPTLl6w5dBVH54
0HUVaR//hySLcz1Voart0j6n2vS6PoM1vsCUZd0CgYEArIOmfhS3d/6FIe3hb9/l
Iq1KNTsEZj96vL+pic6J23v2apW0Ile78evGOJIiLj8QGRtJBbgdrWjDIj4JogLu
P2e4cpX40/eQthynmDby5k6adT2gEPkDk2TKAVArjSF6TlM/JP2PxW1Gnsemx/6J
D80Mb9Gfbx/OEW2s+e1eyLkCgYEAmaZyHE9wQ0loyiQU4S1vSAdSryC+jr2SqlDx
go1mNCF6fu0nRHuSFCu1WfEAjfUrB8k5elmLVtRSZgqVPn70+VMqDTqn3T0Q3Ecc
ZbM4qXAvgi2q0fjH+yHRmqA7FOQAT8/sCRSqgRy0Qe3hIqAhIrOQETdFB5LtkHso
i1qes0kCgYBouQFx9aypD5jTlkuFKPVFg3FaZOMYGU5Ka81vGPEvQYC8/PUbvGJB
8cXvxE9nO8hUHpfIHx6U8QQaOOIsR2iziOz2Rl5CWHiRwyU8z25IEg73BAWv8I9T
8eENjIcX0K1HNLi8f97R5CuhxnLbbM2SH2huMO5ZyesmmrU5Y9oV8Q==
-----END RSA PRIVATE KEY-----";
pub const KEY2_N: &str = "taWH2w1ChybKaeKcuUQ6xEmfetIPrT_gWhpRleFmbLnXzsOgvmCrXx7swHP3uVnRmN_7kByof8P5HeH4nQGvgWT-1ewlAqo2zLj-rdSjGrsftlH23xGd4QdHYQhFlCQwilCbjA4gj9GdUGA-HfmbUqvVOSl6qS4YcrDvHEUjtS1eOdVz7dLTPPB4hDRmx0mKzVeuP3tQ1rIJI0Munvd5cqOsdp-pY1uITi124g7x3mvejeI6Pl7l6eeoNysc5MUuJDvpT8rbrxHWn5QOuHUWuQyUgDdcODAsP9La3CAoOwWiGk3NjwV0pNnK_fJ0nYYWDFRb5mexJLftcAi7UeYVJQ";
pub const KID1: &str = "ins_2GIoQhbUpy0hX7B2cVkuTMinXoD";
pub const KID2: &str = "ins_rotated000000000000000000";
pub const ISSUER: &str = "https://clerk.example.com";
pub const AZP: &str = "https://app.example.com";
pub const NOW: i64 = 1_744_734_890;

pub fn jwks(keys: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, n)| json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": "AQAB"}))
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token with this exact header and payload, signed RS256 with `pem`.
pub fn sign(header: &Value, claims: &Value, pem: &str) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_rsa_der(&der(pem));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

/// A token with this header, signed HS256 with `secret`.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_secret(secret);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

pub fn header(kid: &str) -> Value {
    json!({"alg": "RS256", "kid": kid, "typ": "JWT", "cat": "cl_B7d4PD111AAA", "oiat": 1_716_883_200})
}

pub fn v1_claims(now: i64) -> Value {
    json!({
        "azp": AZP, "exp": now + 60, "iat": now, "iss": ISSUER, "nbf": now - 10,
        "sid": "sess_2GbDB4enNdCa5vS1zpC3Xzg9tK9", "sub": "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr",
        "org_id": "org_xxxxxxx", "org_role": "org:admin", "org_slug": "org_test",
        "org_permissions": ["org:impersonation:read", "org:impersonation:manage"],
        "custom": {"nested": [1, 2, 3]}
    })
}

pub fn v2_claims(now: i64) -> Value {
    json!({
        "azp": AZP, "email": "email@example.com", "exp": now + 60,
        "fea": "o:dashboard,u:profile,ou:teams", "fva": [0, -1], "iat": now,
        "iss": ISSUER, "jti": "004f0096e5cd44911924", "nbf": now - 10,
        "o": {"fpm": "3,2", "id": "org_123", "per": "manage,read", "rol": "admin", "slg": "example-org"},
        "pla": "o:free_org", "role": "authenticated", "sid": "sess_123", "sub": "user_123", "v": 2
    })
}

/// A valid v1 token signed with key 1 for [`NOW`].
pub fn v1_token(now: i64) -> String {
    sign(&header(KID1), &v1_claims(now), KEY1_PEM)
}
