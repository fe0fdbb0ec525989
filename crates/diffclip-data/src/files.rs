//! Opening input files safely: regular files only, reads bounded in size.
//!
//! Every file this crate reads (images, caption files, tar shards, JSON lists, class-name files)
//! goes through [`open_regular`], so a FIFO, a device such as `/dev/zero`, a socket or a
//! directory given where a file is expected is refused at once with an error naming what it is,
//! instead of blocking forever or reading without end.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use crate::DataError;

/// `text` with its control characters but newline and tab, and the bidirectional-text
/// controls, written as `\u{1b}` escapes, for messages that quote bytes from a file (a tar
/// member's name or header field, a caption): a crafted file must not send terminal escape
/// sequences to whoever reads the error, nor reorder what the line shows (U+202E).
///
/// ```
/// use diffclip_data::files::printable;
/// assert_eq!(printable("cksum \u{1b}[31m\u{7}"), "cksum \\u{1b}[31m\\u{7}");
/// assert_eq!(printable("gnp.\u{202e}exe"), "gnp.\\u{202e}exe");
/// assert_eq!(printable("two\nlines é"), "two\nlines é"); // borrowed, unchanged
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c))
}

/// The characters that reorder how a line is shown: embeddings, overrides, isolates and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{61c}')
}

/// [`printable`] for text shown on one line (a file name in a list of results, a label): newline
/// and tab are escaped too, so a crafted name cannot start a line of its own.
///
/// ```
/// use diffclip_data::files::printable_line;
/// assert_eq!(printable_line("a\nb.jpg"), "a\\u{a}b.jpg");
/// ```
pub fn printable_line(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| c.is_control() || is_bidi_control(c))
}

