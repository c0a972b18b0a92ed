//! Just enough of the WebSocket framing (RFC 6455 §5.2) for a proxy that relays bytes to end a socket
//! cleanly: where each frame ends, so a close frame can be put between two frames, and the close frame
//! itself.

/// Where a byte stream of frames stands: in a frame's header, or in its payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frames {
    /// Bytes of the current header read so far (0: at a frame boundary when `payload` is 0 too).
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to come.
    payload: u64,
}

impl Frames {
    /// Whether the bytes so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload == 0
    }

    /// How many more bytes may be read without going past the end of the current frame (one at a time in
    /// a header, whose length is known only once its first bytes are).
    pub fn left_in_frame(&self) -> u64 {
        if self.payload > 0 {
            self.payload
        } else {
            1
        }
    }

    /// The header's length, once enough of it is in to tell.
    fn header_len(&self) -> Option<usize> {
        let b1 = *self.header.get(1)?;
        if self.have < 2 {
            return None;
        }
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    /// The payload length of a complete header.
    fn payload_len(&self) -> u64 {
        let b1 = self.header[1];
        match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        }
    }

    /// Takes the bytes that passed.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload > 0 {
                let take = self.payload.min(bytes.len() as u64);
                self.payload -= take;
                bytes = bytes.get(usize::try_from(take).unwrap_or(usize::MAX)..).unwrap_or_default();
                continue;
            }
            let Some((&b, rest)) = bytes.split_first() else { return };
            if let Some(slot) = self.header.get_mut(self.have) {
                *slot = b;
            }
            self.have += 1;
            bytes = rest;
            if self.header_len().is_some_and(|n| self.have >= n) {
                self.payload = self.payload_len();
                self.have = 0;
            }
        }
    }
}

/// The close frame with status 1001 ("going away"), as a server sends it (unmasked).
pub const GOING_AWAY_TO_CLIENT: [u8; 4] = [0x88, 0x02, 0x03, 0xe9];

/// The same close frame as a client must send it: masked with `mask`.
pub fn going_away_to_server(mask: [u8; 4]) -> [u8; 8] {
    [0x88, 0x82, mask[0], mask[1], mask[2], mask[3], 0x03 ^ mask[0], 0xe9 ^ mask[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![0x82];
        let m = if masked { 0x80 } else { 0 };
        match payload {
            n if n < 126 => f.push(m | u8::try_from(n).expect("under 126")),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&u16::try_from(n).expect("under 65536").to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(7u8, payload));
        f
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_split() {
        let stream: Vec<u8> = [frame(5, false), frame(300, true), frame(70_000, false), frame(0, true)].concat();
        let ends = [frame(5, false).len(), frame(5, false).len() + frame(300, true).len()];
        for split in [1usize, 2, 3, 7, 100, 4096] {
            let mut f = Frames::default();
            let mut pos = 0;
            let mut boundaries = Vec::new();
            for chunk in stream.chunks(split) {
                for (i, b) in chunk.iter().enumerate() {
                    f.feed(std::slice::from_ref(b));
                    if f.at_boundary() {
                        boundaries.push(pos + i + 1);
                    }
                }
                pos += chunk.len();
            }
            assert!(boundaries.starts_with(&ends), "split {split}: {boundaries:?}");
            assert_eq!(boundaries.last(), Some(&stream.len()), "split {split}");
        }
    }

    #[test]
    fn a_masked_close_unmasks_to_1001() {
        let m = [9, 8, 7, 6];
        let f = going_away_to_server(m);
        assert_eq!([f[6] ^ m[0], f[7] ^ m[1]], [0x03, 0xe9]);
    }
}
