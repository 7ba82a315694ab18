//! Conversion between [`Value`] and the Rust types of setting fields.

use std::path::PathBuf;

use super::value::Value;
use crate::io::Dtype;

/// What kind of value a setting holds (drives validation, CLI help and the GUI form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Int,
    /// A real number (may be infinite).
    Float,
    /// true / false.
    Bool,
    /// A list of numbers.
    NumberList,
    /// Text (a dtype name, a probe name).
    Text,
    /// One path or a list of paths.
    Paths,
    /// A nested table (a probe dict).
    Table,
}

/// A Rust type that a setting field can have.
pub trait SettingType: Sized {
    /// The kind of value.
    const KIND: Kind;
    /// Whether `None`/`null` is allowed.
    const NULLABLE: bool = false;
    /// Converts a parsed value, or says what was expected.
    fn from_value(v: &Value) -> Result<Self, String>;
    /// Converts back for saving.
    fn to_value(&self) -> Value;
}

impl SettingType for f64 {
    const KIND: Kind = Kind::Float;
    fn from_value(v: &Value) -> Result<Self, String> {
        v.as_f64().ok_or_else(|| "expected a number (inf is written `inf` or `Infinity`)".into())
    }
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
}

/// Integers may arrive as floats (`30000.0`) from Python; accept those that are whole.
fn whole_number(v: &Value) -> Result<i64, String> {
    match *v {
        Value::Int(i) => Ok(i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err("expected a whole number".into()),
    }
}

macro_rules! unsigned_setting {
    ($($t:ty),*) => {$(
        impl SettingType for $t {
            const KIND: Kind = Kind::Int;
            fn from_value(v: &Value) -> Result<Self, String> {
                let i = whole_number(v)?;
                <$t>::try_from(i).map_err(|_| format!("expected a whole number ≥ 0, got {i}"))
            }
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
unsigned_setting!(usize, u64, u32);

impl SettingType for bool {
    const KIND: Kind = Kind::Bool;
    fn from_value(v: &Value) -> Result<Self, String> {
        match *v {
            Value::Bool(b) => Ok(b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            _ => Err("expected true or false".into()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl SettingType for [f64; 3] {
    const KIND: Kind = Kind::NumberList;
    fn from_value(v: &Value) -> Result<Self, String> {
        let expected = || "expected a list of 3 numbers, e.g. [0.5, 0.5, 0.5]".to_string();
        let Value::List(items) = v else { return Err(expected()) };
        let numbers: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
        numbers.and_then(|n| <[f64; 3]>::try_from(n).ok()).ok_or_else(expected)
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&x| Value::Float(x)).collect())
    }
}

impl SettingType for Vec<u32> {
    const KIND: Kind = Kind::NumberList;
    const NULLABLE: bool = true;
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => items.iter().map(u32::from_value).collect(),
            single => Ok(vec![u32::from_value(single)?]),
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&c| Value::Int(c.into())).collect())
    }
}

impl SettingType for String {
    const KIND: Kind = Kind::Text;
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err("expected text".into()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl SettingType for PathBuf {
    const KIND: Kind = Kind::Paths;
    fn from_value(v: &Value) -> Result<Self, String> {
        String::from_value(v).map(PathBuf::from).map_err(|_| "expected a path".into())
    }
    fn to_value(&self) -> Value {
        Value::Text(self.display().to_string())
    }
}

/// Kilosort4's `filename` is one path or a list of paths concatenated in time.
impl SettingType for Vec<PathBuf> {
    const KIND: Kind = Kind::Paths;
    const NULLABLE: bool = true;
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::List(items) => items.iter().map(PathBuf::from_value).collect(),
            single => Ok(vec![PathBuf::from_value(single)?]),
        }
    }
    fn to_value(&self) -> Value {
        match self.as_slice() {
            [one] => one.to_value(),
            many => Value::List(many.iter().map(PathBuf::to_value).collect()),
        }
    }
}

impl SettingType for Dtype {
    const KIND: Kind = Kind::Text;
    fn from_value(v: &Value) -> Result<Self, String> {
        let name = String::from_value(v)?;
        Dtype::from_name(&name).ok_or_else(|| format!("expected one of {}", Dtype::NAMES.join(", ")))
    }
    fn to_value(&self) -> Value {
        Value::Text(self.name().into())
    }
}

impl SettingType for Value {
    const KIND: Kind = Kind::Table;
    const NULLABLE: bool = true;
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl<T: SettingType> SettingType for Option<T> {
    const KIND: Kind = T::KIND;
    const NULLABLE: bool = true;
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some).map_err(|e| format!("{e}, or None")),
        }
    }
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}
