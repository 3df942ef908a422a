//! The documentation shows commands that work: every `wosool …` command line in the README and docs/ (in
//! backticks or in a shell block, run directly, through `scripts/wosool`, or in a replica with
//! `docker compose exec api|worker wosool …`) parses with the CLI's own definition.

use clap::Parser;
use clap::error::ErrorKind;

/// The README and every file of docs/, with their names.
fn documents() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/README.md")];
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    files
        .into_iter()
        .map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap()))
        .collect()
}

/// Command lines of a document: backtick spans, and the lines of fenced blocks (joined at `\`).
fn snippets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let line = line.trim();
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            out.push(std::mem::take(&mut pending));
        } else {
            out.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    out
}

/// The arguments after `wosool` when the snippet runs the CLI, up to the first token that is notation
/// (alternatives, optional parts, ellipses) or shell (a comment, a pipe, a redirection).
fn cli_arguments(snippet: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = snippet.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "wosool" || *w == "scripts/wosool")?;
    let before = words[..at].join(" ");
    if !(before.is_empty() || before.ends_with("exec api") || before.ends_with("exec worker")) {
        return None; // `psql -U wosool`, a path, prose
    }
    let mut args = Vec::new();
    for word in &words[at + 1..] {
        if ["#", "|", ">", "2>", "&&", ";"].contains(word)
            || word.contains(['[', '|', '…', '{'])
            || word.ends_with(',')
        {
            break;
        }
        let word = word.trim_matches(['"', '\'']);
        let placeholder = word.starts_with('<') || word.starts_with('$') || word == "ID";
        args.push(if placeholder {
            "0193a5a0-0000-7000-8000-000000000001".to_owned()
        } else {
            word.to_owned()
        });
    }
    (!args.is_empty()).then_some(args)
}

#[test]
fn every_documented_wosool_command_parses() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, text) in documents() {
        for snippet in snippets(&text) {
            let Some(args) = cli_arguments(&snippet) else {
                continue;
            };
            let argv = std::iter::once("wosool".to_owned()).chain(args.iter().cloned());
            checked += 1;
            let Err(error) = wosool::cli::Cli::try_parse_from(argv) else {
                continue;
            };
            // A prose mention may stop before a required part (`wosool tenants show`, `--scope`).
            let incomplete = matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | ErrorKind::MissingRequiredArgument
                    | ErrorKind::MissingSubcommand
            ) || (error.kind() == ErrorKind::InvalidValue
                && args.last().is_some_and(|a| a.starts_with("--")));
            if !incomplete {
                problems.push(format!("{file}: `{snippet}`: {}", error.kind()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked >= 30,
        "only {checked} commands found: is the scanner broken?"
    );
}

#[test]
fn the_scanner_finds_commands_and_skips_notation() {
    assert_eq!(
        cli_arguments("docker compose exec api wosool --json tenants show <id>"),
        Some(vec![
            "--json".into(),
            "tenants".into(),
            "show".into(),
            "0193a5a0-0000-7000-8000-000000000001".into()
        ])
    );
    assert_eq!(
        cli_arguments("wosool tenants list|show|create"),
        Some(vec!["tenants".into()]),
        "checked up to the notation"
    );
    assert_eq!(cli_arguments("wosool …"), None, "nothing but notation");
    assert_eq!(cli_arguments("psql -U wosool -d wosool"), None);
    assert_eq!(
        snippets("a `wosool x` b\n```sh\nwosool y \\\n  --z\n```\n"),
        vec!["wosool x".to_owned(), "wosool y  --z".to_owned()]
    );
}
