//! `.prb` probe files (Phy/Klusta), parsed — never executed.
//!
//! A `.prb` is Python source defining `channel_groups = {group_id: {'channels': [...],
//! 'geometry': {channel: (x, y)}}}`. Executing it would run arbitrary code, so this reader
//! accepts only the literal subset such files are written in (numbers, strings, True/False/None,
//! lists, tuples, dicts, `name = literal` assignments, comments and imports) and reports
//! anything else with its line number and the fix.

use std::fmt::Display;
use std::path::Path;

use super::Probe;
use crate::error::{Error, Result};

/// Ends every "unsupported construct" message: why it is refused and what to do instead.
const FIX: &str = ".prb files are parsed, never executed: write the values out literally (e.g. `[0, 1, 2, 3]`), \
                   or convert the probe to .json with probeinterface";

/// The expected shape of `channel_groups`, quoted in error messages.
const SHAPE: &str = "channel_groups = {group_id: {'channels': [...], 'geometry': {channel: (x, y)}}}";

/// Statements starting with these words are code, not data.
const KEYWORDS: &[&str] = &["for", "while", "if", "def", "class", "with", "try", "del", "return", "global"];

/// Characters that, after a value, can only start an expression.
const OPERATORS: &str = "+-*/%@&|^~<>!";

/// Brackets nested deeper than this are refused, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

/// A parse error's detail, before the file path is attached.
type Parsed<T> = std::result::Result<T, String>;

/// Parses the `channel_groups = {...}` literal of a `.prb` file.
///
/// Groups are read in sorted key order and each group's channels in the order of its
/// `'channels'` list, as Kilosort4's `load_probe` does; a contact's shank is its group id.
pub fn parse(text: &str, path: &Path) -> Result<Probe> {
    let fail = |detail: String| Error::probe_format(path, detail);
    let assignments = Parser { chars: text.chars().collect(), pos: 0, open: Vec::new() }.module().map_err(fail)?;
    // Python keeps the last assignment to a name.
    let Some((_, groups)) = assignments.iter().rev().find(|(name, _)| name == "channel_groups") else {
        return Err(fail(format!("no `channel_groups = {{...}}` assignment found; a .prb file must define {SHAPE}")));
    };
    let c = collect_columns(groups).map_err(fail)?;
    let n_chan = c.channel_map.len();
    Probe::new(&path.display().to_string(), c.channel_map, c.x, c.y, c.shank, n_chan)
}

/// A Python literal; tuples and lists are both `List`.
#[derive(Debug)]
enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

impl Literal {
    /// The value as a number (coordinates, numeric keys).
    fn number(&self) -> Option<f64> {
        match self {
            Literal::Int(i) => Some(*i as f64),
            Literal::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value stored under the string key `key`; the last duplicate wins, as in Python.
    fn get(&self, key: &str) -> Option<&Literal> {
        let Literal::Dict(entries) = self else { return None };
        entries.iter().rev().find(|(k, _)| matches!(k, Literal::Str(s) if s == key)).map(|(_, v)| v)
    }

    /// A short description for error messages.
    fn describe(&self) -> String {
        match self {
            Literal::Int(i) => format!("the integer {i}"),
            Literal::Float(f) => format!("the number {f}"),
            Literal::Str(s) => format!("the string '{s}'"),
            Literal::Bool(b) => (if *b { "True" } else { "False" }).into(),
            Literal::None => "None".into(),
            Literal::List(items) => format!("a list/tuple of {} items", items.len()),
            Literal::Dict(_) => "a dict".into(),
        }
    }
}

/// Recursive-descent parser reading tokens (names, numbers, strings, punctuation) straight
/// from the characters, so every error knows its position.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Positions of the brackets still open; inside brackets newlines are whitespace, as in Python.
    open: Vec<usize>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// The 1-based line of character position `pos`.
    fn line(&self, pos: usize) -> usize {
        1 + self.chars.iter().take(pos).filter(|&&c| c == '\n').count()
    }

    /// An error at character position `pos`.
    fn fail<T>(&self, pos: usize, detail: impl Display) -> Parsed<T> {
        Err(format!("line {}: {detail}", self.line(pos)))
    }

    /// Names what is at the current position, for "expected …, found …" messages.
    fn found(&self) -> String {
        match self.peek() {
            None if let Some(&open) = self.open.last() => {
                format!("the end of the file: the `{}` on line {} is never closed", self.chars[open], self.line(open))
            }
            None => "the end of the file".into(),
            Some('\n') => "the end of the line".into(),
            Some(c) if c.is_alphabetic() || c == '_' => format!("`{}`", self.word_ahead()),
            Some(c) => format!("`{c}`"),
        }
    }

    /// Skips spaces, comments and `\` line continuations, and newlines inside brackets.
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            // A `\` just before the newline joins the next line to this one.
            let continuation = c == '\\' && self.chars[self.pos + 1..].iter().find(|&&c| c != '\r') == Some(&'\n');
            if c == '#' || continuation {
                self.skip_line();
                self.pos += usize::from(continuation);
            } else if c.is_whitespace() && (c != '\n' || !self.open.is_empty()) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Moves to the end of the line (comments, imports).
    fn skip_line(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.pos += 1;
        }
    }

