//! Toxiproxy's toxics as its clients send them (`type`, `stream`, `toxicity`, `attributes` in Toxiproxy's
//! units) and as edgefault runs them: one TCP experiment per toxic. Pure values; checked field by field
//! with Toxiproxy's names before anything runs.

use serde_json::{Map, Value};

use super::ApiError;
use crate::pb::v1 as pb;

/// Which way the toxic's bytes flow, by Toxiproxy's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    fn parse(v: Option<&Value>) -> Result<Self, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(Stream::Downstream),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("downstream") => Ok(Stream::Downstream),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("upstream") => Ok(Stream::Upstream),
            Some(other) => Err(ApiError::bad_request(format!(
                "stream was invalid, can be either upstream or downstream (got {other})"
            ))),
        }
    }
}

/// A toxic's kind with its attributes, in Toxiproxy's units (milliseconds, KB/s, bytes; the slicer's
/// delay in microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Latency { latency: u64, jitter: u64 },
    Bandwidth { rate: u64 },
    SlowClose { delay: u64 },
    Timeout { timeout: u64 },
    ResetPeer { timeout: u64 },
    Slicer { average_size: u64, size_variation: u64, delay: u64 },
    LimitData { bytes: u64 },
}

/// The toxic types edgefault takes, as Toxiproxy names them.
pub const TYPES: [&str; 7] = ["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"];

