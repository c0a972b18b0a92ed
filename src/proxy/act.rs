//! Faults that act on a request before its upstream: hang, reset, and the holds of delays.
//!
//! A connection fault makes hyper drop the client's connection: the request's service returns
//! [`Dropped`] (a body fault's body returns [`BodyError::Cut`](super::error::BodyError), see
//! [`body::acted`](super::body::acted)). Over HTTP/1.1 hyper then closes the connection; over HTTP/2 it
//! resets the stream. For a reset, the connection's [`ResetSwitch`] is flipped first.

use std::{net::IpAddr, time::Duration};

use http::{Request, Response};
use tokio::time::Instant;

use super::{body::ProxyBody, conn::ResetSwitch, error::Dropped, respond};
use crate::{
    experiment::{Held, Lifeline},
    fault::{Hang, HangEnd},
};

// === connection faults before the response ===

/// Resets the connection without a response.
pub fn reset(switch: &ResetSwitch) -> Dropped {
    switch.turn_on();
    Dropped
}

/// Holds the request, then ends it as the hang says. `None`: the experiment ended during the hold, and
/// the request goes on as if it had never been held.
pub async fn hang<B>(
    hang: &Hang,
    req: &Request<B>,
    client: IpAddr,
    switch: &ResetSwitch,
    lifeline: &Lifeline,
) -> Option<Result<Response<ProxyBody>, Dropped>> {
    tokio::select! {
        () = tokio::time::sleep(hang.hold) => {}
        () = lifeline.ended() => return None,
    }
    Some(match &hang.then {
        HangEnd::Close => Err(Dropped),
        HangEnd::Reset => Err(reset(switch)),
        HangEnd::Respond(abort) => Ok(respond::abort(abort, req, client)),
    })
}

/// Waits, from `since`, for the sum of the holds whose experiments still run: an experiment that ends
/// meanwhile takes its share of the wait with it. Returns at once when nothing is held.
pub async fn hold(held: &mut Held<Duration>, since: Instant) {
    loop {
        let total = held.fold(Duration::ZERO, Duration::saturating_add);
        if total.is_zero() {
            return;
        }
        let ended = held.any_ended();
        tokio::select! {
            () = tokio::time::sleep_until(since + total) => return,
            () = ended => {
                held.prune();
            }
        }
    }
}