    /// The name at the current position (empty if none); dots are kept inside it so `np.arange`
    /// is reported whole.
    fn word_ahead(&self) -> String {
        let rest = self.chars.get(self.pos..).unwrap_or_default();
        if !rest.first().is_some_and(|c| c.is_alphabetic() || *c == '_') {
            return String::new();
        }
        rest.iter().take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '.').collect()
    }

    /// Reads the name at the current position.
    fn word(&mut self) -> String {
        let word = self.word_ahead();
        self.pos += word.chars().count();
        word
    }

    /// Reads every top-level statement, returning the `name = literal` assignments.
    fn module(&mut self) -> Parsed<Vec<(String, Literal)>> {
        let mut assignments = Vec::new();
        loop {
            self.skip();
            match self.peek() {
                None => return Ok(assignments),
                Some('\n') => self.pos += 1,
                Some(_) => assignments.extend(self.statement()?),
            }
        }
    }

    /// One top-level line: an import (ignored: the names it binds are never evaluated) or an assignment.
    fn statement(&mut self) -> Parsed<Option<(String, Literal)>> {
        let start = self.pos;
        let word = self.word();
        match word.as_str() {
            "" => self.fail(start, format!("expected `name = value`, found {}; {FIX}", self.found())),
            "import" | "from" => {
                self.skip_line();
                Ok(None)
            }
            w if KEYWORDS.contains(&w) => self.fail(start, format!("`{w}` statements are not supported; {FIX}")),
            _ => self.assignment(word, start).map(Some),
        }
    }

    /// Reads `= literal` and the end of the line after the name `name`.
    fn assignment(&mut self, name: String, start: usize) -> Parsed<(String, Literal)> {
        self.skip();
        if self.peek() == Some('(') {
            return self.fail(start, format!("`{name}(` is a function call; {FIX}"));
        }
        if self.peek() != Some('=') || name.contains('.') {
            let detail = format!("only `name = value` assignments are supported, found `{name}` then {}", self.found());
            return self.fail(start, format!("{detail}; {FIX}"));
        }
        self.pos += 1;
        let value = self.value()?;
        if self.peek().is_some_and(|c| c != '\n') {
            return self.fail(self.pos, format!("expected the end of the line, found {}", self.found()));
        }
        Ok((name, value))
    }

    /// Reads one literal, refusing an operator after it (arithmetic is never evaluated).
    fn value(&mut self) -> Parsed<Literal> {
        self.skip();
        let start = self.pos;
        let literal = match self.peek() {
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '-' | '+') => self.number()?,
            Some(quote @ ('\'' | '"')) => self.string(quote)?,
            Some('[') => Literal::List(self.sequence(']')?.0),
            Some('(') => self.tuple()?,
            Some('{') => self.dict()?,
            Some(c) if c.is_alphabetic() || c == '_' => self.name()?,
            _ => return self.fail(start, format!("expected a value, found {}", self.found())),
        };
        self.skip();
        match self.peek() {
            Some(op) if OPERATORS.contains(op) => {
                self.fail(self.pos, format!("`{op}` makes an arithmetic expression; {FIX}"))
            }
            _ => Ok(literal),
        }
    }

    /// An integer or float, with an optional sign (`12`, `-3`, `1_000`, `16.5`, `.5`, `1e-3`).
    fn number(&mut self) -> Parsed<Literal> {
        let start = self.pos;
        let negate = self.peek() == Some('-');
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
            self.skip();
        }
        let digits = self.pos;
        if !self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            return self.fail(start, format!("a sign before {} makes an expression; {FIX}", self.found()));
        }
        while let Some(c) = self.peek() {
            let exponent_sign = matches!(c, '+' | '-') && matches!(self.chars[self.pos - 1], 'e' | 'E');
            if !(c.is_alphanumeric() || c == '_' || c == '.' || exponent_sign) {
                break;
            }
            self.pos += 1;
        }
        let text: String = self.chars[digits..self.pos].iter().filter(|&&c| c != '_').collect();
        let literal = match text.bytes().all(|b| b.is_ascii_digit()) {
            true => text.parse().ok().map(|i: i64| Literal::Int(if negate { -i } else { i })),
            false => text.parse().ok().map(|f: f64| Literal::Float(if negate { -f } else { f })),
        };
        let bad = || format!("`{text}` is not a number this reader understands; write decimals such as 12, 16.5, 1e3");
        literal.map_or_else(|| self.fail(start, bad()), Ok)
    }

    /// A '...' or "..." string with the common backslash escapes.
    fn string(&mut self, quote: char) -> Parsed<Literal> {
        let start = self.pos;
        let mut value = String::new();
        self.pos += 1;
        loop {
            match self.peek() {
                None | Some('\n') => return self.fail(start, format!("string is not closed; add the missing {quote}")),
                Some(c) if c == quote => break,
                Some('\\') => {
                    value.push(match self.chars.get(self.pos + 1) {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        other => *other.unwrap_or(&'\\'),
                    });
                    self.pos += 2;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Ok(Literal::Str(value))
    }

    /// True/False/None; any other name would need evaluating.
    fn name(&mut self) -> Parsed<Literal> {
        let start = self.pos;
        let name = self.word();
        self.skip();
        match name.as_str() {
            "True" => Ok(Literal::Bool(true)),
            "False" => Ok(Literal::Bool(false)),
            "None" => Ok(Literal::None),
            _ if self.peek() == Some('(') && is_numpy_scalar(&name) => self.numpy_scalar(),
            _ if self.peek() == Some('(') => self.fail(start, format!("`{name}(` is a function call; {FIX}")),
            _ if self.word_ahead() == "for" => self.fail(start, format!("`{name} for` is a comprehension; {FIX}")),
            _ => self.fail(start, format!("`{name}` is a variable reference; {FIX}")),
        }
    }

    /// `np.int64(7)` as numpy ≥ 2 prints a scalar: a literal number in a cast, read as the number.
    fn numpy_scalar(&mut self) -> Parsed<Literal> {
        self.pos += 1; // the '('
        self.skip();
        let start = self.pos;
        let number = self.number()?;
        self.skip();
        if self.peek() != Some(')') {
            return self.fail(start, format!("a numpy scalar holds one literal number, found {}; {FIX}", self.found()));
        }
        self.pos += 1;
        Ok(number)
    }

    /// Reads `item, item, …` from the bracket at the current position to `close`, calling `item`
    /// for each; says whether a comma was seen (what makes `(x,)` a tuple).
    fn container(&mut self, close: char, mut item: impl FnMut(&mut Self) -> Parsed<()>) -> Parsed<bool> {
        if self.open.len() >= MAX_DEPTH {
            return self.fail(self.pos, format!("brackets are nested more than {MAX_DEPTH} deep"));
        }
        self.open.push(self.pos);
        self.pos += 1;
        let mut comma = false;
        loop {
            self.skip();
            if self.peek() == Some(close) {
                break;
            }
            item(self)?;
            match self.peek() {
                Some(c) if c == close => break,
                Some(',') => comma = true,
                Some(_) if self.word_ahead() == "for" => return self.fail(self.pos, format!("comprehensions: {FIX}")),
                _ => return self.fail(self.pos, format!("expected `,` or `{close}`, found {}", self.found())),
            }
            self.pos += 1;
        }
        self.pos += 1;
        self.open.pop();
        Ok(comma)
    }

    /// The values of a list or tuple, and whether a comma was seen.
    fn sequence(&mut self, close: char) -> Parsed<(Vec<Literal>, bool)> {
        let mut items = Vec::new();
        let comma = self.container(close, |p| p.value().map(|v| items.push(v)))?;
        Ok((items, comma))
    }

    /// `(a, b)` is a tuple, but `(a)` is just `a`, as in Python.
    fn tuple(&mut self) -> Parsed<Literal> {
        let (mut items, comma) = self.sequence(')')?;
        if items.len() == 1 && !comma {
            return Ok(items.remove(0));
        }
        Ok(Literal::List(items))
    }

    fn dict(&mut self) -> Parsed<Literal> {
        let mut entries = Vec::new();
        self.container('}', |p| {
            let key = p.value()?;
            if p.peek() != Some(':') {
                return p.fail(p.pos, format!("expected `:` after a dict key, found {}", p.found()));
            }
            p.pos += 1;
            p.value().map(|v| entries.push((key, v)))
        })?;
        Ok(Literal::Dict(entries))
    }
}

/// The per-contact columns of the probe, in Kilosort4's order.
#[derive(Default)]
struct Columns {
    channel_map: Vec<u32>,
    x: Vec<f32>,
    y: Vec<f32>,
    shank: Vec<f32>,
}

/// Flattens `channel_groups` into columns, groups in sorted key order.
fn collect_columns(groups: &Literal) -> Parsed<Columns> {
    let Literal::Dict(entries) = groups else {
        return Err(format!("`channel_groups` must be a dict, found {}; write {SHAPE}", groups.describe()));
    };
    let mut columns = Columns::default();
    for (label, shank, group) in sorted_groups(entries)? {
        add_group(&mut columns, &label, shank, group)?;
    }
    Ok(columns)
}

/// Orders the groups as Kilosort4 does (numerically if every key is a number, else as strings)
/// and gives each its shank id: a label, the shank id and the group.
fn sorted_groups(entries: &[(Literal, Literal)]) -> Parsed<Vec<(String, f32, &Literal)>> {
    let mut keyed = Vec::new();
    for (key, group) in entries {
        let label = match key {
            Literal::Str(s) => s.clone(),
            Literal::Int(_) | Literal::Float(_) => key.number().unwrap_or_default().to_string(),
            other => return Err(format!("channel_groups keys must be numbers or strings, found {}", other.describe())),
        };
        keyed.push((key.number(), label, group));
    }
    if keyed.iter().all(|(number, _, _)| number.is_some()) {
        keyed.sort_by(|a, b| a.0.unwrap_or_default().total_cmp(&b.0.unwrap_or_default()));
    } else {
        keyed.sort_by(|a, b| a.1.cmp(&b.1));
    }
    if let Some(pair) = keyed.windows(2).find(|pair| pair[0].1 == pair[1].1) {
        return Err(format!("channel_groups has group {} twice; give each group its own key", pair[0].1));
    }
    let ordered = keyed.into_iter().enumerate().map(|(index, (number, label, group))| {
        // A string key such as '1' still names shank 1; other strings get their sorted position.
        let parsed = label.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let id = number.or(parsed).unwrap_or(index as f64);
        (label, id as f32, group)
    });
    Ok(ordered.collect())
}

/// Appends one group's contacts, in the order of its 'channels' list.
fn add_group(columns: &mut Columns, label: &str, shank: f32, group: &Literal) -> Parsed<()> {
    if !matches!(group, Literal::Dict(_)) {
        return Err(format!("group {label} must be a dict, found {}; write {SHAPE}", group.describe()));
    }
    let field = |name: &str| group.get(name).ok_or_else(|| format!("group {label} has no '{name}'; write {SHAPE}"));
    let Literal::List(channels) = field("channels")? else {
        return Err(format!("group {label}: 'channels' must be a list of channel numbers"));
    };
    let Literal::Dict(geometry) = field("geometry")? else {
        return Err(format!("group {label}: 'geometry' must be a dict {{channel: (x, y)}}"));
    };
    for item in channels {
        let channel = channel_number(item, label)?;
        let (x, y) = position(geometry, channel, label)?;
        columns.channel_map.push(channel);
        columns.x.push(x);
        columns.y.push(y);
        columns.shank.push(shank);
    }
    Ok(())
}

/// A 'channels' entry as a binary-file row.
fn channel_number(item: &Literal, label: &str) -> Parsed<u32> {
    match item {
        Literal::Int(c) if *c < 0 => {
            Err(format!("group {label}: channel {c} is negative; channels are 0-based file rows"))
        }
        Literal::Int(c) => u32::try_from(*c).map_err(|_| format!("group {label}: channel {c} is too large")),
        other => Err(format!("group {label}: 'channels' entries must be integers, found {}", other.describe())),
    }
}

/// The (x, y) of `channel` in a group's geometry.
fn position(geometry: &[(Literal, Literal)], channel: u32, label: &str) -> Parsed<(f32, f32)> {
    // Python finds `1` under the key `1.0` too, so compare as numbers; the last duplicate wins.
    let entry = geometry.iter().rev().find(|(key, _)| key.number() == Some(f64::from(channel)));
    let Some((_, value)) = entry else {
        return Err(format!(
            "group {label}: channel {channel} is listed in 'channels' but has no entry in 'geometry'; \
             add `{channel}: (x, y)` to that group's geometry"
        ));
    };
    if let Literal::List(pair) = value
        && let [x, y] = pair.as_slice()
        && let (Some(x), Some(y)) = (x.number(), y.number())
    {
        return Ok((x as f32, y as f32));
    }
    Err(format!(
        "group {label}: geometry of channel {channel} must be an (x, y) pair of numbers, found {}",
        value.describe()
    ))
}

/// numpy scalar types whose printed form (`np.float64(16.0)`) is a plain number in disguise.
fn is_numpy_scalar(name: &str) -> bool {
    let Some(ty) = name.strip_prefix("np.").or_else(|| name.strip_prefix("numpy.")) else { return false };
    matches!(
        ty,
        "int8" | "int16" | "int32" | "int64" | "uint8" | "uint16" | "uint32" | "uint64" | "float32" | "float64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Probe> {
        parse(text, Path::new("test.prb"))
    }

    fn error_of(text: &str) -> String {
        match load(text) {
            Ok(probe) => panic!("expected an error, got {probe:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn two_groups_with_comments_tuples_lists_and_trailing_commas() {
        let text = "# A two-shank probe\nimport numpy as np\ntotal_nb_channels = 6\nradius = 100.0  # um\n\n\
            channel_groups = {\n    # shank 0\n    0: {'channels': [2, 0, 1],\n        'geometry': {0: (0, 0), 1: [0, 20],\n\
            2: (16.5, -4e1),},  # mixed\n        'graph': [(0, 1), (1, 2)], 'label': \"shank0\",\n    },\n\
            1: {\"channels\": (5, 3,), \"geometry\": {3: (200, 0), 5: (216, 2.5e1)}, 'flag': True, 'x': None},\n}\n";
        let probe = load(text).unwrap();
        assert_eq!(probe.channel_map, vec![2, 0, 1, 5, 3]);
        assert_eq!(probe.x, vec![16.5, 0.0, 0.0, 216.0, 200.0]);
        assert_eq!(probe.y, vec![-40.0, 0.0, 20.0, 25.0, 0.0]);
        assert_eq!(probe.shank, vec![0.0, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(probe.n_chan, 5);
    }

    #[test]
    fn unsorted_group_keys_come_out_sorted() {
        let text = "channel_groups = {10: {'channels': [1], 'geometry': {1: (5, 6)}},\n\
                    2: {'channels': [0], 'geometry': {0: (1, 2)}}}";
        let probe = load(text).unwrap();
        assert_eq!(probe.channel_map, vec![0, 1]);
        assert_eq!(probe.x, vec![1.0, 5.0]);
        assert_eq!(probe.shank, vec![2.0, 10.0]);
    }

    #[test]
    fn string_group_keys_sort_as_strings() {
        let text = "channel_groups = {'b': {'channels': [1], 'geometry': {1: (0, 20)}},\n\
                    'a': {'channels': [0], 'geometry': {0: (0, 0)}},\n\
                    '7': {'channels': [2], 'geometry': {2: (9, 9)}}}";
        let probe = load(text).unwrap();
        assert_eq!(probe.channel_map, vec![2, 0, 1]);
        // '7' is a number; 'a' and 'b' take their sorted positions.
        assert_eq!(probe.shank, vec![7.0, 1.0, 2.0]);
    }

    #[test]
    fn function_call_is_refused_with_its_line() {
        let text = "import numpy as np\n\nchannel_groups = {0: {'channels': np.arange(4), 'geometry': {}}}";
        let message = error_of(text);
        assert!(message.contains("line 3") && message.contains("`np.arange(` is a function call"), "{message}");
        assert!(message.contains("never executed") && message.contains("probeinterface"), "{message}");
    }

    #[test]
    fn arithmetic_comprehension_and_loops_are_refused() {
        let arithmetic = error_of("channel_groups = {0: {'channels': [0],\n'geometry': {0: (0, 2*20)}}}");
        assert!(arithmetic.contains("line 2") && arithmetic.contains("arithmetic"), "{arithmetic}");
        let comprehension = error_of("channel_groups = {0: {'channels': [c for c in x]}}");
        assert!(comprehension.contains("comprehension"), "{comprehension}");
        let variable = error_of("n = 4\nchannel_groups = {0: {'channels': n}}");
        assert!(variable.contains("line 2") && variable.contains("`n` is a variable reference"), "{variable}");
        let for_loop = error_of("geometry = {}\nfor i in [0, 1]:\n    geometry[i] = (0, i)");
        assert!(for_loop.contains("line 2") && for_loop.contains("`for` statements"), "{for_loop}");
    }

    #[test]
    fn missing_channel_groups_is_an_error() {
        let message = error_of("# nothing here\ntotal_nb_channels = 4\n");
        assert!(message.contains("channel_groups"), "{message}");
    }

    #[test]
    fn channel_without_geometry_is_named() {
        let message = error_of("channel_groups = {3: {'channels': [0, 7], 'geometry': {0: (0, 0)}}}");
        assert!(message.contains("channel 7") && message.contains("group 3"), "{message}");
        let negative = error_of("channel_groups = {0: {'channels': [-1], 'geometry': {-1: (0, 0)}}}");
        assert!(negative.contains("negative"), "{negative}");
        let bad_pair = error_of("channel_groups = {0: {'channels': [0], 'geometry': {0: (0, 1, 2)}}}");
        assert!(bad_pair.contains("(x, y) pair"), "{bad_pair}");
    }

    #[test]
    fn unterminated_bracket_and_string_are_errors() {
        let message = error_of("x = 1\nchannel_groups = {0: {'channels': [0, 1],\n'geometry': {0: (0, 0)}\n");
        assert!(message.contains("line 2") && message.contains("never closed"), "{message}");
        let string = error_of("channel_groups = {'a: 1}");
        assert!(string.contains("string is not closed"), "{string}");
        // Deep nesting is refused rather than overflowing the stack.
        let deep = format!("x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(error_of(&deep).contains("nested"));
    }
}
