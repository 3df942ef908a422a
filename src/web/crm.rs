//! The CRM in the merchant app: the customer card's panel of CRM notes and tasks, and the CRM screens
//! (`/app/crm/{notes,tasks,opportunities}`: list, create, edit) over the tenant's Twenty workspace through
//! `crm::records` (server-side, with the tenant's own key; Twenty's UI never appears). Without a workspace
//! (Twenty not configured, provisioning, waiting for capacity) the screens say so instead of failing.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use super::{Screen, View, render};
use crate::audit::Origin;
use crate::crm::records::{CrmRecord, CrmRecordsError, Money, RecordInput, RecordKind, TaskStatus};
use crate::error::ApiError;
use crate::http::TenantContext;
use crate::http::extract::{Form, Path, Query};
use crate::state::AppState;

/// What the customer card shows of the CRM.
pub enum CustomerPanel {
    /// The tenant has no CRM workspace yet (or Twenty is not configured here).
    NotProvisioned,
    /// The workspace could not be reached just now.
    Unavailable,
    /// The customer's notes and tasks: (title, detail).
    Ready {
        notes: Vec<(String, String)>,
        tasks: Vec<(String, String)>,
    },
}

/// The customer's CRM notes and tasks, degrading to a message when there is no workspace or it is down.
pub async fn customer_panel(
    state: &AppState,
    ctx: &TenantContext,
    salla_customer_id: i64,
) -> CustomerPanel {
    let Some(records) = state.crm_records() else {
        return CustomerPanel::NotProvisioned;
    };
    match records.for_customer(ctx.id(), salla_customer_id).await {
        Ok(found) => CustomerPanel::Ready {
            notes: found
                .notes
                .into_iter()
                .map(|n| (n.title, n.body.unwrap_or_default()))
                .collect(),
            tasks: found
                .tasks
                .into_iter()
                .map(|t| {
                    let status = t.status.map(|s| s.to_string()).unwrap_or_default();
                    (t.title, status)
                })
                .collect(),
        },
        Err(CrmRecordsError::NotProvisioned) => CustomerPanel::NotProvisioned,
        Err(_) => CustomerPanel::Unavailable,
    }
}

/// `notes` | `tasks` | `opportunities` → the kind; anything else is a 404.
fn kind_of(segment: &str) -> Result<(RecordKind, &'static str), ApiError> {
    match segment {
        "notes" => Ok((RecordKind::Note, "notes")),
        "tasks" => Ok((RecordKind::Task, "tasks")),
        "opportunities" => Ok((RecordKind::Opportunity, "opportunities")),
        _ => Err(ApiError::not_found(
            "crm_kind_not_found",
            "No such CRM list.",
        )),
    }
}

/// Twenty's default opportunity stages.
const STAGES: &[&str] = &["NEW", "SCREENING", "MEETING", "PROPOSAL", "CUSTOMER"];
const STATUSES: &[&str] = &["TODO", "IN_PROGRESS", "DONE"];

/// A record as a list row.
pub struct Row {
    pub id: String,
    pub title: String,
    pub detail: String,
    pub when: String,
    pub href: String,
}

fn row(v: &View, plural: &str, r: &CrmRecord) -> Row {
    let detail = match r.kind {
        RecordKind::Note => r
            .body
            .clone()
            .unwrap_or_default()
            .chars()
            .take(140)
            .collect(),
        RecordKind::Task => {
            let status = r
                .status
                .map(|s| v.t(&format!("crm.status.{s}")).to_owned())
                .unwrap_or_default();
            match r.due_at {
                Some(due) => format!("{status} · {}", v.date(due.date())),
                None => status,
            }
        }
        RecordKind::Opportunity => {
            let amount = r
                .amount
                .as_ref()
                .map(|m| format!("{} {}", m.currency_code, m.amount()))
                .unwrap_or_default();
            let stage = r
                .stage
                .as_deref()
                .map(|s| v.t(&format!("crm.stage.{s}")).to_owned())
                .unwrap_or_default();
            format!("{amount} · {stage}")
        }
    };
    Row {
        id: r.id.to_string(),
        title: r.title.clone(),
        detail,
        when: v.datetime(r.updated_at),
        href: v.href(&format!("/app/crm/{plural}/{}", r.id)),
    }
}

#[derive(Template)]
#[template(path = "screens/crm.html")]
struct ListScreen<'a> {
    v: &'a View,
    plural: &'static str,
    /// `None` when there is no workspace (the message shows instead).
    rows: Option<Vec<Row>>,
    problem: &'static str,
    more: Option<String>,
    notice: &'static str,
    new_href: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// `GET /app/crm/{kind}`: the tenant's records of that kind, newest first, by cursor.
pub async fn list(
    State(state): State<AppState>,
    screen: Screen,
    Path(kind): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (kind, plural) = kind_of(&kind)?;
    list_page(&state, &screen, kind, plural, query.cursor, "").await
}

