//! Proto → domain for the traffic-kind matchers: gRPC service and method.

use regex::Regex;

use super::Collector;
use crate::{
    fault::{Matcher, Predicate, ValueMatch},
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
