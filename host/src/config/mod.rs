//! The operator's config file: parsing, and errors that point at the file,
//! the line and the key, and say what would fix them.

mod capture;
mod hierarchies;
mod limits;
mod types;
mod versions;

pub use capture::{CaptureConfig, MAX_FILE_BYTES};
pub use hierarchies::*;
pub use limits::check as check_limits;
pub use types::*;
pub use versions::{ROLLOUT_SUFFIX, Versions, check as check_versions, split_version};

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A config file read and parsed, with its text kept for line numbers.
#[derive(Debug)]
pub struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Its contents.
    pub config: Config,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one(ConfigError {
                file: path.display().to_string(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
                fix: None,
            })
        })?;
        Self::parse(path, text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<ConfigFile, ConfigErrors> {
        match toml::from_str::<Config>(&text) {
            Ok(mut config) => Ok(ConfigFile {
                config: {
                    for (model, rollout) in &mut config.rollouts {
                        rollout.key = format!("{model}{ROLLOUT_SUFFIX}");
                    }
                    config
                },
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => {
                let line = e.span().map(|span| line_of(&text, span.start));
                let mut error = ConfigError {
                    file: path.display().to_string(),
                    line,
                    key: String::new(),
                    message: e.message().trim_end().to_string(),
                    fix: None,
                };
                // toml's message for a missing or malformed value talks
                // about quoting; say which key's value is wrong instead.
                if let Some((key, value)) = e.span().and_then(|s| value_at(&text, s.start)) {
                    error.key = key;
                    if value.is_empty() {
                        error.message = "has no value".into();
                        error = error.fix(
                            "write a value after `=`: a number, \"text\", true or false, \
                             [a, list] or { a = table }",
                        );
                    }
                }
                if let Some(near) = did_you_mean(&error.message).map(str::to_string) {
                    error = error.fix(format!("did you mean `{near}`?"));
                }
                Err(ConfigErrors::one(error))
            }
        }
    }

    /// The folder relative paths in the file start from.
    pub fn dir(&self) -> &Path {
        // A bare file name's parent is the empty path, which is no folder
        // to run a command in.
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    /// `relative` resolved against the file's folder.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.dir().join(relative)
    }

    /// An error about `key`, written at `span`.
    pub fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.path.display().to_string(),
            line: (span != (0..0)).then(|| line_of(&self.text, span.start)),
            key: key.into(),
            message: message.into(),
            fix: None,
        }
    }

    /// The line a table header such as `[nodes.student]` is on (`name` ""
    /// for a top-level table such as `[engine]`).
    pub fn table_span(&self, section: &str, name: &str) -> Range<usize> {
        let (plain, quoted) = if name.is_empty() {
            (format!("[{section}]"), format!("[\"{section}\"]"))
        } else {
            (
                format!("[{section}.{name}]"),
                format!("[{section}.\"{name}\"]"),
            )
        };
        [plain, quoted]
            .iter()
            .find_map(|header| self.text.find(header.as_str()))
            .map_or(0..0, |at| at..at + 1)
    }
}

/// When byte `at` lies in the value of a `key = value` line: the key,
/// dotted under its table's header, and the value's text.
fn value_at(text: &str, at: usize) -> Option<(String, String)> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let end = text
        .get(at..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| at + i);
    let line = text.get(start..end)?;
    let equals = line.find('=')?;
    if at < start + equals {
        return None; // the key itself is wrong: toml's message says so
    }
    let key = line[..equals].trim();
    // A plain (dotted, maybe quoted) key; inside an inline table or array
    // the key in error is not the line's first, so say nothing.
    let plain = |c: char| c.is_alphanumeric() || "_-.\"' ".contains(c);
    if key.is_empty() || !key.chars().all(plain) {
        return None;
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        });
    let dotted = match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_string(),
    };
    let value = line[equals + 1..].split('#').next().unwrap_or("").trim();
    Some((dotted, value.to_string()))
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, e.g. `cascade.digits.stages[0].threshold`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What would fix it.
    pub fix: Option<String>,
}

