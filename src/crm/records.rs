//! The tenant's own CRM records for the merchant app's screens: notes, tasks and opportunities of the tenant's
//! Twenty workspace, listed, read, created and edited server-side (Twenty's UI never appears).
//!
//! Every call goes where the `/crm/*` proxy goes: the Twenty instance the tenant's workspace lives on, with the
//! tenant's own sealed API key (`crm::workspace`), which alone selects the workspace. Callers pass a
//! [`TenantId`], never a workspace or a key, so a tenant can only ever reach its own records: another tenant's
//! record id is simply not found in this tenant's workspace.
//!
//! Twenty's REST data API at the pinned version (docs/twenty.md "Notes, tasks and opportunities"):
//! `/rest/notes` (`title`, `bodyV2`), `/rest/tasks` (`title`, `bodyV2`, `status`, `dueAt`),
//! `/rest/opportunities` (`name`, `amount {amountMicros, currencyCode}`, `stage`, `closeDate`,
//! `pointOfContactId`); a note or task is linked to a customer by a `noteTargets` / `taskTargets` row whose
//! `personId` is the person the record sync created for the Salla customer (`sync::records::record_id`).
//! Calls go through [`TwentyClient`]: timeout, bounded retries with backoff on 5xx and network errors,
//! 429/`Retry-After` honoured. Creates carry an id we mint and use `?upsert=true`, so a retried create cannot
//! make a second record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::CrmSetupError;
use super::sync::records::{SyncObject, record_id};
use super::twenty::client::rest_data;
use super::twenty::{CallOptions, TwentyClient, TwentyError};
use super::workspace::{self, WorkspaceState};
use crate::core::Core;
use crate::error::ApiError;
use crate::secrets::Keyring;
use crate::string_enum::string_enum;
use crate::tenancy::TenantId;

/// Longest title (note and task `title`, opportunity `name`), in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body (markdown), in characters.
pub const MAX_BODY_CHARS: usize = 20_000;
/// Most records a page holds (Twenty's REST maximum, `QUERY_MAX_RECORDS`).
pub const MAX_PAGE: u32 = 200;
/// Most notes (and most tasks) [`CrmRecords::for_customer`] returns, newest first.
pub const MAX_CUSTOMER_RECORDS: u32 = 100;
/// Longest cursor accepted (Twenty's cursors are short base64 strings).
const MAX_CURSOR_CHARS: usize = 1_000;

string_enum! {
    /// Which of the tenant's CRM objects.
    pub enum RecordKind {
        Note = "note",
        Task = "task",
        Opportunity = "opportunity",
    }
}

string_enum! {
    /// A task's `status`: the options of Twenty's standard task object.
    pub enum TaskStatus {
        Todo = "TODO",
        InProgress = "IN_PROGRESS",
        Done = "DONE",
    }
}

impl RecordKind {
    /// The REST path segment (`namePlural`).
    fn plural(self) -> &'static str {
        match self {
            Self::Note => "notes",
            Self::Task => "tasks",
            Self::Opportunity => "opportunities",
        }
    }

    /// The object linking records of this kind to people (`noteTargets`, `taskTargets`) and its field naming
    /// the record (`noteId`, `taskId`); opportunities link through their own `pointOfContactId`.
    fn targets(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Note => Some(("noteTargets", "noteId")),
            Self::Task => Some(("taskTargets", "taskId")),
            Self::Opportunity => None,
        }
    }
}

/// An amount of money as Twenty's CURRENCY stores it: micros (amount × 1,000,000) and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount_micros: i64,
    pub currency_code: String,
}

impl Money {
    /// From a decimal text (`"1250"`, `"1250.5"`, at most 6 decimals, not negative) and a currency code.
    pub fn parse(amount: &str, currency_code: &str) -> Result<Self, CrmRecordsError> {
        let invalid = || CrmRecordsError::Invalid(format!("amount: {amount:?} is not an amount"));
        let amount = amount.trim();
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > 6
        {
            return Err(invalid());
        }
        let whole: i64 = whole.parse().map_err(|_| invalid())?;
        let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
        let amount_micros = whole
            .checked_mul(1_000_000)
            .and_then(|m| m.checked_add(fraction))
            .ok_or_else(invalid)?;
        let money = Self {
            amount_micros,
            currency_code: currency_code.trim().to_ascii_uppercase(),
        };
        money.validate()?;
        Ok(money)
    }