impl Attributes {
    /// Toxiproxy's name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Attributes::Latency { .. } => "latency",
            Attributes::Bandwidth { .. } => "bandwidth",
            Attributes::SlowClose { .. } => "slow_close",
            Attributes::Timeout { .. } => "timeout",
            Attributes::ResetPeer { .. } => "reset_peer",
            Attributes::Slicer { .. } => "slicer",
            Attributes::LimitData { .. } => "limit_data",
        }
    }

    /// A toxic of type `name` with Toxiproxy's defaults (every attribute 0).
    fn defaults(name: &str) -> Result<Self, ApiError> {
        Ok(match name {
            "latency" => Attributes::Latency { latency: 0, jitter: 0 },
            "bandwidth" => Attributes::Bandwidth { rate: 0 },
            "slow_close" => Attributes::SlowClose { delay: 0 },
            "timeout" => Attributes::Timeout { timeout: 0 },
            "reset_peer" => Attributes::ResetPeer { timeout: 0 },
            "slicer" => Attributes::Slicer { average_size: 0, size_variation: 0, delay: 0 },
            "limit_data" => Attributes::LimitData { bytes: 0 },
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid toxic type: {other:?}; edgefault takes {}",
                    TYPES.join(", ")
                )))
            }
        })
    }

    /// The attributes by name, for reading and for writing one.
    fn fields(&mut self) -> Vec<(&'static str, &mut u64)> {
        match self {
            Attributes::Latency { latency, jitter } => vec![("latency", latency), ("jitter", jitter)],
            Attributes::Bandwidth { rate } => vec![("rate", rate)],
            Attributes::SlowClose { delay } => vec![("delay", delay)],
            Attributes::Timeout { timeout } | Attributes::ResetPeer { timeout } => vec![("timeout", timeout)],
            Attributes::Slicer { average_size, size_variation, delay } => {
                vec![("average_size", average_size), ("size_variation", size_variation), ("delay", delay)]
            }
            Attributes::LimitData { bytes } => vec![("bytes", bytes)],
        }
    }

    /// These attributes with those of `given` (a JSON object) written over them. Every name must be one of
    /// the type's, every value a whole number of at least 0.
    fn merged(mut self, given: Option<&Value>) -> Result<Self, ApiError> {
        let given = match given {
            None | Some(Value::Null) => return self.check().map(|()| self),
            Some(Value::Object(m)) => m,
            Some(other) => return Err(ApiError::bad_request(format!("attributes: an object, got {other}"))),
        };
        let kind = self.type_name();
        let mut fields = self.fields();
        for (name, value) in given {
            let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            let Some((_, slot)) = fields.iter_mut().find(|(n, _)| n == name) else {
                return Err(ApiError::bad_request(format!(
                    "attributes.{name}: a {kind} toxic has no such attribute; it has {}",
                    known.join(", ")
                )));
            };
            **slot = whole(value).ok_or_else(|| {
                ApiError::bad_request(format!("attributes.{name}: a whole number of at least 0, got {value}"))
            })?;
        }
        drop(fields);
        self.check()?;
        Ok(self)
    }

    /// What Toxiproxy would take but edgefault's toxics cannot run, said in Toxiproxy's names.
    fn check(&self) -> Result<(), ApiError> {
        match self {
            Attributes::Bandwidth { rate: 0 } => {
                Err(ApiError::bad_request("attributes.rate: at least 1 (KB/s); to stop the data, use a timeout toxic"))
            }
            Attributes::Slicer { average_size: 0, .. } => {
                Err(ApiError::bad_request("attributes.average_size: at least 1 byte"))
            }
            Attributes::Slicer { average_size, size_variation, .. } if size_variation >= average_size => {
                Err(ApiError::bad_request(format!(
                    "attributes.size_variation: less than average_size ({average_size}), got {size_variation}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The attributes as Toxiproxy shows them: every one, by name.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut copy = self.clone();
        copy.fields().into_iter().map(|(n, v)| (n.to_owned(), Value::from(*v))).collect()
    }

    /// The toxic as an edgefault toxic fault.
    fn to_proto(&self) -> pb::toxic_fault::Kind {
        use pb::toxic_fault::Kind as K;
        match *self {
            Attributes::Latency { latency, jitter } => {
                K::Latency(pb::LatencyToxic { latency: Some(millis(latency)), jitter: Some(millis(jitter)) })
            }
            Attributes::Bandwidth { rate } => {
                K::Bandwidth(pb::BandwidthToxic { bytes_per_second: rate.saturating_mul(1000) })
            }
            Attributes::SlowClose { delay } => K::SlowClose(pb::SlowCloseToxic { delay: Some(millis(delay)) }),
            Attributes::Timeout { timeout } => K::Timeout(pb::TimeoutToxic { timeout: Some(millis(timeout)) }),
            Attributes::ResetPeer { timeout } => K::ResetPeer(pb::ResetPeerToxic { timeout: Some(millis(timeout)) }),
            Attributes::Slicer { average_size, size_variation, delay } => {
                K::Slicer(pb::SlicerToxic { average_size, size_variation, delay: Some(micros(delay)) })
            }
            Attributes::LimitData { bytes } => K::LimitData(pb::LimitDataToxic { bytes }),
        }
    }
}

/// A JSON number that is a whole number ≥ 0 (Toxiproxy's attributes are integers).
fn whole(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn millis(ms: u64) -> pbjson_types::Duration {
    micros(ms.saturating_mul(1000))
}

fn micros(us: u64) -> pbjson_types::Duration {
    let seconds = i64::try_from(us / 1_000_000).unwrap_or(i64::MAX);
    let nanos = i32::try_from((us % 1_000_000) * 1000).unwrap_or(0);
    pbjson_types::Duration { seconds, nanos }
}

/// One toxic of a proxy, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicDef {
    pub name: String,
    pub stream: Stream,
    /// The share of connections it applies to, 0 to 1.
    pub toxicity: f64,
    pub attributes: Attributes,
}

/// The fields a toxic's JSON may have.
const TOXIC_FIELDS: [&str; 5] = ["name", "type", "stream", "toxicity", "attributes"];

impl ToxicDef {
    /// A new toxic from a client's JSON (`POST /proxies/{proxy}/toxics`), with Toxiproxy's defaults:
    /// stream downstream, toxicity 1, name `<type>_<stream>`, attributes 0.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let m = object(body)?;
        let kind = match m.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None | Some(Value::Null) => return Err(ApiError::bad_request("missing required field: type")),
            Some(other) => return Err(ApiError::bad_request(format!("type: a string, got {other}"))),
        };
        let attributes = Attributes::defaults(kind)?.merged(m.get("attributes"))?;
        let stream = Stream::parse(m.get("stream"))?;
        let name = match m.get("name") {
            None | Some(Value::Null) => format!("{kind}_{}", stream.as_str()),
            Some(Value::String(n)) if n.is_empty() => format!("{kind}_{}", stream.as_str()),
            Some(Value::String(n)) => n.clone(),
            Some(other) => return Err(ApiError::bad_request(format!("name: a string, got {other}"))),
        };
        super::check_name(&name, "toxic")?;
        let toxicity = toxicity(m.get("toxicity"), 1.0)?;
        Ok(ToxicDef { name, stream, toxicity, attributes })
    }

    /// This toxic with a client's changes (`POST`/`PATCH /proxies/{proxy}/toxics/{toxic}`): `toxicity` and
    /// any attributes; the name, type and stream stay (given, they must be the same).
    pub fn updated(&self, body: &Value) -> Result<Self, ApiError> {
        let m = object(body)?;
        let same = |field: &str, now: &str| match m.get(field) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s.eq_ignore_ascii_case(now) => Ok(()),
            Some(other) => Err(ApiError::bad_request(format!(
                "{field}: the toxic's {field} is {now:?} and cannot change (got {other}); remove the toxic and \
                 add another"
            ))),
        };
        same("name", &self.name)?;
        same("type", self.attributes.type_name())?;
        same("stream", self.stream.as_str())?;
        Ok(ToxicDef {
            name: self.name.clone(),
            stream: self.stream,
            toxicity: toxicity(m.get("toxicity"), self.toxicity)?,
            attributes: self.attributes.clone().merged(m.get("attributes"))?,
        })
    }

    /// The toxic as Toxiproxy shows it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.attributes.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": Value::Object(self.attributes.to_json()),
        })
    }

    /// The experiment that runs it on `proxy` (a TCP listener of that name) for `duration`.
    pub fn spec(&self, proxy: &str, duration: std::time::Duration) -> pb::ExperimentSpec {
        let direction = self.stream.as_str().to_owned();
        experiment_spec(
            format!("toxiproxy {proxy}/{}", self.name),
            format!(
                "Toxiproxy API: {} toxic {:?} ({}) on proxy {proxy:?}",
                self.attributes.type_name(),
                self.name,
                self.stream.as_str()
            ),
            proxy,
            self.toxicity * 100.0,
            duration,
            vec![pb::ToxicFault { direction, kind: Some(self.attributes.to_proto()) }],
        )
    }
}