async fn list_page(
    state: &AppState,
    screen: &Screen,
    kind: RecordKind,
    plural: &'static str,
    cursor: Option<String>,
    notice: &'static str,
) -> Result<Response, ApiError> {
    let v = &screen.v;
    let (rows, problem, more) = match state.crm_records() {
        None => (None, "crm.not_provisioned", None),
        Some(records) => match records.list(screen.ctx.id(), kind, cursor, 25).await {
            Ok(page) => {
                let more = page.next_cursor.map(|c| {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    query.append_pair("cursor", &c);
                    v.href(&format!("/app/crm/{plural}?{}", query.finish()))
                });
                let rows = page.records.iter().map(|r| row(v, plural, r)).collect();
                (Some(rows), "", more)
            }
            Err(CrmRecordsError::NotProvisioned) => (None, "crm.not_provisioned", None),
            Err(CrmRecordsError::Unavailable(_)) => (None, "crm.unavailable", None),
            Err(other) => return Err(other.into()),
        },
    };
    let page = ListScreen {
        v,
        plural,
        rows,
        problem: if problem.is_empty() { "" } else { v.t(problem) },
        more,
        notice: if notice.is_empty() { "" } else { v.t(notice) },
        new_href: v.href(&format!("/app/crm/{plural}/new")),
    };
    let mut response = v.respond("crm", "nav.crm", render(&page)?);
    if !notice.is_empty() {
        let trigger = serde_json::json!({ "wosool:toast": { "message": v.t(notice) } }).to_string();
        if let Ok(value) = HeaderValue::from_str(&trigger) {
            response.headers_mut().insert("hx-trigger", value);
        }
    }
    Ok(response)
}

/// The form's fields as shown (strings, so a refused input is shown back as typed).
#[derive(Debug, Default, Deserialize)]
pub struct RecordForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    status: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    due_at: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    stage: String,
    /// The Salla customer id the record is about.
    #[serde(default)]
    customer: String,
}

#[derive(Template)]
#[template(path = "screens/crm_form.html")]
struct FormScreen<'a> {
    v: &'a View,
    plural: &'static str,
    is_note: bool,
    is_task: bool,
    is_opportunity: bool,
    action: String,
    editing: bool,
    f: RecordForm,
    error: String,
    statuses: Vec<(&'static str, &'static str)>,
    stages: Vec<(&'static str, &'static str)>,
    list_href: String,
    kind_label: &'static str,
}

fn form_page(
    v: &View,
    kind: RecordKind,
    plural: &'static str,
    action: String,
    editing: bool,
    f: RecordForm,
    error: String,
) -> Result<Response, ApiError> {
    let page = FormScreen {
        v,
        plural,
        is_note: kind == RecordKind::Note,
        is_task: kind == RecordKind::Task,
        is_opportunity: kind == RecordKind::Opportunity,
        action,
        editing,
        f,
        error,
        statuses: STATUSES
            .iter()
            .map(|s| (*s, v.t(&format!("crm.status.{s}"))))
            .collect(),
        stages: STAGES
            .iter()
            .map(|s| (*s, v.t(&format!("crm.stage.{s}"))))
            .collect(),
        list_href: v.href(&format!("/app/crm/{plural}")),
        kind_label: v.t(&format!("crm.{plural}")),
    };
    Ok(v.respond("crm", "nav.crm", render(&page)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    customer: Option<String>,
}

/// `GET /app/crm/{kind}/new[?customer=<salla id>]`: the create form.
pub async fn new(
    screen: Screen,
    Path(kind): Path<String>,
    Query(query): Query<NewQuery>,
) -> Result<Response, ApiError> {
    let (kind, plural) = kind_of(&kind)?;
    let f = RecordForm {
        customer: query.customer.unwrap_or_default(),
        currency: "SAR".into(),
        ..RecordForm::default()
    };
    let action = screen.v.href(&format!("/app/crm/{plural}"));
    form_page(&screen.v, kind, plural, action, false, f, String::new())
}

/// The form as a `RecordInput`, or the message to show with it.
fn input_of(kind: RecordKind, f: &RecordForm) -> Result<RecordInput, String> {
    let given = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    let status = match (kind, given(&f.status)) {
        (RecordKind::Task, Some(s)) => Some(
            s.parse::<TaskStatus>()
                .map_err(|_| format!("status: {s:?}"))?,
        ),
        _ => None,
    };
    let due_at = match (kind, given(&f.due_at)) {
        (RecordKind::Note, _) | (_, None) => None,
        (_, Some(text)) => {
            let bad = || format!("due_at: {text:?} is not a date");
            let mut parts = text.splitn(3, '-').map(|p| p.parse::<i32>().ok());
            let (Some(Some(year)), Some(Some(month)), Some(Some(day))) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let month = u8::try_from(month)
                .ok()
                .and_then(|m| time::Month::try_from(m).ok())
                .ok_or_else(bad)?;
            let day = u8::try_from(day).map_err(|_| bad())?;
            let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
            Some(OffsetDateTime::new_utc(date, Time::MIDNIGHT))
        }
    };
    let amount = match (kind, given(&f.amount)) {
        (RecordKind::Opportunity, Some(amount)) => {
            let currency = given(&f.currency).unwrap_or_else(|| "SAR".into());
            Some(Money::parse(&amount, &currency).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let customer = match given(&f.customer) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| format!("customer: {text:?} is not a customer id"))?,
        ),
    };
    Ok(RecordInput {
        title: f.title.trim().to_owned(),
        body: if kind == RecordKind::Opportunity {
            None
        } else {
            given(&f.body)
        },
        status,
        due_at,
        amount,
        stage: if kind == RecordKind::Opportunity {
            given(&f.stage)
        } else {
            None
        },
        customer,
    })
}

fn records(state: &AppState) -> Result<&crate::crm::records::CrmRecords, ApiError> {
    state
        .crm_records()
        .ok_or_else(|| CrmRecordsError::NotProvisioned.into())
}

/// `POST /app/crm/{kind}`: creates the record and shows the list; a refused input shows the form again with
/// the reason.
pub async fn create(
    State(state): State<AppState>,
    screen: Screen,
    origin: Origin,
    Path(kind): Path<String>,
    Form(f): Form<RecordForm>,
) -> Result<Response, ApiError> {
    let (kind, plural) = kind_of(&kind)?;
    let action = screen.v.href(&format!("/app/crm/{plural}"));
    let input = match input_of(kind, &f) {
        Ok(input) => input,
        Err(message) => return form_page(&screen.v, kind, plural, action, false, f, message),
    };
    match records(&state)?.create(screen.ctx.id(), kind, input).await {
        Ok(record) => {
            audited(&screen, &origin, "created", kind, record.id).await;
            list_page(&state, &screen, kind, plural, None, "crm.created").await
        }
        Err(CrmRecordsError::Invalid(message)) => {
            form_page(&screen.v, kind, plural, action, false, f, message)
        }
        Err(other) => Err(other.into()),
    }
}

fn record_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("crm_record_not_found", "No such CRM record."))
}

