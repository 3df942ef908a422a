//! The GraphQL engine of the fake Twenty: Twenty's real `/metadata` schema at the pinned version (rebuilt by
//! `scripts/test` from npm's `twenty-client-sdk`, see `scripts/twenty-schema.mjs`), a real validator
//! (`apollo-compiler`) and a real executor. Every document the fake receives is validated against the schema
//! and refused as Twenty refuses it; variables are coerced by the schema's input types; introspection answers
//! come from the schema itself; answers carry exactly the fields the document selected.
//!
//! The fake's handlers only compute root fields: `execute` calls them with the root field's name and its
//! coerced arguments, and shapes the JSON they return through the document's selections.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use apollo_compiler::ExecutableDocument;
use apollo_compiler::Name;
use apollo_compiler::Schema;
use apollo_compiler::collections::HashMap;
use apollo_compiler::executable::Operation;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::{ExtendedType, Implementers, Type};
use apollo_compiler::validation::Valid;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The environment variable `scripts/test` sets to the schema's path.
const SCHEMA_ENV: &str = "WOSOOL_TEST_TWENTY_SCHEMA";

/// A schema the fake serves: the published one, or a variant of it (an older version, a root field hidden).
pub(crate) struct TwentySchema {
    schema: Valid<Schema>,
    implementers: HashMap<Name, Implementers>,
}

impl std::fmt::Debug for TwentySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwentySchema").finish_non_exhaustive()
    }
}

/// The text of the published schema (SDL), read once.
pub(crate) fn published_sdl() -> &'static str {
    static SDL: OnceLock<String> = OnceLock::new();
    SDL.get_or_init(|| {
        let path = std::env::var(SCHEMA_ENV).unwrap_or_else(|_| {
            panic!(
                "{SCHEMA_ENV} is not set: run the tests with scripts/test, which rebuilds Twenty's /metadata schema \
                 from npm's twenty-client-sdk at the version in config/twenty.version"
            )
        });
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{SCHEMA_ENV}={path}: {e}"))
    })
}

/// Twenty's `/metadata` schema at the pinned version, parsed and validated once per test process.
pub(crate) fn published() -> Arc<TwentySchema> {
    static SCHEMA: OnceLock<Arc<TwentySchema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let schema = Schema::parse_and_validate(published_sdl(), "metadata.graphql")
                .unwrap_or_else(|e| {
                    panic!("Twenty's published schema does not validate: {}", e.errors)
                });
            Arc::new(TwentySchema::new(schema))
        })
        .clone()
}

/// What the fake answers a GraphQL request with.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    fn errors(status: StatusCode, errors: Vec<Value>) -> Self {
        Self {
            status,
            body: json!({ "errors": errors }),
        }
    }
}

/// A root field a handler is asked to compute.
pub(crate) struct RootCall<'a> {
    pub(crate) name: &'a str,
    /// The field's arguments, coerced by the schema (variables substituted).
    pub(crate) arguments: Value,
}

/// Computes one root field.
pub(crate) type Resolver<'a> = dyn FnMut(RootCall<'_>) -> Result<Value, Refusal> + 'a;

/// A handler's refusal: one GraphQL error object (`message`, `extensions`), as Twenty would send it.
pub(crate) type Refusal = Value;

impl TwentySchema {
    fn new(schema: Valid<Schema>) -> Self {
        let implementers = schema.implementers_map();
        Self {
            schema,
            implementers,
        }
    }

    /// This schema with `edit` applied (checked again: a variant must still be a valid schema).
    pub(crate) fn edited(&self, edit: impl FnOnce(&mut Schema)) -> Self {
        let mut schema = self.schema.clone().into_inner();
        edit(&mut schema);
        let schema = schema
            .validate()
            .unwrap_or_else(|e| panic!("edited Twenty schema is invalid: {}", e.errors));
        Self::new(schema)
    }