fn escape_controls(text: &str, escape: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(&escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match escape(c) {
            true => out.extend(c.escape_unicode()),
            false => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

// The one regular-file opener of the workspace (the model crate's checkpoints and configs go
// through it too).
pub use diffclip_files::{file_kind, open_regular, read_capped};

/// The positions `(first, again)` of the first path listed twice, if one is: a shard or an
/// image listed twice would be read, trained on or indexed twice. Paths compare as written
/// (`a/x.tar` and `./a/x.tar` differ), so the check costs no file-system call.
///
/// ```
/// use diffclip_data::files::first_repeat;
/// assert_eq!(first_repeat(&["a.tar", "b.tar", "a.tar"]), Some((0, 2)));
/// assert_eq!(first_repeat(&["a.tar", "b.tar"]), None);
/// ```
pub fn first_repeat<P: AsRef<Path>>(paths: &[P]) -> Option<(usize, usize)> {
    let mut seen = std::collections::HashMap::with_capacity(paths.len());
    paths.iter().enumerate().find_map(|(i, p)| seen.insert(p.as_ref(), i).map(|first| (first, i)))
}

/// [`std::fs::read_to_string`] for regular files only (see [`open_regular`]) of at most
/// `max_bytes`: a longer file is refused after reading `max_bytes + 1` of its bytes.
pub(crate) fn read_to_string(path: &Path, max_bytes: u64) -> io::Result<String> {
    let bytes = diffclip_files::read_regular_capped(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The entries of a one-entry-per-line text file (class names, prompt templates, queries):
/// each line trimmed, blank lines skipped, a leading UTF-8 BOM dropped. The file must be a
/// regular file (see [`open_regular`]); errors name it, and a bad line ([`TextLines`]) its
/// number too.
///
/// This and [`TextLines`] are the one line-list reader of the workspace: `diffclip-eval`'s
/// `--classnames` and `--templates` files, `train`'s `--templates`, `classnames.txt` of image
/// folders, and `search --queries`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("names.txt");
/// std::fs::write(&p, "\u{feff}small bird\r\n  house cat \n\n\ngood dog").unwrap();
/// let names = diffclip_data::files::read_lines(&p).unwrap();
/// assert_eq!(names, ["small bird", "house cat", "good dog"]);
/// assert!(diffclip_data::files::read_lines(dir.path()).unwrap_err().to_string().contains("directory"));
/// ```
pub fn read_lines(path: impl AsRef<Path>) -> Result<Vec<String>, DataError> {
    let path = path.as_ref();
    let file = open_regular(path).map_err(|e| DataError::io(path, e))?;
    TextLines::new(io::BufReader::new(file), path).collect()
}

/// Longest line [`TextLines`] accepts, in bytes, not counting its line ending: a guard against
/// reading a file without newlines, or a stream without end, as one line.
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// The entries of one-entry-per-line text from any reader, one at a time as they arrive (so
/// standard input can be answered line by line): each line trimmed, blank lines (white space
/// and control characters only: [`is_blank`](crate::tokenizer::is_blank)) skipped, a leading
/// UTF-8 BOM dropped. A line longer than [`MAX_LINE_BYTES`] or not UTF-8 is an error
/// naming the source and the line ([`DataError::Line`]); after a line too long or a read error
/// the iterator ends, after one not UTF-8 it goes on with the next line.
///
/// ```
/// use diffclip_data::files::TextLines;
/// let input = "a dog\n\n\u{1}\u{2}\n  a cat \r\n".as_bytes();
/// let lines: Vec<String> = TextLines::new(input, "standard input").collect::<Result<_, _>>().unwrap();
/// assert_eq!(lines, ["a dog", "a cat"]);
/// let mut lines = TextLines::new(&b"a dog\n\xff\na cat"[..], "standard input");
/// assert_eq!(lines.nth(1).unwrap().unwrap_err().to_string(), "standard input:2: not UTF-8");
/// assert_eq!(lines.next().unwrap().unwrap(), "a cat");
/// ```
///
/// Lines that name files keep their spaces ([`TextLines::keep_spaces`]): a file name may begin
/// or end with one.
///
/// ```
/// use diffclip_data::files::TextLines;
/// let input = " a.png\n  \nb.png \r\n".as_bytes();
/// let paths: Vec<String> = TextLines::new(input, "standard input").keep_spaces().collect::<Result<_, _>>().unwrap();
/// assert_eq!(paths, [" a.png", "b.png "]);
/// ```
pub struct TextLines<R> {
    input: R,
    source: PathBuf,
    line: u64,
    done: bool,
    trim: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> TextLines<R> {
    /// Lines of `input`; `source` (a file, or "standard input") names it in errors.
    pub fn new(input: R, source: impl Into<PathBuf>) -> Self {
        Self { input, source: source.into(), line: 0, done: false, trim: true, buf: Vec::new() }
    }

    /// Each line as it is, but for its line ending (`\n` or `\r\n`) and a leading BOM: for
    /// lines that name files. Blank lines (nothing but white space) are still skipped.
    pub fn keep_spaces(mut self) -> Self {
        self.trim = false;
        self
    }

    /// Whether reading has stopped (the input ended, or a line too long or a read error did
    /// it): the last error, if any, was the final item.
    pub fn ended(&self) -> bool {
        self.done
    }

    /// The 1-based line number of the last item returned (blank lines skipped count).
    ///
    /// ```
    /// let mut lines = diffclip_data::files::TextLines::new(&b"a\n\nb\n"[..], "standard input");
    /// lines.nth(1);
    /// assert_eq!(lines.line(), 3);
    /// ```
    pub fn line(&self) -> u64 {
        self.line
    }

    fn fail(&mut self, message: String) -> Option<Result<String, DataError>> {
        self.done = true;
        Some(Err(DataError::Line { path: self.source.clone(), line: self.line, message }))
    }
}

impl<R: BufRead> Iterator for TextLines<R> {
    type Item = Result<String, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            self.line += 1;
            // Two bytes past the limit hold a line of exactly the limit and its `\r\n`.
            match (&mut self.input).take(MAX_LINE_BYTES + 2).read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    let line = self.buf.strip_suffix(b"\n").map_or(&self.buf[..], |l| l.strip_suffix(b"\r").unwrap_or(l));
                    if line.len() as u64 > MAX_LINE_BYTES {
                        // The rest of the line may never end (`/dev/zero`): reading stops here.
                        return self.fail(format!("longer than {MAX_LINE_BYTES} bytes"));
                    }
                    let Ok(text) = std::str::from_utf8(line) else {
                        // The next line is still read: a caller may report this one and go on.
                        let message = "not UTF-8".to_string();
                        return Some(Err(DataError::Line { path: self.source.clone(), line: self.line, message }));
                    };
                    let text = if self.line == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
                    if !crate::tokenizer::is_blank(text) {
                        return Some(Ok(if self.trim { text.trim() } else { text }.to_string()));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(DataError::io(&self.source, e)));
                }
            }
        }
        None
    }
}
