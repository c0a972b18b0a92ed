//! Writes a document back as block YAML that every Kubernetes reader takes the same way.
//!
//! Kubernetes reads YAML 1.1 (sigs.k8s.io/yaml): there `yes`, `no`, `on`, `off`, `y`, `n` are booleans and
//! `1_000` or `1:20` numbers, which a YAML 1.2 writer (serde_norway's) leaves unquoted. So a string is
//! written plain only when it cannot be read as anything else in either version (letters first, a small
//! set of characters, none of those words); otherwise it is double-quoted, or a literal block (`|`) when it
//! spans lines. Sequences are indented under their key, as hand-written manifests and charts write them.

use serde_norway::{Mapping, Value};

/// A value this writer cannot put back in block YAML.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EmitError {
    #[error("a mapping key that is itself a list or a mapping cannot be written back")]
    ComplexKey,
    #[error("a mapping key longer than 1024 characters cannot be written back")]
    LongKey,
    #[error("a YAML tag ({0}) cannot be written back")]
    Tagged(String),
}

/// The document as YAML text, ending with a line break.
pub fn to_yaml(value: &Value) -> Result<String, EmitError> {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0, true)?,
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0, true)?,
        other => scalar(&mut out, other, 2)?,
    }
    Ok(out)
}

fn pad(out: &mut String, col: usize) {
    out.extend(std::iter::repeat_n(' ', col));
}

/// Entries at column `col`; the first one on the current line when `inline` (after `- `).
fn mapping(out: &mut String, m: &Mapping, col: usize, inline: bool) -> Result<(), EmitError> {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, col);
        }
        key(out, k)?;
        out.push(':');
        after_key(out, v, col)?;
    }
    Ok(())
}

/// Items at column `col` (`- item`); the first one on the current line when `inline`.
fn sequence(out: &mut String, s: &[Value], col: usize, inline: bool) -> Result<(), EmitError> {
    for (i, item) in s.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, col);
        }
        out.push_str("- ");
        match item {
            Value::Mapping(m) if !m.is_empty() => mapping(out, m, col + 2, true)?,
            Value::Sequence(s) if !s.is_empty() => sequence(out, s, col + 2, true)?,
            other => scalar(out, other, col + 2)?,
        }
    }
    Ok(())
}

/// The value of a key written at column `col`, from just after its `:`.
fn after_key(out: &mut String, v: &Value, col: usize) -> Result<(), EmitError> {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            mapping(out, m, col + 2, false)
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            sequence(out, s, col + 2, false)
        }
        other => {
            out.push(' ');
            scalar(out, other, col + 2)
        }
    }
}

fn key(out: &mut String, k: &Value) -> Result<(), EmitError> {
    match k {
        Value::String(s) if s.len() > 1024 => Err(EmitError::LongKey),
        Value::String(s) if plain_safe(s) => {
            out.push_str(s);
            Ok(())
        }
        Value::String(s) => {
            quoted(out, s);
            Ok(())
        }
        Value::Sequence(_) | Value::Mapping(_) => Err(EmitError::ComplexKey),
        Value::Tagged(t) => Err(EmitError::Tagged(t.tag.to_string())),
        Value::Null => {
            out.push_str("null");
            Ok(())
        }
        Value::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            Ok(())
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            Ok(())
        }
    }
}

/// A scalar (or an empty collection) and its line break; a literal block's lines go at column `col`.
fn scalar(out: &mut String, v: &Value, col: usize) -> Result<(), EmitError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if plain_safe(s) => out.push_str(s),
        Value::String(s) if literal_safe(s) => {
            literal(out, s, col);
            return Ok(());
        }
        Value::String(s) => quoted(out, s),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Tagged(t) => return Err(EmitError::Tagged(t.tag.to_string())),
    }
    out.push('\n');
    Ok(())
}

/// Words that YAML 1.1 or 1.2 reads as something other than a string.
const SPECIAL_WORDS: [&str; 10] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan"];

/// Whether `s` reads back as this very string, unquoted, under YAML 1.1 and 1.2, in block context.
fn plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '/' => true,
        // `50m`, `64Mi`, `30s`: a letter that no number or timestamp of either version has (they are made
        // of digits, `_.:+-`, blanks, hex digits and `xob`, `e`, `t`, `z`).
        Some(c) if c.is_ascii_digit() => {
            s.chars().any(|c| c.is_ascii_alphabetic() && !"abcdefxotzABCDEFXOTZ".contains(c))
        }
        // `--listen`, `-v`; not `-1` (a number) nor `- x` (a list item).
        Some('-') => chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '-'),
        _ => false,
    };
    first_ok
        && s.chars().all(|c| c.is_ascii_alphanumeric() || " _./:@+=,-()%".contains(c))
        && !s.contains(": ")
        && !s.ends_with([':', ' '])
        && !SPECIAL_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// Whether `s` can be a literal block: several lines, printable, and no leading blank on its first