    /// Whether `type_name` has a field `field`.
    pub(crate) fn has_field(&self, type_name: &str, field: &str) -> bool {
        match self.schema.types.get(type_name) {
            Some(ExtendedType::Object(object)) => object.fields.contains_key(field),
            Some(ExtendedType::Interface(interface)) => interface.fields.contains_key(field),
            Some(ExtendedType::InputObject(input)) => input.fields.contains_key(field),
            _ => false,
        }
    }

    /// Whether `type_name.field` takes argument `arg`.
    pub(crate) fn has_argument(&self, type_name: &str, field: &str, arg: &str) -> bool {
        match self.schema.types.get(type_name) {
            Some(ExtendedType::Object(object)) => object
                .fields
                .get(field)
                .is_some_and(|f| f.arguments.iter().any(|a| a.name == arg)),
            _ => false,
        }
    }

    /// Parses and validates `query`; on failure, the errors Twenty answers. Twenty's Yoga leaves graphql-js's
    /// validation errors as they are: HTTP 200 (for `Accept: application/json` or none), `errors` with
    /// `message` and `locations` only (no `code`, no `data`). `anonymous` is a request without a workspace on
    /// a production Twenty: introspection is refused and "Did you mean" suggestions are stripped. Sending
    /// the same root field twice is refused too (Twenty's complexity hook on `/metadata`).
    pub(crate) fn validate(
        &self,
        query: &str,
        anonymous: bool,
    ) -> Result<Valid<ExecutableDocument>, Answer> {
        let document =
            ExecutableDocument::parse_and_validate(&self.schema, query, "request.graphql")
                .map_err(|invalid| {
                    let errors = invalid
                        .errors
                        .iter()
                        .map(|diagnostic| {
                            let mut error = diagnostic.unstable_to_json_compat();
                            error.message = self.with_suggestions(&error.message);
                            if error.message.starts_with("syntax error") {
                                error.message = format!("Syntax Error: {}", &error.message[14..]);
                            }
                            if anonymous {
                                error.message = without_suggestions(&error.message);
                            }
                            serde_json::to_value(&error).expect("error as JSON")
                        })
                        .collect();
                    Answer::errors(StatusCode::OK, errors)
                })?;
        let mut errors = vec![];
        for operation in document.operations.iter() {
            let mut seen = std::collections::HashSet::new();
            for field in operation.root_fields(&document) {
                if !field.name.starts_with("__") && !seen.insert(field.name.as_str()) {
                    errors.push(json!({
                        "message": format!("Duplicate root resolver: \"{}\"", field.name),
                        "extensions": { "code": "BAD_USER_INPUT", "userFriendlyMessage": "An error occurred." },
                    }));
                }
            }
            if anonymous {
                introspection_fields(&document, &operation.selection_set, &mut errors);
            }
        }
        if errors.is_empty() {
            Ok(document)
        } else {
            Err(Answer::errors(StatusCode::OK, errors))
        }
    }

