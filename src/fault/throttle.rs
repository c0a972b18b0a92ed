//! `throttle`: the upstream's response body is sent at a limited rate, like a congested link.

use std::num::NonZeroU64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub bytes_per_second: NonZeroU64,
}