/// The experiment that keeps a disabled proxy down (`enabled: false`): its listener is closed while it
/// runs, and a connection that still reaches the proxy is reset in both directions.
pub fn disabled_spec(proxy: &str, duration: std::time::Duration) -> pb::ExperimentSpec {
    let reset = |direction: &str| pb::ToxicFault {
        direction: direction.to_owned(),
        kind: Some(pb::toxic_fault::Kind::ResetPeer(pb::ResetPeerToxic { timeout: None })),
    };
    experiment_spec(
        format!("toxiproxy {proxy} disabled"),
        format!("Toxiproxy API: proxy {proxy:?} disabled (enabled: false); its listener is closed"),
        proxy,
        100.0,
        duration,
        vec![reset("upstream"), reset("downstream")],
    )
}

fn experiment_spec(
    name: String,
    description: String,
    proxy: &str,
    percentage: f64,
    duration: std::time::Duration,
    toxics: Vec<pb::ToxicFault>,
) -> pb::ExperimentSpec {
    pb::ExperimentSpec {
        name,
        description,
        r#match: Some(pb::Match { listeners: vec![proxy.to_owned()], ..pb::Match::default() }),
        percentage: Some(percentage),
        duration: Some(pbjson_types::Duration::from(duration)),
        faults: toxics.into_iter().map(|t| pb::Fault { kind: Some(pb::fault::Kind::Toxic(t)) }).collect(),
        ..pb::ExperimentSpec::default()
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    let m = body.as_object().ok_or_else(|| ApiError::bad_request("bad request body: a JSON object"))?;
    if let Some(field) = m.keys().find(|k| !TOXIC_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{field}: a toxic has no such field; it has {}",
            TOXIC_FIELDS.join(", ")
        )));
    }
    Ok(m)
}