    /// Validates and executes `query`: `resolve` computes each root field (in order; a mutation's root fields
    /// run one after the other) and the answer is shaped by the document. The first refusal ends the request
    /// with `data: null` and that error, as Twenty's exception filters answer.
    pub(crate) fn execute(
        &self,
        query: &str,
        operation_name: Option<&str>,
        variables: &Value,
        anonymous: bool,
        resolve: &mut Resolver<'_>,
    ) -> Answer {
        let document = match self.validate(query, anonymous) {
            Ok(document) => document,
            Err(answer) => return answer,
        };
        let Ok(operation) = document.operations.get(operation_name) else {
            return Answer::errors(
                StatusCode::BAD_REQUEST,
                vec![json!({
                    "message": "Must provide operation name if query contains multiple operations.",
                    "extensions": { "code": "BAD_USER_INPUT" },
                })],
            );
        };
        let variables: JsonMap = match variables {
            Value::Null => JsonMap::new(),
            Value::Object(_) => serde_json::from_value(variables.clone()).expect("variables map"),
            _ => {
                return Answer::errors(
                    StatusCode::BAD_REQUEST,
                    vec![json!({
                        "message": "Variables must be provided as an Object where each property is a variable value.",
                        "extensions": { "code": "BAD_USER_INPUT" },
                    })],
                );
            }
        };
        let root = Root {
            schema: &self.schema,
            operation,
            resolve: RefCell::new(resolve),
            refusal: RefCell::new(None),
        };
        let executed = Execution::new(&self.schema, &document)
            .operation(operation)
            .implementers_map(&self.implementers)
            .raw_variable_values(&variables)
            .enable_schema_introspection(true)
            .execute_sync(&root);
        let response = match executed {
            Ok(response) => response,
            Err(error) => {
                // Through Twenty's error hook: the executor's 400 becomes BAD_USER_INPUT, `locations` are
                // dropped and `http` stays in the extensions.
                let message = self.graphql_js_coercion_message(&error.message().to_string());
                return Answer::errors(
                    StatusCode::BAD_REQUEST,
                    vec![json!({
                        "message": message,
                        "extensions": {
                            "http": { "status": 400 },
                            "code": "BAD_USER_INPUT",
                            "userFriendlyMessage": "An error occurred.",
                        },
                    })],
                );
            }
        };
        if let Some(refusal) = root.refusal.into_inner() {
            return Answer {
                status: StatusCode::OK,
                body: json!({ "errors": [refusal], "data": null }),
            };
        }
        let body = serde_json::to_value(&response).expect("response as JSON");
        if !response.errors.is_empty() {
            // The fake answered something Twenty's schema does not allow: a bug in the fake, shown loudly.
            eprintln!("the fake Twenty's answer does not fit Twenty's schema: {body}");
            return Answer {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body,
            };
        }
        Answer {
            status: StatusCode::OK,
            body,
        }
    }
}

impl TwentySchema {
    /// graphql-js's wording of a variable coercion failure (the inner message, as Twenty's executor reports
    /// it), for the cases our documents can meet; others keep apollo-compiler's wording.
    fn graphql_js_coercion_message(&self, message: &str) -> String {
        if let Some(rest) = message.strip_prefix("Missing value for non-null input object field ") {
            let rest = rest.trim_end_matches('.');
            if let Some((type_name, field)) = rest.split_once('.') {
                let ty = match self.schema.types.get(type_name) {
                    Some(ExtendedType::InputObject(input)) => {
                        input.fields.get(field).map(|f| f.ty.to_string())
                    }
                    _ => None,
                };
                if let Some(ty) = ty {
                    return format!(
                        "Field \"{field}\" of required type \"{ty}\" was not provided."
                    );
                }
            }
        }
        if let Some(rest) = message.strip_prefix("input object has key ")
            && let Some((key, type_name)) = rest.split_once(" not in type ")
        {
            return format!("Field \"{key}\" is not defined by type \"{type_name}\".");
        }
        message.to_owned()
    }
}

impl TwentySchema {
    /// graphql-js's " Did you mean …?" on an unknown field of an object type or an unknown argument
    /// (apollo-compiler's graphql-js wording leaves suggestions out).
    fn with_suggestions(&self, message: &str) -> String {
        let quoted: Vec<&str> = message.split('"').skip(1).step_by(2).collect();
        let (input, candidates): (&str, Vec<String>) = if message.starts_with("Cannot query field ")
        {
            let [field, type_name, ..] = quoted[..] else {
                return message.to_owned();
            };
            match self.schema.types.get(type_name) {
                Some(ExtendedType::Object(object)) => {
                    (field, object.fields.keys().map(|k| k.to_string()).collect())
                }
                _ => return message.to_owned(),
            }
        } else if message.starts_with("Unknown argument ") {
            let [arg, coordinate, ..] = quoted[..] else {
                return message.to_owned();
            };
            let Some((type_name, field)) = coordinate.split_once('.') else {
                return message.to_owned();
            };
            match self.schema.types.get(type_name) {
                Some(ExtendedType::Object(object)) => match object.fields.get(field) {
                    Some(definition) => (
                        arg,
                        definition
                            .arguments
                            .iter()
                            .map(|a| a.name.to_string())
                            .collect(),
                    ),
                    None => return message.to_owned(),
                },
                _ => return message.to_owned(),
            }
        } else {
            return message.to_owned();
        };
        format!(
            "{message}{}",
            did_you_mean(&suggestion_list(input, &candidates))
        )
    }
}

