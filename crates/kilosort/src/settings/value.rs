//! A format-neutral setting value, and its conversions from JSON, TOML and command-line text.
//!
//! Settings arrive as JSON written by Python (with bare `Infinity`/`NaN`, and `null` for None),
//! as TOML, or as command-line strings. Each is turned into [`Value`] first, so the typed
//! conversion into [`super::Settings`] fields is written once.

use std::fmt;

/// One setting's value, before it is converted to the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` / `None`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float, possibly infinite.
    Float(f64),
    /// A string.
    Text(String),
    /// A list.
    List(Vec<Value>),
    /// A nested table (only the GUI's `probe` dict uses one).
    Map(Vec<(String, Value)>),
}

impl Value {
    /// Numeric view of an integer or float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// Parses command-line text: `None`, `inf`, numbers, `true`/`false`, lists such as
    /// `[0.5, 0.5, 0.5]` or `0.5,0.5,0.5`; anything else is kept as text.
    pub fn parse_cli(text: &str) -> Value {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            return Value::List(split_items(inner).map(Value::parse_cli).collect());
        }
        if t.contains(',') {
            return Value::List(split_items(t).map(Value::parse_cli).collect());
        }
        parse_scalar(t)
    }
}

fn split_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_scalar(t: &str) -> Value {
    match t {
        "None" | "none" | "null" => return Value::Null,
        "true" | "True" => return Value::Bool(true),
        "false" | "False" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::Int(i);
    }
    if let Some(f) = parse_special_float(t).or_else(|| t.parse::<f64>().ok()) {
        return Value::Float(f);
    }
    Value::Text(t.to_string())
}

/// Python spells infinity `inf`/`Infinity`; accept both, any case, with a sign.
fn parse_special_float(t: &str) -> Option<f64> {
    let (sign, body) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => Some(sign * f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    }
}

impl fmt::Display for Value {
    /// Writes the value as JSON that Python's `json.loads` reads back (`Infinity`, `NaN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x.is_infinite() => f.write_str(if *x > 0.0 { "Infinity" } else { "-Infinity" }),
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 1e15 => write!(f, "{x:.1}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::List(items) => write_joined(f, "[", items.iter().map(|v| v.to_string()), "]"),
            Value::Map(entries) => write_joined(
                f,
                "{",
                entries.iter().map(|(k, v)| format!("{}: {v}", serde_json::Value::String(k.clone()))),
                "}",
            ),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    items: impl Iterator<Item = String>,
    close: &str,
) -> fmt::Result {
    f.write_str(open)?;
    f.write_str(&items.collect::<Vec<_>>().join(", "))?;
    f.write_str(close)
}

/// Parses a JSON object as Python's `json.dump` writes it, bare `Infinity`/`NaN` included.
pub fn parse_json_object(text: &str) -> Result<Vec<(String, Value)>, String> {
    let escaped = quote_python_specials(text);
    let parsed: serde_json::Value = serde_json::from_str(&escaped).map_err(|e| format!("invalid JSON: {e}"))?;
    match from_json(parsed) {
        Value::Map(entries) => Ok(entries),
        _ => Err("the top level must be a JSON object of setting names to values".into()),
    }
}

/// Marker put around Python's non-standard float tokens so serde_json can read them as strings.
const SPECIAL_MARK: &str = "\u{1}special:";

/// Rewrites bare `Infinity`, `-Infinity` and `NaN` (outside strings) as marked strings.
fn quote_python_specials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if c == '\\' {
                let escaped: String = rest.chars().take(2).collect();
                out.push_str(&escaped);
                rest = &rest[escaped.len()..];
                continue;
            }
            in_string = c != '"';
        } else if c == '"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t)) {
            out.push_str(&format!("\"\\u0001special:{token}\""));
            rest = &rest[token.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => match s.strip_prefix(SPECIAL_MARK) {
            Some(token) => Value::Float(parse_special_float(token).unwrap_or(f64::NAN)),
            None => Value::Text(s),
        },
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => Value::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// Parses a TOML document of settings (TOML has `inf`/`nan` natively).
pub fn parse_toml_table(text: &str) -> Result<Vec<(String, Value)>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("invalid TOML: {e}"))?;
    Ok(table.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
}

fn from_toml(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) if s == "None" => Value::Null,
        toml::Value::String(s) => Value::Text(s),
        toml::Value::Integer(i) => Value::Int(i),
        toml::Value::Float(f) => Value::Float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::Text(d.to_string()),
        toml::Value::Array(items) => Value::List(items.into_iter().map(from_toml).collect()),
        toml::Value::Table(t) => Value::Map(t.into_iter().map(|(k, v)| (k, from_toml(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_specials_become_floats_but_strings_are_untouched() {
        let entries =
            parse_json_object(r#"{"tmax": Infinity, "a": -Infinity, "b": NaN, "s": "Infinity \" NaN"}"#).unwrap();
        let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("tmax"), Value::Float(f64::INFINITY));
        assert_eq!(get("a"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(get("b"), Value::Float(x) if x.is_nan()));
        assert_eq!(get("s"), Value::Text("Infinity \" NaN".into()));
    }

    #[test]
    fn cli_text_parses_to_typed_values() {
        assert_eq!(Value::parse_cli("5"), Value::Int(5));
        assert_eq!(Value::parse_cli("0.5"), Value::Float(0.5));
        assert_eq!(Value::parse_cli("inf"), Value::Float(f64::INFINITY));
        assert_eq!(Value::parse_cli("None"), Value::Null);
        assert_eq!(Value::parse_cli("[1, 2]"), Value::List(vec![Value::Int(1), Value::Int(2)]));
        assert_eq!(Value::parse_cli("0.5,1"), Value::List(vec![Value::Float(0.5), Value::Int(1)]));
        assert_eq!(Value::parse_cli("int16"), Value::Text("int16".into()));
    }

    #[test]
    fn display_round_trips_through_the_json_parser() {
        let v = Value::Map(vec![
            ("x".into(), Value::Float(f64::INFINITY)),
            ("y".into(), Value::List(vec![Value::Float(0.5), Value::Int(3)])),
            ("z".into(), Value::Float(2.0)),
        ]);
        let back = parse_json_object(&v.to_string()).unwrap();
        assert_eq!(Value::Map(back), v);
    }

    #[test]
    fn toml_infinity_is_read() {
        let entries = parse_toml_table("tmax = inf\nnblocks = 5\n").unwrap();
        assert!(entries.contains(&("tmax".into(), Value::Float(f64::INFINITY))));
        assert!(entries.contains(&("nblocks".into(), Value::Int(5))));
    }
}