impl ConfigError {
    /// Adds what would fix it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a config, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Just one error.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The JSON schema of the config file, generated from the types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// For serde's "unknown field `X`, expected one of `a`, `b`" (or "unknown
/// variant"), the expected name nearest `X` (`nodes` for `node`, `sequence`
/// for `sequences`), when one is near enough to be the one meant.
fn did_you_mean(message: &str) -> Option<&str> {
    let (unknown, expected) = message.split_once("`, expected ")?;
    let unknown = unknown.rsplit_once('`')?.1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (edit_distance(unknown, name), name))
        .filter(|&(distance, name)| distance <= 2.max(name.len() / 4))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_generated_from_the_types() {
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let properties = &schema["properties"];
        for section in [
            "plugins",
            "artifacts",
            "nodes",
            "sequence",
            "dag",
            "ensemble",
            "switch",
            "cascade",
            "splitter",
            "shadow",
        ] {
            assert!(properties.get(section).is_some(), "{section} missing");
        }
        assert!(
            schema["$defs"]["StageConfig"]["properties"]
                .get("threshold")
                .is_some()
        );
    }

    fn parse_error(text: &str) -> String {
        ConfigFile::parse(Path::new("x.toml"), text.to_string())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_key_without_a_value_is_named() {
        let err =
            parse_error("[plugins.hostile]\npath = \"h.wasm\"\nmemory_mb = \ntimeout_ms = 5\n");
        assert!(
            err.starts_with("x.toml:3: plugins.hostile.memory_mb: has no value; write a value"),
            "{err}"
        );
        let err = parse_error("[plugins.hostile]\npath = \"h.wasm\"\nmemory_mb = \"lots\"\n");
        assert!(
            err.starts_with("x.toml:3: plugins.hostile.memory_mb: "),
            "{err}"
        );
    }

    /// The parser and the static checks never panic on any text, and every
    /// refusal names the file and says what is wrong.
    fn parsed_or_explained(text: String) {
        match ConfigFile::parse(Path::new("x.toml"), text) {
            Ok(file) => {
                if let Err(errors) = crate::graph::check_references(&file) {
                    for e in errors.0 {
                        assert!(!e.message.is_empty() && e.file == "x.toml", "{e}");
                    }
                }
            }
            Err(errors) => {
                for e in errors.0 {
                    assert!(!e.message.is_empty() && e.file == "x.toml", "{e}");
                }
            }
        }
    }

    const EXAMPLE: &str = include_str!("../../../examples/digits/aimass.toml");

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            parsed_or_explained(text);
        }

        #[test]
        fn mutated_configs_never_panic(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(),
                 proptest::sample::select(vec!["=", "[", "]", "\"", "\n", "-1", "1e400", "{", ",", " ", "x", ""])),
                1..6,
            )
        ) {
            let mut text = EXAMPLE.to_string();
            for (at, insert) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                if insert.is_empty() {
                    // Delete a line's worth instead of inserting.
                    let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                    text.replace_range(i..end, "");
                } else {
                    text.insert_str(i, insert);
                }
            }
            parsed_or_explained(text);
        }
    }

    #[test]
    fn a_misspelt_key_or_section_gets_a_did_you_mean() {
        for (text, near) in [
            ("[sequences.a]\nsteps = []\n", "sequence"),
            ("[node.a]\nplugin = \"p\"\n", "nodes"),
            ("[nodes.a]\nplugn = \"p\"\n", "plugin"),
        ] {
            let Err(errors) = ConfigFile::parse(Path::new("x.toml"), text.into()) else {
                panic!("{text} parsed");
            };
            let shown = errors.to_string();
            assert!(
                shown.contains(&format!("did you mean `{near}`?")),
                "{shown}"
            );
        }
        let Err(errors) = ConfigFile::parse(Path::new("x.toml"), "[zzzzzz.a]\n".into()) else {
            panic!("parsed");
        };
        assert!(!errors.to_string().contains("did you mean"), "{errors}");
    }

    #[test]
    fn a_parse_error_names_the_file_and_line() {
        let err = parse_error("[nodes.a]\nplugin = \"p\"\n\n[nodes.b]\nplugn = \"p\"\n");
        assert!(err.starts_with("x.toml:5: unknown field `plugn`"), "{err}");
    }
}