/// graphql-js `suggestionList`: candidates within a lexical distance of `input` (threshold 40% of its length
/// plus one), closest first, then in natural order.
fn suggestion_list(input: &str, candidates: &[String]) -> Vec<String> {
    let threshold = input.chars().count() * 4 / 10 + 1;
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .filter_map(|c| lexical_distance(input, c, threshold).map(|d| (d, c)))
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| natural_compare(a.1, b.1)));
    scored.into_iter().map(|(_, c)| c.clone()).collect()
}

/// graphql-js `LexicalDistance.measure`: 0 for equal, 1 for equal ignoring case, else the optimal string
/// alignment distance of the lower-cased strings, `None` past `threshold`.
fn lexical_distance(input: &str, option: &str, threshold: usize) -> Option<usize> {
    if input == option {
        return Some(0);
    }
    let (input_lower, option_lower) = (input.to_lowercase(), option.to_lowercase());
    if input_lower == option_lower {
        return Some(1);
    }
    let mut a: Vec<char> = option_lower.chars().collect();
    let mut b: Vec<char> = input_lower.chars().collect();
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    if a.len() - b.len() > threshold {
        return None;
    }
    let mut rows = vec![vec![0usize; b.len() + 1]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let mut smallest = i;
        rows[i % 3][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut cell = (rows[(i - 1) % 3][j] + 1)
                .min(rows[i % 3][j - 1] + 1)
                .min(rows[(i - 1) % 3][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cell = cell.min(rows[(i - 2) % 3][j - 2] + 1);
            }
            smallest = smallest.min(cell);
            rows[i % 3][j] = cell;
        }
        if smallest > threshold {
            return None;
        }
    }
    let distance = rows[a.len() % 3][b.len()];
    (distance <= threshold).then_some(distance)
}

/// graphql-js `naturalCompare`: digit runs compare as numbers.
fn natural_compare(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let start = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let x: u128 = a[start.0..i]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            let y: u128 = b[start.1..j]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            if x != y {
                return x.cmp(&y);
            }
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// graphql-js `didYouMean`: at most five, quoted.
fn did_you_mean(suggestions: &[String]) -> String {
    let quoted: Vec<String> = suggestions
        .iter()
        .take(5)
        .map(|s| format!("\"{s}\""))
        .collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => format!(" Did you mean {one}?"),
        [one, two] => format!(" Did you mean {one} or {two}?"),
        [rest @ .., last] => format!(" Did you mean {}, or {last}?", rest.join(", ")),
    }
}

/// graphql-js's `NoSchemaIntrospectionCustomRule`: every field whose type is an introspection type.
fn introspection_fields(
    document: &Valid<ExecutableDocument>,
    selections: &apollo_compiler::executable::SelectionSet,
    errors: &mut Vec<Value>,
) {
    use apollo_compiler::executable::Selection;
    for selection in &selections.selections {
        match selection {
            Selection::Field(field) => {
                if field.definition.ty.inner_named_type().starts_with("__") {
                    let location = field
                        .location()
                        .and_then(|l| l.line_column(&document.sources))
                        .map(|l| json!([{ "line": l.line, "column": l.column }]))
                        .unwrap_or(json!([]));
                    errors.push(json!({
                        "message": format!(
                            "GraphQL introspection has been disabled, but the requested query contained the field \"{}\".",
                            field.name
                        ),
                        "locations": location,
                    }));
                }
                introspection_fields(document, &field.selection_set, errors);
            }
            Selection::InlineFragment(inline) => {
                introspection_fields(document, &inline.selection_set, errors)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                    introspection_fields(document, &fragment.selection_set, errors);
                }
            }
        }
    }
}

