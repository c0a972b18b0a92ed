//! Experiment documents: YAML (or JSON) in the protobuf JSON mapping of `ExperimentSpec`, so a file and a
//! gRPC call are one schema. Keys may be snake_case or lowerCamelCase; wherever the schema has a
//! `google.protobuf.Duration`, a human duration ("250ms", "10m", "1h30m") is accepted beside the protobuf
//! form ("1.5s").

use std::{collections::HashMap, sync::OnceLock};

use prost::Message;
use prost_types::{field_descriptor_proto::Label, field_descriptor_proto::Type, FileDescriptorSet};
use serde::Deserialize;
use serde_json::Value;

use crate::pb::{self, v1::ExperimentSpec};

/// A document that could not be read, with where.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{0}")]
    Yaml(String),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

/// Reads every document of a YAML stream (`---` separated) as an experiment spec. Empty documents are
/// skipped; a stream with none is an error.
pub fn parse_specs(text: &str) -> Result<Vec<ExperimentSpec>, DocumentError> {
    let values = parse_yaml_documents(text)?;
    if values.is_empty() {
        return Err(DocumentError::Yaml("the file holds no experiment (it is empty)".into()));
    }
    let multi = values.len() > 1;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| spec_from_value(v, if multi { format!("document {}: ", i + 1) } else { String::new() }))
        .collect()
}

/// Largest YAML text read (an experiment file, a config, a scenario, a tokens file).
pub const MAX_YAML_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of flow collections (`[…]`, `{…}`) in YAML text. The YAML parser's time grows with
/// the square of this depth (25,000 levels: seconds), and no real file comes near it.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Reads a text file of at most [`MAX_YAML_BYTES`] (a larger one is refused without being read whole).
pub fn read_text(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let limit = u64::try_from(MAX_YAML_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    std::fs::File::open(path)?.take(limit).read_to_string(&mut text)?;
    if text.len() > MAX_YAML_BYTES {
        return Err(std::io::Error::other(format!("larger than the {MAX_YAML_BYTES} bytes a YAML file may hold")));
    }
    Ok(text)
}

/// Refuses YAML text that is too large or nested too deep to parse in bounded time, saying where.
pub fn check_yaml_bounds(text: &str) -> Result<(), DocumentError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(DocumentError::Yaml(format!(
            "{} bytes is more than the {MAX_YAML_BYTES} a YAML file may hold",
            text.len()
        )));
    }
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        // Quoted scalars and comments are skipped: only the flow indicators of the YAML itself count.
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '\'' | '"' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':' | '-') => {
                        quote = Some(c)
                    }
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_FLOW_DEPTH {
                            return Err(DocumentError::Yaml(format!(
                                "line {}: lists and mappings nested more than {MAX_FLOW_DEPTH} deep",
                                i + 1
                            )));
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
    }
    Ok(())
}

/// Every non-empty document of a YAML stream as a JSON value.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    check_yaml_bounds(text)?;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| DocumentError::Yaml(format!("not valid YAML: {e}")))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// One spec from a JSON value; `prefix` is put before every field path in errors ("experiments[2].").
pub fn spec_from_value(mut value: Value, prefix: String) -> Result<ExperimentSpec, DocumentError> {
    if !value.is_object() {
        return Err(DocumentError::Field {
            path: if prefix.is_empty() { "(document)".into() } else { prefix.trim_end_matches(['.', ' ', ':']).into() },
            message: format!(
                "expected a mapping of ExperimentSpec fields (name, match, percentage, duration, faults…), found {}",
                kind(&value)
            ),
        });
    }
    normalize_durations(&mut value, ".edgefault.v1.ExperimentSpec", &mut prefix.clone())?;
    serde_path_to_error::deserialize(&value)
        .map_err(|e| DocumentError::Field { path: format!("{prefix}{}", e.path()), message: e.inner().to_string() })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

struct Field {
    name: String,
    json_name: String,
    type_name: Option<String>,
    repeated: bool,
}

/// Message fields by full message name, from the compiled descriptor set.
fn schema() -> &'static HashMap<String, Vec<Field>> {
    static SCHEMA: OnceLock<HashMap<String, Vec<Field>>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut map = HashMap::new();
        // The descriptor set is compiled into the binary by build.rs; it always decodes.
        let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap_or_default();
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for msg in file.message_type {
                let full = format!(".{package}.{}", msg.name.unwrap_or_default());
                let fields = msg
                    .field
                    .into_iter()
                    .map(|f| Field {
                        json_name: f.json_name.clone().unwrap_or_default(),
                        name: f.name.clone().unwrap_or_default(),
                        type_name: (f.r#type() == Type::Message).then(|| f.type_name.clone().unwrap_or_default()),
                        repeated: f.label() == Label::Repeated,
                    })
                    .collect();
                map.insert(full, fields);
            }
        }
        map
    })
}

