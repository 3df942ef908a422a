//! Just enough of GraphQL to find the operations of a document, their type and root fields: a lexer (strings, block strings, comments
//! and punctuators, so that braces inside them do not count) and a parser of top-level definitions that
//! follows aliases, inline fragments and fragment spreads at the root. Arguments, variables, directives and
//! nested selections are skipped as balanced token groups.

use std::collections::{HashMap, HashSet};

/// Deeper nesting of root-level inline fragments than this is refused (and keeps recursion bounded).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Name(&'a str),
    Punct(u8),
    Spread,
    /// String or number literal: only ever skipped.
    Value,
}

/// The type of an operation: what it does to the data behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

/// One operation of a document: its type, its name (`None` for an anonymous one) and the root fields (not
/// aliases) it selects, fragments resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: Option<String>,
    pub fields: Vec<String>,
}

/// The root fields (not aliases) that the operations of `document` select, fragments resolved.
#[cfg(test)]
pub fn root_fields(document: &str) -> Result<Vec<String>, &'static str> {
    Ok(operations(document)?
        .into_iter()
        .flat_map(|o| o.fields)
        .collect())
}

/// The operations of `document`, in order (the shorthand `{ … }` is an anonymous query).
pub fn operations(document: &str) -> Result<Vec<Operation>, &'static str> {
    let tokens = lex(document)?;
    let mut parser = Parser { tokens, at: 0 };
    let mut operations = Vec::new();
    let mut fragments = HashMap::new();
    while let Some(token) = parser.peek() {
        match token {
            Token::Punct(b'{') => {
                operations.push((OperationKind::Query, None, parser.selection_set(0)?));
            }
            Token::Name(keyword @ ("query" | "mutation" | "subscription")) => {
                let kind = match keyword {
                    "query" => OperationKind::Query,
                    "mutation" => OperationKind::Mutation,
                    _ => OperationKind::Subscription,
                };
                parser.at += 1;
                let mut name = None;
                if let Some(Token::Name(given)) = parser.peek() {
                    name = Some(given);
                    parser.at += 1;
                }
                if parser.peek() == Some(Token::Punct(b'(')) {
                    parser.skip_group()?;
                }
                parser.directives()?;
                operations.push((kind, name, parser.selection_set(0)?));
            }
            Token::Name("fragment") => {
                parser.at += 1;
                let Some(Token::Name(name)) = parser.next() else {
                    return Err("a fragment without a name");
                };
                if parser.next() != Some(Token::Name("on")) {
                    return Err("a fragment without a type condition");
                }
                let Some(Token::Name(_)) = parser.next() else {
                    return Err("a fragment without a type condition");
                };
                parser.directives()?;
                fragments.insert(name, parser.selection_set(0)?);
            }
            _ => return Err("an unexpected token at the top level"),
        }
    }
    if operations.is_empty() {
        return Err("no operation");
    }
    let mut out = Vec::with_capacity(operations.len());
    for (kind, name, selections) in &operations {
        let mut fields = Vec::new();
        collect(selections, &fragments, &mut HashSet::new(), &mut fields)?;
        out.push(Operation {
            kind: *kind,
            name: name.map(str::to_owned),
            fields,
        });
    }
    Ok(out)
}

#[derive(Debug)]
enum Selection<'a> {
    Field(&'a str),
    Spread(&'a str),
    Inline(Vec<Selection<'a>>),
}

fn collect<'a>(
    selections: &[Selection<'a>],
    fragments: &HashMap<&'a str, Vec<Selection<'a>>>,
    visiting: &mut HashSet<&'a str>,
    out: &mut Vec<String>,
) -> Result<(), &'static str> {
    for selection in selections {
        match selection {
            Selection::Field(name) => out.push((*name).to_owned()),
            Selection::Inline(inner) => collect(inner, fragments, visiting, out)?,
            Selection::Spread(name) => {
                let fragment = fragments
                    .get(name)
                    .ok_or("a spread of an unknown fragment")?;
                if !visiting.insert(name) {
                    return Err("a fragment that spreads itself");
                }
                collect(fragment, fragments, visiting, out)?;
                visiting.remove(name);
            }
        }
    }
    Ok(())
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let token = self.peek();
        self.at += 1;
        token
    }

    /// `{ selection* }`, with only the root level (and inline fragments in it) looked into.
    fn selection_set(&mut self, depth: usize) -> Result<Vec<Selection<'a>>, &'static str> {
        if depth > MAX_DEPTH {
            return Err("inline fragments nested too deeply");
        }
        if self.next() != Some(Token::Punct(b'{')) {
            return Err("a selection set was expected");
        }
        let mut selections = Vec::new();
        loop {
            match self.next() {
                Some(Token::Punct(b'}')) => return Ok(selections),
                Some(Token::Name(name)) => {
                    let field = if self.peek() == Some(Token::Punct(b':')) {
                        self.at += 1;
                        match self.next() {
                            Some(Token::Name(field)) => field,
                            _ => return Err("an alias without a field"),
                        }
                    } else {
                        name
                    };
                    if self.peek() == Some(Token::Punct(b'(')) {
                        self.skip_group()?;
                    }
                    self.directives()?;
                    if self.peek() == Some(Token::Punct(b'{')) {
                        self.skip_group()?;
                    }
                    selections.push(Selection::Field(field));
                }
                Some(Token::Spread) => match self.peek() {
                    Some(Token::Name("on")) => {
                        self.at += 1;
                        let Some(Token::Name(_)) = self.next() else {
                            return Err("an inline fragment without a type");
                        };
                        self.directives()?;
                        selections.push(Selection::Inline(self.selection_set(depth + 1)?));
                    }
                    Some(Token::Name(fragment)) => {
                        self.at += 1;
                        self.directives()?;
                        selections.push(Selection::Spread(fragment));
                    }
                    _ => {
                        self.directives()?;
                        selections.push(Selection::Inline(self.selection_set(depth + 1)?));
                    }
                },
                _ => return Err("an unexpected token in a selection set"),
            }
        }
    }

    /// `(@name (args)?)*`
    fn directives(&mut self) -> Result<(), &'static str> {
        while self.peek() == Some(Token::Punct(b'@')) {
            self.at += 1;
            let Some(Token::Name(_)) = self.next() else {
                return Err("a directive without a name");
            };
            if self.peek() == Some(Token::Punct(b'(')) {
                self.skip_group()?;
            }
        }
        Ok(())
    }

    /// Skips from an opening `(`, `[` or `{` to its matching closer.
    fn skip_group(&mut self) -> Result<(), &'static str> {
        let mut depth = 0usize;
        loop {
            match self.next() {
                Some(Token::Punct(b'(' | b'[' | b'{')) => depth += 1,
                Some(Token::Punct(b')' | b']' | b'}')) => {
                    depth = depth.checked_sub(1).ok_or("unbalanced brackets")?;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err("unbalanced brackets"),
            }
        }
    }
}

