//! Proto → domain for the traffic-kind matchers: gRPC service and method.

use http::HeaderValue;
use regex::Regex;

use super::Collector;
use crate::{
    fault::{percent_encode_grpc, GrpcCode, GrpcStream, Matcher, Predicate, ValueMatch},
    pb::v1 as pb,
};

/// `match.grpc`: the call's path (`/service/` or `/service/method`) and a gRPC content type.
pub(super) fn grpc(g: &pb::GrpcMatch, m: &pb::Match, matcher: &mut Matcher, c: &mut Collector) {
    let mut ok = true;
    if !m.path_prefix.is_empty() || !m.path_exact.is_empty() || !m.path_regex.is_empty() {
        c.add(
            "match.grpc",
            "does not combine with path_prefix, path_exact or path_regex (it sets the path: /service/method)",
        );
        ok = false;
    }
    let service_ok = !g.service.is_empty()
        && g.service
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    if !service_ok {
        c.add(
            "match.grpc.service",
            format!("{:?} is not a gRPC service name with its package (\"helloworld.Greeter\")", g.service),
        );
        ok = false;
    }
    if !g.method.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        c.add("match.grpc.method", format!("{:?} is not a gRPC method name (\"SayHello\")", g.method));
        ok = false;
    }
    if !ok {
        return;
    }
    if g.method.is_empty() {
        matcher.path_prefix = Some(format!("/{}/", g.service));
    } else {
        matcher.path_exact = Some(format!("/{}/{}", g.service, g.method));
    }
    if let Ok(re) = Regex::new("^application/grpc") {
        matcher.headers.push(Predicate { name: "content-type".into(), value: ValueMatch::Regex(re) });
    }
}

/// `grpc_stream`: at least one of `after_messages` and `after`; a status from 1 to 16.
pub(super) fn grpc_stream(g: &pb::GrpcStreamFault, path: &str, c: &mut Collector) -> Option<GrpcStream> {
    let after = super::opt_duration(&g.after, &format!("{path}.after"), false, c);
    if g.after_messages.is_none() && after.is_none() {
        c.add(path, "give after_messages, after, or both: when the stream fails");
        return None;
    }
    if after.is_some_and(|d| d.is_zero()) {
        c.add(format!("{path}.after"), "must be longer than zero");
        return None;
    }
    let status = match g.grpc_status {
        None => GrpcCode::UNAVAILABLE,
        Some(code) => match GrpcCode::new(code).filter(|c| c.value() > 0) {
            Some(code) => code,
            None => {
                c.add(format!("{path}.grpc_status"), format!("a gRPC error code from 1 to 16, got {code}"));
                return None;
            }
        },
    };
    let message = (!g.grpc_message.is_empty())
        .then(|| HeaderValue::from_str(&percent_encode_grpc(&g.grpc_message)).ok())
        .flatten();
    Some(GrpcStream { after_messages: g.after_messages, after, status, message })
}
