//! `--json`: every printing command renders its result as one pretty-printed JSON document on stdout.

/// Prints `value` as JSON on stdout (a value that cannot be rendered is reported on stderr instead).
pub fn print(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: rendering JSON failed: {error}"),
    }
}
