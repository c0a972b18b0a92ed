//! A YAML stream cut into its documents, each with its exact text: a document starts at a line that begins
//! with `---` at column 0, followed by the end of the line or a blank (`--- # comment`), which YAML reserves
//! for that (no scalar may hold such a line). Joining the chunks gives back the input byte for byte.

/// One document of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Its whole text: the `---` line (if any) and the lines up to the next one.
    pub text: &'a str,
    /// The `---` line that opens it, with its line break; empty for text before the first one.
    pub separator: &'a str,
    /// The text after the separator line.
    pub body: &'a str,
    /// 1-based line of the input where the chunk starts.
    pub line: usize,
}

/// Whether a line (with or without its line break) opens a document.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// The documents of `text`, in order. Text before the first `---` is a chunk of its own when it is not
/// empty; so is each `---` line with what follows it.
pub fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    // (start offset, separator length, line) of the chunk being read.
    let mut start = (0usize, 0usize, 1usize);
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_separator(line) {
            push(&mut chunks, text, start, offset);
            start = (offset, line.len(), i + 1);
        }
        offset += line.len();
    }
    push(&mut chunks, text, start, text.len());
    chunks
}

fn push<'a>(chunks: &mut Vec<Chunk<'a>>, text: &'a str, (start, separator, line): (usize, usize, usize), end: usize) {
    let whole = text.get(start..end).unwrap_or_default();
    if whole.is_empty() {
        return;
    }
    let (separator, body) = whole.split_at(separator.min(whole.len()));
    chunks.push(Chunk { text: whole, separator, body, line });
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
        assert_eq!((c.separator, c.body), ("--- # two\n", "c: 3\n"));
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