    /// The amount as decimal text (`"1250.5"`).
    pub fn amount(&self) -> String {
        let sign = if self.amount_micros < 0 { "-" } else { "" };
        let micros = self.amount_micros.unsigned_abs();
        let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
        if fraction == 0 {
            format!("{sign}{whole}")
        } else {
            let fraction = format!("{fraction:06}");
            format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
        }
    }

    fn validate(&self) -> Result<(), CrmRecordsError> {
        if self.amount_micros < 0 {
            return Err(CrmRecordsError::Invalid(
                "amount: must not be negative".into(),
            ));
        }
        if self.currency_code.len() != 3
            || !self.currency_code.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(CrmRecordsError::Invalid(format!(
                "amount: {:?} is not an ISO 4217 currency code",
                self.currency_code
            )));
        }
        Ok(())
    }
}

/// A note, task or opportunity of the tenant's CRM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrmRecord {
    pub id: Uuid,
    pub kind: RecordKind,
    /// A note's or task's `title`, an opportunity's `name`.
    pub title: String,
    /// Notes and tasks: `bodyV2.markdown`.
    pub body: Option<String>,
    /// Tasks only.
    pub status: Option<TaskStatus>,
    /// A task's `dueAt`, an opportunity's `closeDate`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    /// Opportunities only.
    pub amount: Option<Money>,
    /// Opportunities only: the `stage` option value (Twenty's defaults: NEW, SCREENING, MEETING, PROPOSAL,
    /// CUSTOMER; a workspace may have others).
    pub stage: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The Salla customer id the record is linked to (a note's or task's target person, an opportunity's
    /// point of contact), when that person came from the record sync.
    pub customer: Option<i64>,
}

/// What a create or an edit sets. Fields that do not apply to the kind must be `None` (status and due date
/// are for tasks, body for notes and tasks, amount and stage for opportunities; `due_at` is an
/// opportunity's close date). An edit replaces every field of the kind with what is given (`None` clears),
/// except `stage` (`None` keeps it) and `customer` (`None` keeps the link, `Some` links to that customer
/// instead).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RecordInput {
    pub title: String,
    pub body: Option<String>,
    pub status: Option<TaskStatus>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    pub amount: Option<Money>,
    pub stage: Option<String>,
    pub customer: Option<i64>,
}

impl RecordInput {
    /// Refuses what does not fit `kind` or Twenty's fields, before any call.
    pub fn validate(&self, kind: RecordKind) -> Result<(), CrmRecordsError> {
        let invalid = |m: String| Err(CrmRecordsError::Invalid(m));
        let title = self.title.trim();
        if title.is_empty() {
            return invalid("title: must not be empty".into());
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return invalid(format!("title: at most {MAX_TITLE_CHARS} characters"));
        }
        if title.chars().any(char::is_control) {
            return invalid("title: must be one line of text".into());
        }
        if let Some(body) = &self.body {
            if kind == RecordKind::Opportunity {
                return invalid("body: opportunities have no body".into());
            }
            if body.chars().count() > MAX_BODY_CHARS {
                return invalid(format!("body: at most {MAX_BODY_CHARS} characters"));
            }
            if body.contains('\0') {
                return invalid("body: must be text".into());
            }
        }
        if self.status.is_some() && kind != RecordKind::Task {
            return invalid(format!("status: only tasks have a status, not a {kind}"));
        }
        if self.due_at.is_some() && kind == RecordKind::Note {
            return invalid("due_at: notes have no date".into());
        }
        if let Some(due) = self.due_at
            && !(1970..=9999).contains(&due.year())
        {
            return invalid("due_at: out of range".into());
        }
        if kind != RecordKind::Opportunity {
            if self.amount.is_some() {
                return invalid(format!(
                    "amount: only opportunities have an amount, not a {kind}"
                ));
            }
            if self.stage.is_some() {
                return invalid(format!(
                    "stage: only opportunities have a stage, not a {kind}"
                ));
            }
        }
        if let Some(amount) = &self.amount {
            amount.validate()?;
        }
        if let Some(stage) = &self.stage
            && !is_option_value(stage)
        {
            return invalid(format!("stage: {stage:?} is not a stage value"));
        }
        if self.customer.is_some_and(|c| c <= 0) {
            return invalid("customer: not a Salla customer id".into());
        }
        Ok(())
    }
}

