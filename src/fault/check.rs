//! Checking a spec while it becomes domain values: the one collector of problems ([`Collector`]) and its
//! helpers for protobuf durations, the server's bound on them, lists and regular expressions. Every fault
//! kind's `convert` and every part of `experiment::spec` report through it, each problem with its field
//! path.

use std::{fmt, time::Duration};

use regex::{Regex, RegexBuilder};

use super::page::PageTemplates;

/// Regexes are compiled with this size limit, so a hostile pattern cannot take the server's memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// At most this many entries in any one list or header map of a spec.
pub const MAX_LIST: usize = 256;
/// The longest body a spec may carry (an abort's, a replacement's).
pub const MAX_BODY: usize = 1024 * 1024;
/// At most this many problems are reported for one spec (then one saying how many more there were).
const MAX_VIOLATIONS: usize = 100;
/// What a violation may echo of the input: its field path and its description are cut to these lengths.
const MAX_FIELD: usize = 256;
const MAX_VIOLATION_TEXT: usize = 1024;

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// protobuf field path: `faults[0].abort.http_status`.
    pub field: String,
    pub description: String,
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid experiment: ")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// The problems found so far, and what a spec is checked against that its faults need: the config's page
/// templates and the server's `limits.max_duration`.
pub struct Collector {
    violations: Vec<Violation>,
    /// `None`: not known (a file validated without its server's config).
    pages: Option<PageTemplates>,
    /// No duration in a spec may be longer: what the experiment would not outlive, a fault of it could not
    /// use.
    max_duration: Duration,
}

impl Collector {
    pub fn new(pages: Option<PageTemplates>, max_duration: Duration) -> Self {
        Collector { violations: Vec::new(), pages, max_duration }
    }

    /// Records a problem. Whatever it echoes of the input is bounded (see [`MAX_FIELD`]), and so is the
    /// count of problems.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        match self.violations.len() {
            n if n < MAX_VIOLATIONS => {
                let (field, description) = (field.into(), description.into());
                self.violations.push(Violation {
                    field: crate::text::excerpt(&field, MAX_FIELD).into_owned(),
                    description: crate::text::excerpt(&description, MAX_VIOLATION_TEXT).into_owned(),
                });
            }
            n if n == MAX_VIOLATIONS => self.violations.push(Violation {
                field: "(spec)".into(),
                description: format!("more than {MAX_VIOLATIONS} problems; fix these first"),
            }),
            _ => {}
        }
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Violations> {
        if self.violations.is_empty() {
            Ok(value())
        } else {
            Err(Violations(self.violations))
        }
    }

    /// The config's page templates; `None` when they are not known.
    pub fn pages(&self) -> Option<&PageTemplates> {
        self.pages.as_ref()
    }

    /// An optional duration field at `path`: valid, and within the server's `limits.max_duration`.
    /// `required`: its absence is a problem too. `None` when absent or invalid.
    pub fn duration(&mut self, v: &Option<pbjson_types::Duration>, path: &str, required: bool) -> Option<Duration> {
        match v {
            None if required => {
                self.add(path, "required");
                None
            }
            None => None,
            Some(v) => match pb_duration(v) {
                Err(why) => {
                    self.add(path, why);
                    None
                }
                Ok(d) => self.within(d, self.max_duration, path, "limits.max_duration"),
            },
        }
    }

    /// `d` when it is at most the server's `bound` (named by its config key `what`), else a problem at
    /// `path`.
    pub fn within(&mut self, d: Duration, bound: Duration, path: &str, what: &str) -> Option<Duration> {
        if d > bound {
            self.add(path, format!("{} exceeds the server's maximum of {} ({what})", human(d), human(bound)));
            return None;
        }
        Some(d)
    }

    /// Whether a list at `path` has at most [`MAX_LIST`] entries (a problem when it has more).
    pub fn bounded<T>(&mut self, list: &[T], path: &str) -> bool {
        if list.len() > MAX_LIST {
            self.add(path, format!("at most {MAX_LIST} entries"));
            return false;
        }
        true
    }

    /// A regular expression at `path`, compiled with a size limit.
    pub fn regex(&mut self, pattern: &str, path: &str) -> Option<Regex> {
        match RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(re) => Some(re),
            Err(e) => {
                self.add(path, format!("not a valid regular expression: {}", e.to_string().replace('\n', " ")));
                None
            }
        }
    }
}

/// A `google.protobuf.Duration` as a duration: neither part negative, nanos under one second.
pub fn pb_duration(d: &pbjson_types::Duration) -> Result<Duration, &'static str> {
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err("must not be negative");
    };
    if nanos >= 1_000_000_000 {
        return Err("not a duration: nanos must be under 1 second (999999999)");
    }
    Ok(Duration::new(secs, nanos))
}

/// A duration as people write it: `1h 30m`, `250ms`.
pub fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
