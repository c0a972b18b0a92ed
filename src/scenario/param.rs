//! Scenario parameters: a type, a default, and the check of a given value.

use serde::Deserialize;
use serde_json::Value;

use crate::pb::v1 as pb;

/// What a parameter holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// A number within optional bounds.
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// A whole number within optional bounds.
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// 0 to 100.
    Percentage,
    /// A human duration ("90s", "10m", "1h30m"), substituted as written.
    Duration,
    String,
    /// Strings; given as "a,b" on the command line, substituted as a list.
    List,
    Bool,
}

/// A declared parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    /// The default, already checked against the kind.
    pub default: Value,
    pub description: String,
    /// Accepted values, when the set is fixed (empty: any value of the kind).
    pub choices: Vec<String>,
}

/// A parameter as written in a scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParamFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Value,
    #[serde(default)]
    pub description: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub choices: Vec<Value>,
}

impl ParamKind {
    pub fn name(&self) -> &'static str {
        match self {
            ParamKind::Number { .. } => "number",
            ParamKind::Integer { .. } => "integer",
            ParamKind::Percentage => "percentage",
            ParamKind::Duration => "duration",
            ParamKind::String => "string",
            ParamKind::List => "list",
            ParamKind::Bool => "bool",
        }
    }

    /// Checks a value (from a file, or the text given on a call) and returns it in its substituted form.
    pub fn parse(&self, v: &Value, choices: &[String]) -> Result<Value, String> {
        let out = match self {
            ParamKind::Number { min, max } | ParamKind::Integer { min, max } => {
                let n = number(v).ok_or_else(|| format!("expected a number, got {}", shown(v)))?;
                let integer = matches!(self, ParamKind::Integer { .. });
                if integer && n.fract() != 0.0 {
                    return Err(format!("expected a whole number, got {n}"));
                }
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    return Err(format!("must be {}, got {n}", bounds(*min, *max)));
                }
                if integer {
                    // A whole number (checked above) within the parameter's bounds.
                    #[allow(clippy::cast_possible_truncation, reason = "a whole number, saturating at i64's range")]
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                }
            }
            ParamKind::Percentage => {
                let n = number(v).ok_or_else(|| format!("expected a percentage (0 to 100), got {}", shown(v)))?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(format!("must be between 0 and 100, got {n}"));
                }
                Value::from(n)
            }
            ParamKind::Duration => {
                let s = v.as_str().ok_or_else(|| format!("expected a duration such as \"90s\", got {}", shown(v)))?;
                humantime::parse_duration(s.trim())
                    .map_err(|_| format!("expected a duration such as \"90s\", \"10m\" or \"1h30m\", got {s:?}"))?;
                Value::String(s.trim().to_owned())
            }
            ParamKind::String => match v {
                Value::String(s) => Value::String(s.clone()),
                Value::Number(n) => Value::String(n.to_string()),
                other => return Err(format!("expected a string, got {}", shown(other))),
            },
            ParamKind::List => match v {
                Value::String(s) => Value::Array(
                    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| Value::String(x.into())).collect(),
                ),
                Value::Array(items) if items.iter().all(Value::is_string) => Value::Array(items.clone()),
                other => return Err(format!("expected a list of names (\"a,b\"), got {}", shown(other))),
            },
            ParamKind::Bool => match v {
                Value::Bool(b) => Value::Bool(*b),
                Value::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
                other => return Err(format!("expected true or false, got {}", shown(other))),
            },
        };
        if !choices.is_empty() && !choices.contains(&text(&out)) {
            return Err(format!("must be one of {}, got {}", choices.join(", "), text(&out)));
        }
        Ok(out)
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "a number".into(),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A value as text: what a placeholder inside a longer string becomes, and how defaults are shown.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        Value::Number(n) => match n.as_f64() {
            #[allow(clippy::cast_possible_truncation, reason = "a whole number under 1e15")]
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

impl Param {
    pub(super) fn from_file(p: ParamFile) -> Result<Param, String> {
        if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("name {:?}: letters, digits and '_' only", p.name));
        }
        let kind = match p.kind.as_str() {
            "number" => ParamKind::Number { min: p.min, max: p.max },
            "integer" => ParamKind::Integer { min: p.min, max: p.max },
            "percentage" => ParamKind::Percentage,
            "duration" => ParamKind::Duration,
            "string" => ParamKind::String,
            "list" => ParamKind::List,
            "bool" => ParamKind::Bool,
            other => {
                return Err(format!(
                    "type {other:?}: use one of number, integer, percentage, duration, string, list, bool"
                ))
            }
        };
        if (p.min.is_some() || p.max.is_some()) && !matches!(kind, ParamKind::Number { .. } | ParamKind::Integer { .. })
        {
            return Err("min and max apply to number and integer parameters only".into());
        }
        let choices: Vec<String> = p.choices.iter().map(text).collect();
        let default = kind.parse(&p.default, &choices).map_err(|e| format!("default: {e}"))?;
        Ok(Param { name: p.name, kind, default, description: p.description, choices })
    }

    /// The parameters every scenario has.
    pub(super) fn common() -> Vec<Param> {
        vec![
            Param {
                name: "speed".into(),
                kind: ParamKind::Number { min: Some(0.001), max: Some(100_000.0) },
                default: Value::from(1.0),
                description: "how many times faster than real time the timeline runs (multiplies time_scale)".into(),
                choices: Vec::new(),
            },
            Param {
                name: "max_percentage".into(),
                kind: ParamKind::Percentage,
                default: Value::from(100.0),
                description: "caps every percentage of every experiment (the blast radius)".into(),
                choices: Vec::new(),
            },
        ]
    }

    pub fn to_proto(&self) -> pb::ScenarioParam {
        pb::ScenarioParam {
            name: self.name.clone(),
            r#type: self.kind.name().into(),
            default_value: text(&self.default),
            description: self.description.clone(),
            choices: self.choices.clone(),
        }
    }
}