/// Twenty's SELECT option value rule: UPPER_SNAKE, at most 63 characters.
fn is_option_value(value: &str) -> bool {
    value.len() <= 63
        && value.split('_').enumerate().all(|(i, part)| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && (i > 0 || part.as_bytes()[0].is_ascii_uppercase())
        })
}

/// One page of records, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPage {
    pub records: Vec<CrmRecord>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// How many records of the kind the workspace holds, when Twenty says.
    pub total_count: Option<u64>,
}

/// What the customer card shows: the customer's notes and tasks, newest first (at most
/// [`MAX_CUSTOMER_RECORDS`] each).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerCrm {
    pub notes: Vec<CrmRecord>,
    pub tasks: Vec<CrmRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum CrmRecordsError {
    /// The tenant has no ready CRM workspace (not provisioned yet, waiting for capacity, or Twenty is not
    /// configured on this server): the UI says so.
    #[error("the organization's CRM workspace is not ready")]
    NotProvisioned,
    #[error("no such record in the organization's CRM")]
    NotFound,
    /// Refused input: ours before any call, or Twenty's validation message.
    #[error("{0}")]
    Invalid(String),
    /// Twenty unreachable, failing, throttling past our retries, refusing our key, or answering oddly.
    #[error("the CRM is unavailable: {0}")]
    Unavailable(String),
}

impl From<CrmRecordsError> for ApiError {
    fn from(error: CrmRecordsError) -> Self {
        match error {
            CrmRecordsError::NotProvisioned => ApiError::conflict(
                "crm_workspace_not_ready",
                "The organization's CRM workspace is not set up yet; try again later.",
            ),
            CrmRecordsError::NotFound => {
                ApiError::not_found("crm_record_not_found", "No such CRM record.")
            }
            CrmRecordsError::Invalid(message) => {
                ApiError::unprocessable("invalid_crm_record", message)
            }
            CrmRecordsError::Unavailable(cause) => {
                tracing::warn!(%cause, "CRM records unavailable");
                ApiError::Unavailable {
                    code: "crm_unavailable",
                    message: "The CRM is not answering right now; try again shortly.".into(),
                    details: None,
                }
            }
        }
    }
}

impl From<TwentyError> for CrmRecordsError {
    fn from(error: TwentyError) -> Self {
        match &error {
            TwentyError::Http { status: 404, .. } => Self::NotFound,
            // Twenty's REST layer answers RECORD_NOT_FOUND as 400 "Record not found".
            TwentyError::Http { status: 400, .. } if error.message_contains("record not found") => {
                Self::NotFound
            }
            TwentyError::Http {
                status: 400 | 422,
                message,
                ..
            } => Self::Invalid(message.chars().take(300).collect()),
            TwentyError::Http {
                status: 401 | 403, ..
            } => {
                tracing::error!("Twenty refused the tenant's workspace API key");
                Self::Unavailable(error.to_string())
            }
            _ => Self::Unavailable(error.to_string()),
        }
    }
}

/// The CRM records service: one client per configured Twenty instance. Cheap to clone.
#[derive(Clone)]
pub struct CrmRecords {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    keyring: Keyring,
    clients: BTreeMap<String, TwentyClient>,
}

impl std::fmt::Debug for CrmRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmRecords").finish_non_exhaustive()
    }
}

/// A tenant's workspace, as reached for one call.
struct Ws<'a> {
    client: &'a TwentyClient,
    key: String,
}

