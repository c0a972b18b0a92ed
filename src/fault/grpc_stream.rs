//! `grpc_stream`: fail a gRPC call mid-stream, after some response messages or some time.

use std::time::Duration;

use http::HeaderValue;

use super::GrpcCode;

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

impl GrpcStream {
    /// Ends the gRPC response stream; with another, at the earlier of both.
    pub fn apply(&self, plan: &mut super::Plan<'_>) -> super::Step {
        match &mut plan.share.grpc_stream {
            Some(earlier) => earlier.combine(self),
            None => plan.share.grpc_stream = Some(self.clone()),
        }
        super::Step::Acted
    }
}