/// `GET /app/crm/{kind}/{id}`: the edit form of one of the tenant's records (404 for any other id).
pub async fn edit(
    State(state): State<AppState>,
    screen: Screen,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (kind, plural) = kind_of(&kind)?;
    let id = record_id(&id)?;
    let r = records(&state)?.get(screen.ctx.id(), kind, id).await?;
    let f = RecordForm {
        title: r.title,
        body: r.body.unwrap_or_default(),
        status: r.status.map(|s| s.to_string()).unwrap_or_default(),
        due_at: r
            .due_at
            .map(|d| {
                let date = d.date();
                format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day()
                )
            })
            .unwrap_or_default(),
        amount: r.amount.as_ref().map(Money::amount).unwrap_or_default(),
        currency: r
            .amount
            .as_ref()
            .map(|m| m.currency_code.clone())
            .unwrap_or_else(|| "SAR".into()),
        stage: r.stage.unwrap_or_default(),
        customer: r.customer.map(|c| c.to_string()).unwrap_or_default(),
    };
    let action = screen.v.href(&format!("/app/crm/{plural}/{id}"));
    form_page(&screen.v, kind, plural, action, true, f, String::new())
}

/// `POST /app/crm/{kind}/{id}`: saves the edit and shows the list.
pub async fn update(
    State(state): State<AppState>,
    screen: Screen,
    origin: Origin,
    Path((kind, id)): Path<(String, String)>,
    Form(f): Form<RecordForm>,
) -> Result<Response, ApiError> {
    let (kind, plural) = kind_of(&kind)?;
    let id = record_id(&id)?;
    let action = screen.v.href(&format!("/app/crm/{plural}/{id}"));
    let input = match input_of(kind, &f) {
        Ok(input) => input,
        Err(message) => return form_page(&screen.v, kind, plural, action, true, f, message),
    };
    match records(&state)?
        .update(screen.ctx.id(), kind, id, input)
        .await
    {
        Ok(_) => {
            audited(&screen, &origin, "updated", kind, id).await;
            list_page(&state, &screen, kind, plural, None, "crm.saved").await
        }
        Err(CrmRecordsError::Invalid(message)) => {
            form_page(&screen.v, kind, plural, action, true, f, message)
        }
        Err(other) => Err(other.into()),
    }
}

/// `crm.note.created`, `crm.task.updated`, …: who wrote which record (never its content) to the tenant's
/// audit log.
async fn audited(screen: &Screen, origin: &Origin, what: &str, kind: RecordKind, id: Uuid) {
    crate::audit::Event::tenant(
        &screen.ctx,
        crate::audit::Via::App,
        format!("crm.{kind}.{what}"),
    )
    .origin(origin)
    .resource(format!("{kind}:{id}"))
    .record_tenant(&screen.pool)
    .await;
}
