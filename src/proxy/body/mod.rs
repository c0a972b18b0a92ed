//! The one response body type of the data plane: the upstream's stream, passed through frame by frame, or
//! bytes the proxy made itself. An enum rather than a boxed trait object: no allocation per response.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub mod acted;
pub mod grpc;
pub mod request;

use acted::ActBody;
use grpc::GrpcCutBody;

use super::{error::BodyError, pool::PooledBody};

pub enum ProxyBody {
    /// The upstream's body, data and trailers, as they arrive.
    Upstream(PooledBody),
    /// A body the proxy wrote (an abort, an error); `None` once sent.
    Full(Option<Bytes>),
    /// The upstream's body with body faults applied (truncate, throttle, reset); boxed, as only faulted
    /// responses pay for it.
    Acted(Box<ActBody>),
    /// A gRPC response stream that a `grpc_stream` fault ends with a status.
    Grpc(Box<GrpcCutBody>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::Upstream),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Acted(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Grpc(b) => Pin::new(&mut **b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(b) => b.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Acted(b) => b.is_end_stream(),
            ProxyBody::Grpc(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(b) => b.size_hint(),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Acted(b) => b.size_hint(),
            ProxyBody::Grpc(b) => b.size_hint(),
        }
    }
}
