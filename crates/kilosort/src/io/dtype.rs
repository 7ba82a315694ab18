//! Sample types of raw binary recordings.

/// The sample type of a binary recording (Kilosort4 supports these four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dtype {
    /// Signed 16-bit integers (SpikeGLX, Open Ephys, most acquisition systems).
    #[default]
    Int16,
    /// Unsigned 16-bit integers; centred on read by subtracting 2^15.
    Uint16,
    /// Signed 32-bit integers.
    Int32,
    /// 32-bit floats.
    Float32,
}

impl Dtype {
    /// The names accepted in settings and on the command line.
    pub const NAMES: &[&str] = &["int16", "uint16", "int32", "float32"];

    /// Parses a NumPy-style dtype name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "int16" | "i2" | "<i2" | "short" => Some(Dtype::Int16),
            "uint16" | "u2" | "<u2" => Some(Dtype::Uint16),
            "int32" | "i4" | "<i4" => Some(Dtype::Int32),
            "float32" | "f4" | "<f4" | "single" => Some(Dtype::Float32),
            _ => None,
        }
    }

    /// NumPy's name for it (as written in Phy's `params.py`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Int16 => "int16",
            Dtype::Uint16 => "uint16",
            Dtype::Int32 => "int32",
            Dtype::Float32 => "float32",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::Int16 | Dtype::Uint16 => 2,
            Dtype::Int32 | Dtype::Float32 => 4,
        }
    }

    /// Decodes one little-endian value to f32 (uint16 centred on zero, as Kilosort4 does).
    #[inline]
    pub fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            Dtype::Int16 => i16::from_le_bytes([bytes[0], bytes[1]]) as f32,
            Dtype::Uint16 => u16::from_le_bytes([bytes[0], bytes[1]]) as f32 - 32768.0,
            Dtype::Int32 => i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f32,
            Dtype::Float32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_dtype() {
        assert_eq!(Dtype::Int16.decode(&(-123i16).to_le_bytes()), -123.0);
        assert_eq!(Dtype::Uint16.decode(&40000u16.to_le_bytes()), 40000.0 - 32768.0);
        assert_eq!(Dtype::Int32.decode(&(-70000i32).to_le_bytes()), -70000.0);
        assert_eq!(Dtype::Float32.decode(&1.5f32.to_le_bytes()), 1.5);
        for name in Dtype::NAMES {
            assert_eq!(Dtype::from_name(name).unwrap().name(), *name);
        }
        assert_eq!(Dtype::from_name("int8"), None);
    }
}