impl Ws<'_> {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, CrmRecordsError> {
        Ok(self
            .client
            .rest(
                Method::GET,
                path,
                query,
                None,
                &self.key,
                CallOptions::IDEMPOTENT,
            )
            .await?)
    }

    /// A create with our own id and `upsert=true`: repeating it changes nothing, so it is retried.
    async fn create(&self, plural: &str, body: &Value) -> Result<Value, CrmRecordsError> {
        let answer = self
            .client
            .rest(
                Method::POST,
                &format!("/{plural}"),
                &[("upsert", "true")],
                Some(body),
                &self.key,
                CallOptions::IDEMPOTENT,
            )
            .await?;
        single(&answer)
    }

    async fn patch(&self, plural: &str, id: Uuid, body: &Value) -> Result<Value, CrmRecordsError> {
        let answer = self
            .client
            .rest(
                Method::PATCH,
                &format!("/{plural}/{id}"),
                &[],
                Some(body),
                &self.key,
                CallOptions::IDEMPOTENT,
            )
            .await?;
        single(&answer)
    }

    async fn delete(&self, plural: &str, id: Uuid) -> Result<(), CrmRecordsError> {
        match self
            .client
            .rest(
                Method::DELETE,
                &format!("/{plural}/{id}"),
                &[],
                None,
                &self.key,
                CallOptions::IDEMPOTENT,
            )
            .await
            .map_err(CrmRecordsError::from)
        {
            Ok(_) | Err(CrmRecordsError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Every record of `plural` matching `filter` (Twenty's REST filter syntax), newest first, up to `limit`.
    async fn find(
        &self,
        plural: &str,
        filter: &str,
        limit: u32,
    ) -> Result<Vec<Value>, CrmRecordsError> {
        let limit = limit.clamp(1, MAX_PAGE).to_string();
        let answer = self
            .get(
                &format!("/{plural}"),
                &[
                    ("filter", filter),
                    ("order_by", "createdAt[DescNullsLast]"),
                    ("limit", &limit),
                    ("depth", "0"),
                ],
            )
            .await?;
        list(&answer)
    }
}

/// The record of a single-record REST answer (`data.<key>`); `null` there is "not found".
fn single(answer: &Value) -> Result<Value, CrmRecordsError> {
    match rest_data(answer) {
        Some(Value::Object(record)) => Ok(Value::Object(record.clone())),
        Some(Value::Null) => Err(CrmRecordsError::NotFound),
        _ => Err(unexpected("a record under data")),
    }
}

/// The records of a findMany REST answer.
fn list(answer: &Value) -> Result<Vec<Value>, CrmRecordsError> {
    match rest_data(answer) {
        Some(Value::Array(records)) => Ok(records.clone()),
        _ => Err(unexpected("a list under data")),
    }
}

fn unexpected(what: &str) -> CrmRecordsError {
    CrmRecordsError::Unavailable(format!("unexpected answer from Twenty: expected {what}"))
}

/// `["a","b"]` for Twenty's `[in]` filter (ids are UUIDs: nothing to escape).
fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    let quoted: Vec<String> = ids.into_iter().map(|id| format!("\"{id}\"")).collect();
    format!("[{}]", quoted.join(","))
}

impl CrmRecords {
    /// The service when Twenty is configured (`crm.base_url` or `[[crm.instances]]`), `None` otherwise.
    pub fn build(core: &Core) -> Result<Option<Self>, CrmSetupError> {
        let config = &core.config().crm;
        if !config.enabled() {
            return Ok(None);
        }
        let mut clients = BTreeMap::new();
        for instance in config.instances() {
            clients.insert(instance.key, TwentyClient::new(&instance.base_url, config)?);
        }
        Ok(Some(Self {
            inner: Arc::new(Inner {
                db: core.db().clone(),
                keyring: core.keyring().clone(),
                clients,
            }),
        }))
    }

    /// The tenant's own workspace: its instance's client and its API key.
    async fn workspace(&self, tenant: TenantId) -> Result<Ws<'_>, CrmRecordsError> {
        let state = workspace::state(&self.inner.db, &self.inner.keyring, tenant)
            .await
            .map_err(|error| {
                tracing::error!(tenant_id = %tenant, %error, "cannot load the tenant's Twenty credentials");
                CrmRecordsError::Unavailable("workspace credentials".into())
            })?;
        let credentials = match state {
            WorkspaceState::Ready(credentials) => credentials,
            WorkspaceState::WaitingForCapacity | WorkspaceState::NotReady => {
                return Err(CrmRecordsError::NotProvisioned);
            }
        };
        let Some(client) = self.inner.clients.get(&credentials.instance) else {
            tracing::error!(tenant_id = %tenant, instance = %credentials.instance, "the tenant's workspace is on a Twenty instance that is not configured");
            return Err(CrmRecordsError::Unavailable(
                "the workspace's Twenty instance is not configured".into(),
            ));
        };
        Ok(Ws {
            client,
            key: credentials.api_key,
        })
    }

    /// A page of the tenant's records of `kind`, newest first; `after` is the previous page's `next_cursor`.
    /// `limit` is clamped to 1..=200.
    pub async fn list(
        &self,
        tenant: TenantId,
        kind: RecordKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<RecordPage, CrmRecordsError> {
        if let Some(cursor) = &after
            && (cursor.is_empty()
                || cursor.len() > MAX_CURSOR_CHARS
                || !cursor
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b)))
        {
            return Err(CrmRecordsError::Invalid("after: not a cursor".into()));
        }
        let ws = self.workspace(tenant).await?;
        let limit = limit.clamp(1, MAX_PAGE).to_string();
        let mut query = vec![
            ("order_by", "createdAt[DescNullsLast]"),
            ("limit", limit.as_str()),
            ("depth", "0"),
        ];
        if let Some(cursor) = &after {
            query.push(("starting_after", cursor.as_str()));
        }
        let answer = ws.get(&format!("/{}", kind.plural()), &query).await?;
        let raw = list(&answer)?;
        let page_info = &answer["pageInfo"];
        let next_cursor = page_info["hasNextPage"]
            .as_bool()
            .unwrap_or(false)
            .then(|| page_info["endCursor"].as_str().map(str::to_owned))
            .flatten();
        let records = self.with_customers(&ws, kind, raw).await?;
        Ok(RecordPage {
            records,
            next_cursor,
            total_count: answer["totalCount"].as_u64(),
        })
    }

    /// One record of the tenant's; `NotFound` when the tenant's workspace has none with that id.
    pub async fn get(
        &self,
        tenant: TenantId,
        kind: RecordKind,
        id: Uuid,
    ) -> Result<CrmRecord, CrmRecordsError> {
        let ws = self.workspace(tenant).await?;
        let record = self.fetch(&ws, kind, id).await?;
        self.one_with_customer(&ws, kind, record).await
    }

    /// Creates a record, linked to `input.customer` when given (that customer must have been synced to the
    /// CRM: otherwise `Invalid`).
    pub async fn create(
        &self,
        tenant: TenantId,
        kind: RecordKind,
        input: RecordInput,
    ) -> Result<CrmRecord, CrmRecordsError> {
        input.validate(kind)?;
        let ws = self.workspace(tenant).await?;
        let person = match input.customer {
            Some(customer) => Some(self.person_of(&ws, customer).await?),
            None => None,
        };
        let id = Uuid::new_v4();
        let mut body = fields(kind, &input, false);
        body.insert("id".into(), json!(id));
        if kind == RecordKind::Opportunity
            && let Some(person) = person
        {
            body.insert("pointOfContactId".into(), json!(person));
        }
        let created = ws.create(kind.plural(), &Value::Object(body)).await?;
        if let (Some((targets, record_field)), Some(person)) = (kind.targets(), person) {
            self.link(&ws, targets, record_field, id, person).await?;
        }
        let mut record = parse(kind, &created)?;
        record.customer = input.customer;
        Ok(record)
    }

    /// Edits a record of the tenant's (see [`RecordInput`] for what an edit replaces); `NotFound` when the
    /// tenant's workspace has none with that id.
    pub async fn update(
        &self,
        tenant: TenantId,
        kind: RecordKind,
        id: Uuid,
        input: RecordInput,
    ) -> Result<CrmRecord, CrmRecordsError> {
        input.validate(kind)?;
        let ws = self.workspace(tenant).await?;
        // Read first: an id from elsewhere is NotFound before anything is written.
        self.fetch(&ws, kind, id).await?;
        let person = match input.customer {
            Some(customer) => Some(self.person_of(&ws, customer).await?),
            None => None,
        };
        let mut body = fields(kind, &input, true);
        if kind == RecordKind::Opportunity
            && let Some(person) = person
        {
            body.insert("pointOfContactId".into(), json!(person));
        }
        let updated = ws.patch(kind.plural(), id, &Value::Object(body)).await?;
        if let (Some((targets, record_field)), Some(person)) = (kind.targets(), person) {
            let existing = ws
                .find(targets, &format!("{record_field}[eq]:\"{id}\""), MAX_PAGE)
                .await?;
            let mut linked = false;
            for target in &existing {
                match uuid_of(&target["personId"]) {
                    Some(p) if p == person => linked = true,
                    Some(_) => {
                        if let Some(target_id) = uuid_of(&target["id"]) {
                            ws.delete(targets, target_id).await?;
                        }
                    }
                    None => {}
                }
            }
            if !linked {
                self.link(&ws, targets, record_field, id, person).await?;
            }
        }
        self.one_with_customer(&ws, kind, updated).await
    }

    /// The notes and tasks linked to the Salla customer's person (empty before the sync created it).
    pub async fn for_customer(
        &self,
        tenant: TenantId,
        salla_customer_id: i64,
    ) -> Result<CustomerCrm, CrmRecordsError> {
        if salla_customer_id <= 0 {
            return Err(CrmRecordsError::Invalid(
                "customer: not a Salla customer id".into(),
            ));
        }
        let ws = self.workspace(tenant).await?;
        let person = record_id(SyncObject::Person, &salla_customer_id.to_string());
        let mut found = Vec::with_capacity(2);
        for kind in [RecordKind::Note, RecordKind::Task] {
            let Some((targets, record_field)) = kind.targets() else {
                continue;
            };
            let links = ws
                .find(targets, &format!("personId[eq]:\"{person}\""), MAX_PAGE)
                .await?;
            let ids: BTreeSet<Uuid> = links
                .iter()
                .filter_map(|t| uuid_of(&t[record_field]))
                .collect();
            let records = if ids.is_empty() {
                vec![]
            } else {
                ws.find(
                    kind.plural(),
                    &format!("id[in]:{}", id_list(ids)),
                    MAX_CUSTOMER_RECORDS,
                )
                .await?
                .iter()
                .map(|raw| {
                    parse(kind, raw).map(|mut record| {
                        record.customer = Some(salla_customer_id);
                        record
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
            };
            found.push(records);
        }
        let tasks = found.pop().unwrap_or_default();
        let notes = found.pop().unwrap_or_default();
        Ok(CustomerCrm { notes, tasks })
    }

    async fn fetch(
        &self,
        ws: &Ws<'_>,
        kind: RecordKind,
        id: Uuid,
    ) -> Result<Value, CrmRecordsError> {
        let answer = ws
            .get(&format!("/{}/{id}", kind.plural()), &[("depth", "0")])
            .await?;
        single(&answer)
    }

    /// The Twenty person of a Salla customer, which must exist (the sync created it).
    async fn person_of(&self, ws: &Ws<'_>, customer: i64) -> Result<Uuid, CrmRecordsError> {
        let person = record_id(SyncObject::Person, &customer.to_string());
        match ws
            .get(&format!("/people/{person}"), &[("depth", "0")])
            .await
            .and_then(|answer| single(&answer))
        {
            Ok(_) => Ok(person),
            Err(CrmRecordsError::NotFound) => Err(CrmRecordsError::Invalid(format!(
                "customer: customer {customer} is not in the CRM yet"
            ))),
            Err(error) => Err(error),
        }
    }

    /// A `noteTargets` / `taskTargets` row linking the record to the person.
    async fn link(
        &self,
        ws: &Ws<'_>,
        targets: &str,
        record_field: &str,
        record: Uuid,
        person: Uuid,
    ) -> Result<(), CrmRecordsError> {
        let body = json!({ "id": Uuid::new_v4(), record_field: record, "personId": person });
        ws.create(targets, &body).await.map(drop)
    }

    async fn one_with_customer(
        &self,
        ws: &Ws<'_>,
        kind: RecordKind,
        raw: Value,
    ) -> Result<CrmRecord, CrmRecordsError> {
        let mut records = self.with_customers(ws, kind, vec![raw]).await?;
        records.pop().ok_or_else(|| unexpected("a record"))
    }

    /// Parses raw records and fills in `customer`: the people they are linked to (targets or point of
    /// contact), mapped back to Salla customer ids through the people's `sallaCustomerId`.
    async fn with_customers(
        &self,
        ws: &Ws<'_>,
        kind: RecordKind,
        raw: Vec<Value>,
    ) -> Result<Vec<CrmRecord>, CrmRecordsError> {
        let mut records = raw
            .iter()
            .map(|r| parse(kind, r))
            .collect::<Result<Vec<_>, _>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        // Record id → person id.
        let mut person_of: HashMap<Uuid, Uuid> = HashMap::new();
        match kind.targets() {
            Some((targets, record_field)) => {
                let ids = id_list(records.iter().map(|r| r.id));
                let links = ws
                    .find(targets, &format!("{record_field}[in]:{ids}"), MAX_PAGE)
                    .await?;
                // Oldest link last in the list (newest first), so the newest one wins.
                for link in links.iter().rev() {
                    if let (Some(record), Some(person)) =
                        (uuid_of(&link[record_field]), uuid_of(&link["personId"]))
                    {
                        person_of.insert(record, person);
                    }
                }
            }
            None => {
                for (record, raw) in records.iter().zip(&raw) {
                    if let Some(person) = uuid_of(&raw["pointOfContactId"]) {
                        person_of.insert(record.id, person);
                    }
                }
            }
        }
        if person_of.is_empty() {
            return Ok(records);
        }
        let people: BTreeSet<Uuid> = person_of.values().copied().collect();
        let found = ws
            .find("people", &format!("id[in]:{}", id_list(people)), MAX_PAGE)
            .await?;
        let customers: HashMap<Uuid, i64> = found
            .iter()
            .filter_map(|person| {
                let id = uuid_of(&person["id"])?;
                let salla = person["sallaCustomerId"]
                    .as_str()
                    .or_else(|| person["externalId"].as_str())?
                    .parse()
                    .ok()?;
                Some((id, salla))
            })
            .collect();
        for record in &mut records {
            record.customer = person_of
                .get(&record.id)
                .and_then(|person| customers.get(person))
                .copied();
        }
        Ok(records)
    }
}

/// The Twenty fields `input` sets on a record of `kind`. On an edit (`update`), fields without a value are
/// sent as `null` (cleared), except `stage`, which is left out.
fn fields(kind: RecordKind, input: &RecordInput, update: bool) -> Map<String, Value> {
    let mut body = Map::new();
    let title = json!(input.title.trim());
    let body_v2 = |body: &Option<String>| match body.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => json!({ "markdown": text, "blocknote": null }),
        _ => Value::Null,
    };
    let date = |at: Option<OffsetDateTime>| {
        at.and_then(|at| at.format(&Rfc3339).ok())
            .map_or(Value::Null, Value::String)
    };
    let mut set = |key: &str, value: Value| {
        if update || !value.is_null() {
            body.insert(key.into(), value);
        }
    };
    match kind {
        RecordKind::Note => {
            set("title", title);
            set("bodyV2", body_v2(&input.body));
        }
        RecordKind::Task => {
            set("title", title);
            set("bodyV2", body_v2(&input.body));
            set("status", input.status.map_or(Value::Null, |s| json!(s)));
            set("dueAt", date(input.due_at));
        }
        RecordKind::Opportunity => {
            set("name", title);
            set(
                "amount",
                input.amount.as_ref().map_or(
                    Value::Null,
                    |m| json!({ "amountMicros": m.amount_micros, "currencyCode": m.currency_code }),
                ),
            );
            set("closeDate", date(input.due_at));
            if let Some(stage) = &input.stage {
                body.insert("stage".into(), json!(stage));
            }
        }
    }
    body
}

fn uuid_of(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

fn timestamp(value: &Value) -> Option<OffsetDateTime> {
    value
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `amountMicros` comes as a number or (NUMERIC) as a string.
fn micros(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f.round() as i64)),
        _ => None,
    }
}

/// A record of `kind` from Twenty's JSON (without `customer`, which the caller fills in).
fn parse(kind: RecordKind, raw: &Value) -> Result<CrmRecord, CrmRecordsError> {
    let id = uuid_of(&raw["id"]).ok_or_else(|| unexpected("a record id"))?;
    let created_at = timestamp(&raw["createdAt"]).ok_or_else(|| unexpected("createdAt"))?;
    let updated_at = timestamp(&raw["updatedAt"]).unwrap_or(created_at);
    let title_field = if kind == RecordKind::Opportunity {
        "name"
    } else {
        "title"
    };
    let mut record = CrmRecord {
        id,
        kind,
        title: raw[title_field].as_str().unwrap_or_default().to_owned(),
        body: None,
        status: None,
        due_at: None,
        amount: None,
        stage: None,
        created_at,
        updated_at,
        customer: None,
    };
    match kind {
        RecordKind::Note => record.body = text(&raw["bodyV2"]["markdown"]),
        RecordKind::Task => {
            record.body = text(&raw["bodyV2"]["markdown"]);
            record.status = raw["status"].as_str().and_then(TaskStatus::parse);
            record.due_at = timestamp(&raw["dueAt"]);
        }
        RecordKind::Opportunity => {
            let amount = &raw["amount"];
            record.amount = match (
                micros(&amount["amountMicros"]),
                text(&amount["currencyCode"]),
            ) {
                (Some(amount_micros), Some(currency_code)) => Some(Money {
                    amount_micros,
                    currency_code,
                }),
                _ => None,
            };
            record.stage = text(&raw["stage"]);
            record.due_at = timestamp(&raw["closeDate"]);
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str) -> RecordInput {
        RecordInput {
            title: title.into(),
            ..RecordInput::default()
        }
    }

    #[test]
    fn money_parses_decimals_into_micros_and_back() {
        let money = Money::parse("1250.5", "sar").unwrap();
        assert_eq!(money.amount_micros, 1_250_500_000);
        assert_eq!(money.currency_code, "SAR");
        assert_eq!(money.amount(), "1250.5");
        assert_eq!(Money::parse("7", "USD").unwrap().amount(), "7");
        for bad in ["", "-1", "1.1234567", "1e3", "abc", "99999999999999999999"] {
            assert!(Money::parse(bad, "SAR").is_err(), "{bad}");
        }
        assert!(Money::parse("1", "SA").is_err());
    }

    #[test]
    fn inputs_that_do_not_fit_the_kind_are_refused() {
        assert!(input("Call back").validate(RecordKind::Note).is_ok());
        assert!(input("  ").validate(RecordKind::Note).is_err());
        assert!(input(&"x".repeat(201)).validate(RecordKind::Task).is_err());
        let status = RecordInput {
            status: Some(TaskStatus::Done),
            ..input("t")
        };
        assert!(status.validate(RecordKind::Task).is_ok());
        assert!(status.validate(RecordKind::Note).is_err());
        let stage = RecordInput {
            stage: Some("proposal".into()),
            ..input("o")
        };
        assert!(stage.validate(RecordKind::Opportunity).is_err());
        let stage = RecordInput {
            stage: Some("PROPOSAL".into()),
            ..input("o")
        };
        assert!(stage.validate(RecordKind::Opportunity).is_ok());
        assert!(stage.validate(RecordKind::Task).is_err());
        let body = RecordInput {
            body: Some("x".into()),
            ..input("o")
        };
        assert!(body.validate(RecordKind::Opportunity).is_err());
        let customer = RecordInput {
            customer: Some(0),
            ..input("n")
        };
        assert!(customer.validate(RecordKind::Note).is_err());
    }

    #[test]
    fn edits_clear_what_is_not_given_but_keep_the_stage() {
        let task = fields(RecordKind::Task, &input("t"), true);
        assert_eq!(task["bodyV2"], Value::Null);
        assert_eq!(task["status"], Value::Null);
        let created = fields(RecordKind::Task, &input("t"), false);
        assert!(!created.contains_key("status"));
        let opportunity = fields(RecordKind::Opportunity, &input("o"), true);
        assert!(!opportunity.contains_key("stage"));
        assert_eq!(opportunity["name"], "o");
    }

    #[test]
    fn twenty_records_parse_per_kind() {
        let raw = json!({
            "id": "0b5f2c1e-6b1a-4c59-9f3e-0d6f2f1b7a10", "name": "Big order",
            "amount": {"amountMicros": "2500000000", "currencyCode": "SAR"}, "stage": "MEETING",
            "closeDate": null, "createdAt": "2026-01-02T03:04:05.678Z", "updatedAt": "2026-01-02T03:04:06.000Z",
        });
        let record = parse(RecordKind::Opportunity, &raw).unwrap();
        assert_eq!(record.title, "Big order");
        assert_eq!(record.amount.unwrap().amount(), "2500");
        assert_eq!(record.stage.as_deref(), Some("MEETING"));
        assert!(record.updated_at > record.created_at);
    }
}