fn toxicity(v: Option<&Value>, default: f64) -> Result<f64, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|t| (0.0..=1.0).contains(t)).ok_or_else(|| {
            ApiError::bad_request(format!("toxicity: a number from 0 to 1 (the share of connections), got {v}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_follow_toxiproxy() {
        let t = ToxicDef::from_json(&json!({ "type": "latency", "attributes": { "latency": 100 } }))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(t.to_json()["attributes"], json!({ "latency": 100, "jitter": 0 }));
        let up = ToxicDef::from_json(&json!({ "type": "timeout", "stream": "upstream", "toxicity": 0.5 }))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((up.name.as_str(), up.toxicity), ("timeout_upstream", 0.5));
    }

    #[test]
    fn every_bad_field_is_named() {
        let refused = |body: Value| ToxicDef::from_json(&body).err().map(|e| e.message).unwrap_or_default();
        assert!(refused(json!({})).contains("type"));
        assert!(refused(json!({ "type": "flood" })).contains("invalid toxic type"));
        assert!(refused(json!({ "type": "latency", "stream": "sideways" })).contains("stream"));
        assert!(refused(json!({ "type": "latency", "toxicity": 2 })).contains("toxicity"));
        assert!(refused(json!({ "type": "latency", "attributes": { "latncy": 5 } })).contains("attributes.latncy"));
        assert!(refused(json!({ "type": "latency", "attributes": { "latency": -5 } })).contains("attributes.latency"));
        assert!(refused(json!({ "type": "latency", "attributes": { "latency": 1.5 } })).contains("attributes.latency"));
        assert!(refused(json!({ "type": "bandwidth" })).contains("attributes.rate"));
        let slicer = json!({ "type": "slicer", "attributes": { "average_size": 4, "size_variation": 4 } });
        assert!(refused(slicer).contains("attributes.size_variation"));
        assert!(refused(json!({ "type": "latency", "colour": "red" })).contains("colour"));
        assert!(refused(json!({ "type": "latency", "name": "a/b" })).contains("name"));
    }

    #[test]
    fn an_update_merges_and_keeps_what_cannot_change() {
        let t = ToxicDef::from_json(&json!({ "type": "latency", "name": "slow", "attributes": { "latency": 100 } }))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let u =
            t.updated(&json!({ "attributes": { "jitter": 10 }, "toxicity": 0.25 })).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(u.attributes, Attributes::Latency { latency: 100, jitter: 10 });
        assert_eq!(u.toxicity, 0.25);
        assert!(t.updated(&json!({ "stream": "upstream" })).is_err());
        assert!(t.updated(&json!({ "type": "timeout" })).is_err());
        assert!(t.updated(&json!({ "name": "slow", "type": "latency", "stream": "downstream" })).is_ok());
    }

    #[test]
    fn units_become_edgefault_s() {
        let kind = |body: Value| {
            ToxicDef::from_json(&body).map(|t| t.attributes.to_proto()).unwrap_or_else(|e| panic!("{e:?}"))
        };
        use pb::toxic_fault::Kind as K;
        match kind(json!({ "type": "bandwidth", "attributes": { "rate": 64 } })) {
            K::Bandwidth(b) => assert_eq!(b.bytes_per_second, 64_000),
            other => panic!("{other:?}"),
        }
        match kind(json!({ "type": "slicer", "attributes": { "average_size": 8, "delay": 1500 } })) {
            K::Slicer(s) => assert_eq!(s.delay, Some(pbjson_types::Duration { seconds: 0, nanos: 1_500_000 })),
            other => panic!("{other:?}"),
        }
        match kind(json!({ "type": "latency", "attributes": { "latency": 2500 } })) {
            K::Latency(l) => assert_eq!(l.latency, Some(pbjson_types::Duration { seconds: 2, nanos: 500_000_000 })),
            other => panic!("{other:?}"),
        }
    }
}