/// Removes graphql-js's " Did you mean …?" suggestions (Twenty's `removeSuggestionInErrorsRule`).
fn without_suggestions(message: &str) -> String {
    match message.find(" Did you mean") {
        Some(start) => {
            let end = message[start..]
                .find('?')
                .map_or(message.len(), |q| start + q + 1);
            format!("{}{}", &message[..start], &message[end..])
        }
        None => message.to_owned(),
    }
}

/// Edits of a schema variant (an older Twenty, a root field hidden).
pub(crate) mod edit {
    use apollo_compiler::Name;
    use apollo_compiler::Schema;
    use apollo_compiler::schema::{Component, ExtendedType, FieldDefinition, Type};

    /// Removes `type_name.field` (a root field of Query or Mutation, or a field of an object or input type).
    pub(crate) fn remove_field(schema: &mut Schema, type_name: &str, field: &str) {
        let removed = match schema.types.get_mut(type_name) {
            Some(ExtendedType::Object(object)) => {
                object.make_mut().fields.shift_remove(field).is_some()
            }
            Some(ExtendedType::InputObject(input)) => {
                input.make_mut().fields.shift_remove(field).is_some()
            }
            _ => false,
        };
        assert!(removed, "{type_name}.{field} is not in the schema");
    }

    /// Removes argument `arg` of `type_name.field`.
    pub(crate) fn remove_argument(schema: &mut Schema, type_name: &str, field: &str, arg: &str) {
        let Some(ExtendedType::Object(object)) = schema.types.get_mut(type_name) else {
            panic!("{type_name} is not an object type");
        };
        let object = object.make_mut();
        let definition = object
            .fields
            .get_mut(field)
            .unwrap_or_else(|| panic!("{type_name}.{field} is not in the schema"))
            .make_mut();
        let before = definition.arguments.len();
        definition.arguments.retain(|a| a.name != arg);
        assert!(
            definition.arguments.len() < before,
            "{type_name}.{field}({arg}) is not in the schema"
        );
    }

    /// Adds a nullable field `field: target` to object type `type_name`.
    pub(crate) fn add_field(schema: &mut Schema, type_name: &str, field: &str, target: &str) {
        let Some(ExtendedType::Object(object)) = schema.types.get_mut(type_name) else {
            panic!("{type_name} is not an object type");
        };
        let name = Name::new(field).expect("field name");
        object.make_mut().fields.insert(
            name.clone(),
            Component::new(FieldDefinition {
                description: None,
                name,
                arguments: vec![],
                ty: Type::Named(Name::new(target).expect("type name")),
                directives: Default::default(),
            }),
        );
    }
}

/// The root object: its fields are the handlers' results.
struct Root<'s, 'r> {
    schema: &'s Valid<Schema>,
    operation: &'s Operation,
    resolve: RefCell<&'r mut Resolver<'r>>,
    refusal: RefCell<Option<Refusal>>,
}

impl ObjectValue for Root<'_, '_> {
    fn type_name(&self) -> &str {
        self.operation.object_type().as_str()
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        if self.refusal.borrow().is_some() {
            return Err(FieldError {
                message: "not executed after an earlier refusal".into(),
            });
        }
        let arguments = serde_json::to_value(info.arguments()).expect("arguments as JSON");
        let result = (self.resolve.borrow_mut())(RootCall {
            name: info.field_name(),
            arguments,
        });
        match result {
            Ok(value) => Ok(resolved(self.schema, &info.field_definition().ty, value)),
            Err(refusal) => {
                let message = refusal["message"].as_str().unwrap_or_default().to_owned();
                *self.refusal.borrow_mut() = Some(refusal);
                Err(FieldError { message })
            }
        }
    }
}

