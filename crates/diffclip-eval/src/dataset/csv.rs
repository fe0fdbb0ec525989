//! A small RFC 4180 CSV reader (quoted fields, doubled quotes, newlines inside quotes) that
//! remembers the line each record starts on, for error messages.

use std::path::Path;

use crate::EvalError;

/// One record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Line number of the record's first character.
    pub line: usize,
    /// The fields, unquoted.
    pub fields: Vec<String>,
}

/// A CSV file: the header's column names and the records after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Csv {
    /// The file, for messages.
    pub path: std::path::PathBuf,
    /// Column names (trimmed, as written).
    pub header: Vec<String>,
    /// Data records; blank lines are skipped.
    pub records: Vec<Record>,
}

impl Csv {
    /// Read and parse `path`; the first record is the header.
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parse `text`; `path` labels errors.
    ///
    /// ```
    /// use diffclip_eval::dataset::Csv;
    /// let csv = Csv::parse("image,caption\na.png,\"a dog, \"\"happy\"\"\"\n", "x.csv".as_ref()).unwrap();
    /// assert_eq!(csv.records[0].fields, ["a.png", "a dog, \"happy\""]);
    /// assert!(Csv::parse("a,b\n\"open", "x.csv".as_ref()).is_err());
    /// ```
    pub fn parse(text: &str, path: &Path) -> Result<Self, EvalError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut records = parse_records(text, path)?;
        if records.is_empty() {
            return Err(EvalError::dataset(
                path,
                "empty CSV file (a header line is required)",
            ));
        }
        let header = records
            .remove(0)
            .fields
            .into_iter()
            .map(|h| h.trim().to_string())
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            header,
            records,
        })
    }

    /// Index of the column `name` (case-insensitive), or an error naming the file and header.
    pub fn column(&self, name: &str) -> Result<usize, EvalError> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                EvalError::format(
                    &self.path,
                    1,
                    format!("no column '{name}' in the header {:?}", self.header),
                )
            })
    }

    /// Field `col` of `record`, or an error naming the line.
    pub fn field<'r>(&self, record: &'r Record, col: usize) -> Result<&'r str, EvalError> {
        record.fields.get(col).map(String::as_str).ok_or_else(|| {
            EvalError::format(
                &self.path,
                record.line,
                format!(
                    "{} fields, expected {}",
                    record.fields.len(),
                    self.header.len()
                ),
            )
        })
    }
}

fn parse_records(text: &str, path: &Path) -> Result<Vec<Record>, EvalError> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut start_line = 1;
    let mut in_quotes = false;
    let mut quoted_field = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !quoted_field => {
                field.clear();
                in_quotes = true;
                quoted_field = true;
                any = true;
            }
            '"' => {
                return Err(EvalError::format(
                    path,
                    line,
                    "stray quote inside an unquoted field",
                ));
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_record(&mut records, &mut fields, &mut field, start_line, any);
                quoted_field = false;
                any = false;
                line += 1;
                start_line = line;
            }
            _ => {
                if quoted_field && !c.is_whitespace() {
                    return Err(EvalError::format(path, line, "text after a closing quote"));
                }
                if !quoted_field {
                    field.push(c);
                }
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(EvalError::format(
            path,
            start_line,
            "unterminated quoted field",
        ));
    }
    end_record(&mut records, &mut fields, &mut field, start_line, any);
    Ok(records)
}

fn end_record(
    records: &mut Vec<Record>,
    fields: &mut Vec<String>,
    field: &mut String,
    line: usize,
    any: bool,
) {
    if !any && field.trim().is_empty() && fields.is_empty() {
        field.clear();
        return; // blank line
    }
    fields.push(std::mem::take(field));
    records.push(Record {
        line,
        fields: std::mem::take(fields),
    });
}
