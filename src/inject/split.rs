//! A YAML stream cut into its documents, each with its exact text: a document starts at a line that begins
//! with `---` at column 0, followed by the end of the line or a blank (`--- # comment`), which YAML reserves
//! for that (no scalar may hold such a line). Joining the chunks gives back the input byte for byte.

/// One document of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Its whole text: the head, the `---` line (if any) and the lines up to the next one.
    pub text: &'a str,
    /// What comes before the `---` line and belongs to this document: a byte-order mark at the start of
    /// the stream, and `%YAML`/`%TAG` directives (with comments among them); usually empty.
    pub head: &'a str,
    /// The `---` line that opens it, with its line break; empty for text before the first one.
    pub separator: &'a str,
    /// The text after the separator line.
    pub body: &'a str,
    /// 1-based line of the input where the chunk starts.
    pub line: usize,
}

const BOM: char = '\u{feff}';

/// Whether a line (with or without its line break) opens a document.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether `text` holds only what may stand before a `---` line: directives, comments, blank lines, and
/// a byte-order mark.
fn is_head(text: &str) -> bool {
    text.trim_start_matches(BOM).lines().all(|l| {
        let t = l.trim_start();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

/// The documents of `text`, in order. Text before the first `---` is a chunk of its own when it is not
/// empty and not only a head (directives, a byte-order mark); so is each `---` line with what follows it.
pub fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    // (start offset, head length, separator length, line) of the chunk being read.
    let mut start = (0usize, 0usize, 0usize, 1usize);
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = if i == 0 { line.trim_start_matches(BOM) } else { line };
        if is_separator(bare) {
            let pending = text.get(start.0..offset).unwrap_or_default();
            let head_only = start.2 == 0 && (pending.contains('%') || pending.starts_with(BOM)) && is_head(pending);
            if head_only {
                start = (start.0, offset - start.0 + (line.len() - bare.len()), bare.len(), start.3);
            } else {
                push(&mut chunks, text, start, offset);
                start = (offset, line.len() - bare.len(), bare.len(), i + 1);
            }
        }
        offset += line.len();
    }
    push(&mut chunks, text, start, text.len());
    chunks
}

fn push<'a>(
    chunks: &mut Vec<Chunk<'a>>,
    text: &'a str,
    (start, head, separator, line): (usize, usize, usize, usize),
    end: usize,
) {
    let whole = text.get(start..end).unwrap_or_default();
    if whole.is_empty() {
        return;
    }
    let (head, rest) = whole.split_at(head.min(whole.len()));
    let (separator, body) = rest.split_at(separator.min(rest.len()));
    chunks.push(Chunk { text: whole, head, separator, body, line });
}

/// The lines at the top of a document body that hold no YAML (blank lines and comments, such as helm's
/// `# Source: …`), which a re-written document keeps.
pub fn leading_comments(body: &str) -> &str {
    let mut end = 0;
    for line in body.split_inclusive('\n') {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            end += line.len();
        } else {
            break;
        }
    }
    body.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<&str> {
        split(s).iter().map(|c| c.text).collect()
    }

    #[test]
    fn cuts_at_separator_lines_and_joins_back() {
        let s = "# head\na: 1\n---\nb: 2\n--- # two\nc: 3\n---\n";
        assert_eq!(texts(s), ["# head\na: 1\n", "---\nb: 2\n", "--- # two\nc: 3\n", "---\n"]);
        assert_eq!(texts(s).concat(), s);
        let lines: Vec<usize> = split(s).iter().map(|c| c.line).collect();
        assert_eq!(lines, [1, 3, 5, 7]);
        let c = split(s)[2];
        assert_eq!((c.head, c.separator, c.body), ("", "--- # two\n", "c: 3\n"));
    }

    #[test]
    fn directives_and_a_byte_order_mark_belong_to_the_next_document() {
        let s = "\u{feff}%YAML 1.2\n# c\n---\na: 1\n---\nb: 2\n";
        let chunks = split(s);
        assert_eq!(texts(s), ["\u{feff}%YAML 1.2\n# c\n---\na: 1\n", "---\nb: 2\n"]);
        assert_eq!(
            (chunks[0].head, chunks[0].separator, chunks[0].body),
            ("\u{feff}%YAML 1.2\n# c\n", "---\n", "a: 1\n")
        );
        let s = "\u{feff}---\na: 1\n";
        assert_eq!((split(s)[0].head, split(s)[0].separator), ("\u{feff}", "---\n"));
        let s = "# only a comment\n---\na: 1\n";
        assert_eq!(texts(s), ["# only a comment\n", "---\na: 1\n"]);
        assert_eq!(split("\u{feff}a: 1\n")[0].head, "");
    }

    #[test]
    fn only_column_zero_dashes_followed_by_a_blank_separate() {
        let s = "a: |\n  ---\n  x\nb: ---x\n----\n---x: 1\n";
        assert_eq!(texts(s), [s]);
        assert_eq!(texts("---\r\na: 1\r\n---"), ["---\r\na: 1\r\n", "---"]);
        assert!(split("").is_empty());
        assert_eq!(texts("---\n---\n"), ["---\n", "---\n"]);
    }

    #[test]
    fn leading_comments_stop_at_the_first_yaml_line() {
        assert_eq!(leading_comments("# Source: x\n\n  # more\nkind: A\n# not this\n"), "# Source: x\n\n  # more\n");
        assert_eq!(leading_comments("kind: A\n"), "");
        assert_eq!(leading_comments("# only\n"), "# only\n");
    }
}