/// A JSON value shaped as the GraphQL type `ty`.
fn resolved<'a>(schema: &'a Valid<Schema>, ty: &Type, value: Value) -> ResolvedValue<'a> {
    if value.is_null() {
        return ResolvedValue::null();
    }
    if let Type::List(item) | Type::NonNullList(item) = ty {
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let item = (**item).clone();
        return ResolvedValue::list(
            items
                .into_iter()
                .map(move |value| resolved(schema, &item, value)),
        );
    }
    let name = ty.inner_named_type();
    match schema.types.get(name.as_str()) {
        Some(ExtendedType::Object(_)) => ResolvedValue::object(JsonObject {
            schema,
            type_name: name.to_string(),
            value,
        }),
        Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
            let type_name = value["__typename"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("the fake's {name} value needs a __typename"));
            ResolvedValue::object(JsonObject {
                schema,
                type_name,
                value,
            })
        }
        _ => ResolvedValue::leaf(
            serde_json::from_value::<JsonValue>(value).expect("JSON as a response value"),
        ),
    }
}

/// An object of the answer, backed by the JSON a handler returned: each selected field is that key's value.
struct JsonObject<'s> {
    schema: &'s Valid<Schema>,
    type_name: String,
    value: Value,
}

impl ObjectValue for JsonObject<'_> {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let value = self
            .value
            .get(info.field_name())
            .cloned()
            .unwrap_or(Value::Null);
        Ok(resolved(self.schema, &info.field_definition().ty, value))
    }
}

/// `(response key, field name, arguments)` of a `/graphql` root field.
pub(crate) type RecordsRootField = (String, String, Value);

/// The root fields of a `/graphql` document (a workspace's records API, whose schema is generated per workspace
/// and not published): parsed for real, each with its arguments as JSON (variables substituted).
pub(crate) fn records_root_fields(
    query: &str,
    variables: &Value,
) -> Result<(bool, Vec<RecordsRootField>), Answer> {
    use apollo_compiler::ast;
    let syntax_error = |message: String| {
        Answer::errors(
            StatusCode::BAD_REQUEST,
            vec![json!({ "message": message, "extensions": { "code": "GRAPHQL_PARSE_FAILED" } })],
        )
    };
    let document = ast::Document::parse(query, "request.graphql")
        .map_err(|e| syntax_error(format!("Syntax Error: {}", e.errors)))?;
    let Some(operation) = document.definitions.iter().find_map(|d| match d {
        ast::Definition::OperationDefinition(op) => Some(op),
        _ => None,
    }) else {
        return Err(syntax_error("Syntax Error: no operation".into()));
    };
    let fields = operation
        .selection_set
        .iter()
        .filter_map(|selection| match selection {
            ast::Selection::Field(field) => Some(field),
            _ => None,
        })
        .map(|field| {
            let arguments: serde_json::Map<String, Value> = field
                .arguments
                .iter()
                .map(|a| (a.name.to_string(), literal(&a.value, variables)))
                .collect();
            let key = field.alias.as_ref().unwrap_or(&field.name).to_string();
            (key, field.name.to_string(), Value::Object(arguments))
        })
        .collect();
    Ok((
        operation.operation_type == ast::OperationType::Mutation,
        fields,
    ))
}

/// An AST value as JSON, variables taken from `variables`.
fn literal(value: &apollo_compiler::ast::Value, variables: &Value) -> Value {
    use apollo_compiler::ast::Value as V;
    match value {
        V::Null => Value::Null,
        V::Variable(name) => variables[name.as_str()].clone(),
        V::Enum(name) => json!(name.as_str()),
        V::String(text) => json!(text),
        V::Float(f) => json!(f.try_to_f64().unwrap_or_default()),
        V::Int(i) => json!(i.try_to_i32().unwrap_or_default()),
        V::Boolean(b) => json!(b),
        V::List(items) => Value::Array(items.iter().map(|v| literal(v, variables)).collect()),
        V::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), literal(v, variables)))
                .collect(),
        ),
    }
}
