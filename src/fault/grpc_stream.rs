//! `grpc_stream`: fail a gRPC call mid-stream, after some response messages or some time.

use std::time::Duration;

use http::HeaderValue;

use super::{percent_encode_grpc, Collector, GrpcCode, HttpKind, Plan, Step};
use crate::pb::v1 as pb;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStream {
    /// End the stream once this many response messages have passed.
    pub after_messages: Option<u64>,
    /// End the stream at the first message boundary this long after the response began.
    pub after: Option<Duration>,
    pub status: GrpcCode,
    /// `grpc-message`, percent-encoded.
    pub message: Option<HeaderValue>,
}

impl GrpcStream {
    /// Two selected experiments' stream faults together: the earliest end (fewest messages, shortest time)
    /// with the status of `self`, the earlier-started one.
    pub fn combine(&mut self, later: &GrpcStream) {
        self.after_messages = min_opt(self.after_messages, later.after_messages);
        self.after = min_opt(self.after, later.after);
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl HttpKind for GrpcStream {
    type Proto = pb::GrpcStreamFault;

    /// At least one of `after_messages` and `after`; a status from 1 to 16.
    fn convert(g: &pb::GrpcStreamFault, path: &str, c: &mut Collector) -> Option<Self> {
        let after = c.duration(&g.after, &format!("{path}.after"), false);
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

    /// Ends the gRPC response stream; with another, at the earlier of both.
    fn apply(&self, plan: &mut Plan<'_>) -> Step {
        match &mut plan.share.grpc_stream {
            Some(earlier) => earlier.combine(self),
            None => plan.share.grpc_stream = Some(self.clone()),
        }
        Step::Acted
    }
}
