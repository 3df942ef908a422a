//! What the CRM proxy records of a forwarded write: the method and path (REST) or the operation's name
//! (GraphQL mutations), and Twenty's status. Never a body, a query string or a header.

use serde_json::json;

use super::{Event, Origin, Via};
use crate::http::TenantContext;

/// A GraphQL request body's mutation: `Some(operation name)` (`"anonymous"` without one) when the document's
/// first operation is a mutation, `None` for queries, subscriptions and unreadable bodies.
pub fn graphql_mutation(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Request {
        query: String,
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
    }
    let request: Request = serde_json::from_slice(body).ok()?;
    let document = strip_comments(&request.query);
    let rest = document.trim_start().strip_prefix("mutation")?;
    if rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return None; // `mutationFoo`: not the keyword
    }
    let declared: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let name = request
        .operation_name
        .or_else(|| (!declared.is_empty()).then_some(declared))
        .filter(|n| n.len() <= 100)
        .unwrap_or_else(|| "anonymous".into());
    Some(name)
}

fn strip_comments(document: &str) -> String {
    document
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audit entry of one forwarded write.
pub fn forwarded(
    ctx: &TenantContext,
    origin: &Origin,
    method: &str,
    target: &str,
    status: u16,
) -> Event {
    Event::tenant(ctx, Via::CrmProxy, "crm.write")
        .origin(origin)
        .resource(format!("crm:{target}"))
        .details(json!({ "method": method, "target": target, "upstream_status": status }))
}

#[cfg(test)]
mod tests {
    use super::graphql_mutation;

    #[test]
    fn mutations_are_told_from_queries() {
        let body = |q: &str| serde_json::json!({ "query": q }).to_string();
        assert_eq!(
            graphql_mutation(
                body("mutation CreatePerson { createPerson(data: {}) { id } }").as_bytes()
            ),
            Some("CreatePerson".into())
        );
        assert_eq!(
            graphql_mutation(body("# hi\n mutation { deletePerson(id: 1) { id } }").as_bytes()),
            Some("anonymous".into())
        );
        assert_eq!(
            graphql_mutation(body("query { people { id } }").as_bytes()),
            None
        );
        assert_eq!(graphql_mutation(body("{ people { id } }").as_bytes()), None);
        assert_eq!(graphql_mutation(b"not json"), None);
    }
}
