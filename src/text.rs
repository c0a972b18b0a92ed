//! Free text from users, made safe to store, print and echo: bounded, and without characters that move a
//! terminal's cursor or forge a log line.

use std::borrow::Cow;

/// Whether `c` is a control character (C0, DEL, C1) or a bidirectional override or isolate: characters
/// that reorder or rewrite what a terminal, a log viewer or a browser shows.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// `s` cut to at most `max` characters, with "…" and the full length when it was longer; what an error
/// message may echo of an input.
pub fn excerpt(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}… ({} characters)", s.get(..at).unwrap_or(""), s.chars().count())),
    }
}

/// `s` with every unsafe character (see [`is_unsafe`]) written as an escape (`\u{1b}`), for printing.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if is_unsafe(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

/// `s` bounded to `max` characters, unsafe characters replaced by U+FFFD: for free text that is recorded
/// rather than refused (a stop reason must never stop the stop).
pub fn sanitized(s: &str, max: usize) -> Cow<'_, str> {
    let clean = !s.chars().any(is_unsafe) && s.chars().nth(max).is_none();
    if clean {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().take(max).map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_characters_are_escaped_or_replaced_and_lengths_bounded() {
        assert_eq!(printable("web\u{1b}[2Jx"), "web\\u{1b}[2Jx");
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{202E}b"), "a\\u{202e}b");
        assert_eq!(sanitized("a\nb", 10), "a\u{FFFD}b");
        assert_eq!(sanitized("abcdef", 3), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc… (6 characters)");
        assert_eq!(excerpt("abc", 3), "abc");
        assert_eq!(excerpt("ééé", 2), "éé… (3 characters)");
    }
}