const DURATION: &str = ".google.protobuf.Duration";

/// Rewrites human durations to the protobuf JSON form, walking the value alongside the message schema.
fn normalize_durations(value: &mut Value, message: &str, path: &mut String) -> Result<(), DocumentError> {
    let (Some(fields), Value::Object(obj)) = (schema().get(message), value) else { return Ok(()) };
    for (key, v) in obj.iter_mut() {
        let Some(field) = fields.iter().find(|f| f.name == *key || f.json_name == *key) else { continue };
        let Some(type_name) = &field.type_name else { continue };
        let mark = path.len();
        if !path.is_empty() && !path.ends_with(' ') {
            path.push('.');
        }
        path.push_str(key);
        match (field.repeated, v) {
            (true, Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let item_mark = path.len();
                    path.push_str(&format!("[{i}]"));
                    visit(item, type_name, path)?;
                    path.truncate(item_mark);
                }
            }
            (false, v) => visit(v, type_name, path)?,
            _ => {}
        }
        path.truncate(mark);
    }
    Ok(())
}

fn visit(v: &mut Value, type_name: &str, path: &mut String) -> Result<(), DocumentError> {
    if type_name == DURATION {
        normalize_duration(v, path)
    } else {
        normalize_durations(v, type_name, path)
    }
}

fn normalize_duration(v: &mut Value, path: &str) -> Result<(), DocumentError> {
    let err = |got: &str| DocumentError::Field {
        path: path.to_owned(),
        message: format!("expected a duration such as \"90s\", \"250ms\" or \"1h30m\", found {got}"),
    };
    match v {
        Value::String(s) => {
            let t = s.trim();
            let protobuf_form = t.strip_suffix('s').is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok());
            if protobuf_form {
                return Ok(());
            }
            let d = humantime::parse_duration(t).map_err(|_| err(&format!("{s:?}")))?;
            *s = format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
            Ok(())
        }
        Value::Null => Ok(()),
        other => Err(err(kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_parses() {
        let specs = parse_specs(
            "name: checkout-5xx\nmatch: { routes: [api], path_prefix: /checkout, methods: [POST] }\npercentage: 30\nduration: 10m\nfaults:\n  - abort: { http_status: 503 }\n  - delay: { uniform: { min: 10ms, max: 1.5s } }\n",
        )
        .expect("parses");
        let s = &specs[0];
        assert_eq!(s.name, "checkout-5xx");
        assert_eq!(s.duration.as_ref().map(|d| d.seconds), Some(600));
        assert_eq!(s.percentage, Some(30.0));
        assert_eq!(s.r#match.as_ref().map(|m| m.routes.clone()), Some(vec!["api".to_string()]));
    }

    #[test]
    fn camel_case_and_multi_documents() {
        let specs = parse_specs("name: a\nstartDelay: 1s\n---\nname: b\nmatch: {pathPrefix: /x}\n").expect("parses");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].start_delay.as_ref().map(|d| d.seconds), Some(1));
        assert_eq!(specs[1].r#match.as_ref().map(|m| m.path_prefix.as_str()), Some("/x"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_specs("name: a\nfaults:\n  - delay: { fixed: soon }\n").expect_err("bad duration");
        assert!(e.to_string().starts_with("faults[0].delay.fixed: expected a duration"), "{e}");
        let e = parse_specs("name: a\npercentag: 3\n").expect_err("unknown field");
        assert!(e.to_string().contains("percentag"), "{e}");
        let e = parse_specs("name: a\nfaults:\n  - abort: { http_status: fast }\n").expect_err("bad type");
        assert!(e.to_string().starts_with("faults[0].abort.http_status"), "{e}");
        let e = parse_specs("name: [").expect_err("bad yaml");
        assert!(e.to_string().contains("line"), "{e}");
    }

    #[test]
    fn deep_nesting_and_huge_files_are_refused_before_parsing() {
        let deep = format!("name: x\nfaults: {}{}\n", "[".repeat(25_000), "]".repeat(25_000));
        // Refused by the scan before the parser runs (the parser's own error would name a column).
        let e = parse_yaml_documents(&deep).expect_err("too deep");
        assert_eq!(e.to_string(), "line 2: lists and mappings nested more than 64 deep");
        let ok = format!("name: x\nm: {}1{}\n", "[".repeat(64), "]".repeat(64));
        assert!(parse_yaml_documents(&ok).is_ok());
        // Brackets in quoted text and comments are text.
        let quoted =
            format!("name: \"{}\"\ndescription: '{}' # {}\n", "[".repeat(100), "{".repeat(100), "[".repeat(100));
        assert!(parse_yaml_documents(&quoted).is_ok());
        let huge = "a".repeat(MAX_YAML_BYTES + 1);
        assert!(parse_yaml_documents(&huge).expect_err("too big").to_string().contains("more than the"));
    }
}