fn lex(source: &str) -> Result<Vec<Token<'_>>, &'static str> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                tokens.push(Token::Spread);
                i += 3;
            }
            b'!' | b'$' | b'&' | b'(' | b')' | b':' | b'=' | b'@' | b'[' | b']' | b'{' | b'|'
            | b'}' => {
                tokens.push(Token::Punct(b));
                i += 1;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = block_string_end(bytes, i + 3)?;
                tokens.push(Token::Value);
            }
            b'"' => {
                i = string_end(bytes, i + 1)?;
                tokens.push(Token::Value);
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let start = i;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                tokens.push(Token::Name(&source[start..i]));
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
                tokens.push(Token::Value);
            }
            0xEF if bytes[i..].starts_with("\u{feff}".as_bytes()) => i += 3,
            _ => return Err("a character GraphQL does not allow"),
        }
    }
    Ok(tokens)
}

/// The index after the closing quote of a `"…"` string whose content starts at `i`.
fn string_end(bytes: &[u8], mut i: usize) -> Result<usize, &'static str> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            b'\n' | b'\r' => return Err("a string with a line break"),
            _ => i += 1,
        }
    }
    Err("an unterminated string")
}

/// The index after the closing `"""` of a block string whose content starts at `i` (`\"""` is an escape).
fn block_string_end(bytes: &[u8], mut i: usize) -> Result<usize, &'static str> {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Ok(i + 3);
        } else {
            i += 1;
        }
    }
    Err("an unterminated block string")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(document: &str) -> Vec<String> {
        root_fields(document).expect(document)
    }

    #[test]
    fn shorthand_named_and_multiple_operations() {
        assert_eq!(fields("{ people { id } }"), ["people"]);
        assert_eq!(
            fields(
                "query Q($a: Int = 1, $f: F = {x: [1, 2]}) @live { a: people(first: $a) { id } companies }"
            ),
            ["people", "companies"]
        );
        assert_eq!(
            fields("query { people { id } } mutation M { deletePerson(id: \"1\") { id } }"),
            ["people", "deletePerson"]
        );
    }

    #[test]
    fn operations_have_their_type_and_name() {
        let ops = operations("{ a } query Q { b } mutation M { c } subscription { d }").unwrap();
        let kinds: Vec<_> = ops.iter().map(|o| (o.kind, o.name.as_deref())).collect();
        assert_eq!(
            kinds,
            [
                (OperationKind::Query, None),
                (OperationKind::Query, Some("Q")),
                (OperationKind::Mutation, Some("M")),
                (OperationKind::Subscription, None),
            ]
        );
        assert_eq!(ops[2].fields, ["c"]);
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        assert_eq!(
            fields("# { apiKeys }\n{ people(filter: {name: {eq: \"} apiKeys {\"}}) { id } }"),
            ["people"]
        );
        assert_eq!(
            fields("{ createNote(data: {body: \"\"\" } \\\"\"\" { webhooks \"\"\"}) { id } }"),
            ["createNote"]
        );
    }

    #[test]
    fn fragments_at_the_root_are_followed() {
        assert_eq!(
            fields(
                "{ ...A ... on Query { b } ... @skip(if: false) { c } } fragment A on Query { a ...B } fragment B on Query { d }"
            ),
            ["a", "d", "b", "c"]
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        for document in [
            "",
            "{ people { id }",
            "{ ...Missing }",
            "{ ...A } fragment A on Query { ...A }",
            "{ people(x: \"unterminated) }",
            "{ a: }",
            "garbage",
        ] {
            assert!(root_fields(document).is_err(), "{document}");
        }
        let deep = format!("{}{}", "{ ... ".repeat(100), "}".repeat(100));
        assert!(root_fields(&deep).is_err());
    }
}