/// line with text (the block's indentation is read from it).
fn literal_safe(s: &str) -> bool {
    s.contains('\n')
        && s.chars()
            .all(|c| c == '\n' || c == '\t' || !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')))
        && s.lines().find(|l| !l.is_empty()).is_some_and(|l| !l.starts_with(' '))
}

fn literal(out: &mut String, s: &str, col: usize) {
    let body = s.trim_end_matches('\n');
    let chomp = match s.len() - body.len() {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    out.push_str(chomp);
    out.push('\n');
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        if !line.is_empty() {
            pad(out, col);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_norway::from_str(s).unwrap_or_else(|e| panic!("{e}:\n{s}"))
    }

    #[test]
    fn kubernetes_layout() {
        let v = parse(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {app: web}, annotations: {}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        args: [--listen, ':8080', '-1']\n        ports: [{containerPort: 8080}]\n      volumes: []\n",
        );
        let text = to_yaml(&v).expect("writes");
        assert_eq!(
            text,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\n  annotations: {}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          args:\n            - --listen\n            - \":8080\"\n            - \"-1\"\n          ports:\n            - containerPort: 8080\n      volumes: []\n"
        );
        assert_eq!(parse(&text), v);
    }

    #[test]
    fn strings_that_yaml_1_1_reads_otherwise_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "n",
            "true",
            "null",
            "~",
            "1_000",
            "1:20",
            "2001-12-14",
            "0x1F",
            "010",
            "0o10",
            "+1",
            ".5",
            ".inf",
            "-.inf",
            "NaN",
            "=",
            "<<",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "key:",
            "*alias",
            "&anchor",
            "!tag",
            "@at",
            "`tick",
            "%pct",
            "[x]",
            "{x}",
            "'q'",
            "\"q\"",
            "-",
            "- x",
            "?",
            "?x",
            "|",
            ">",
            "é",
            "8080",
            "1.0",
            "1e3",
            "1d",
            "0b101",
            "2001-12-14t21:59:43.10-05:00",
            "12:30:45",
        ] {
            let mut out = String::new();
            scalar(&mut out, &Value::String(s.into()), 2).expect("writes");
            assert!(out.starts_with('"'), "{s:?} written as {out:?}");
            assert_eq!(parse(&format!("k: {out}")), parse(&format!("k: {}", serde_json::to_string(s).expect("json"))));
        }
        for s in [
            "web",
            "edgefault:0.1.0",
            "http://127.0.0.1:8080",
            "--log-format",
            "-v",
            "a b",
            "/readyz",
            "f(x)=1,2",
            "64Mi",
            "50m",
            "30s",
            "1h30m",
            "1.25-alpine",
        ] {
            let mut out = String::new();
            scalar(&mut out, &Value::String(s.into()), 2).expect("writes");
            assert_eq!(out, format!("{s}\n"));
        }
    }

    #[test]
    fn multi_line_strings_round_trip() {
        for s in [
            "a\nb\n",
            "a\nb",
            "a\n\nb\n\n\n",
            "\nlead\n",
            "  indented\nfirst\n",
            "tab\tin\nit\n",
            "cr\r\nlf\n",
            "x\n  y\n",
            "\n",
            "bell\u{7}\nz",
        ] {
            let v = parse(&format!("list:\n- {0}\nkey: {0}\n", serde_json::to_string(s).expect("json")));
            let text = to_yaml(&v).expect("writes");
            assert_eq!(parse(&text), v, "{s:?} as\n{text}");
        }
        let text = to_yaml(&parse("k: \"a\\nb\\n\"\n")).expect("writes");
        assert_eq!(text, "k: |\n  a\n  b\n");
    }

    #[test]
    fn nested_lists_numbers_and_odd_keys() {
        let v = parse("a: [[1, 2], [], [{b: 1.5, c: null}]]\n8080: x\ntrue: y\n'yes': z\n");
        let text = to_yaml(&v).expect("writes");
        assert_eq!(
            text,
            "a:\n  - - 1\n    - 2\n  - []\n  - - b: 1.5\n      c: null\n8080: x\ntrue: \"y\"\n\"yes\": z\n"
        );
        assert_eq!(parse(&text), v);
        assert_eq!(to_yaml(&parse("? [a]\n: b\n")), Err(EmitError::ComplexKey));
        assert!(matches!(to_yaml(&parse("a: !thing b\n")), Err(EmitError::Tagged(_))));
    }
}
