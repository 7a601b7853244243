//! Sizes as operators write them ("2GiB", "512MiB", 1073741824).

use thiserror::Error;

/// Bytes in one MiB.
pub const MIB: u64 = 1024 * 1024;

/// Why a size string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// Nothing was given.
    #[error("empty size")]
    Empty,
    /// The number part is not a whole non-negative number.
    #[error("invalid number {0:?} in size")]
    Number(String),
    /// The unit is not one castellan knows.
    #[error("unknown unit {unit:?} (use B, KiB, MiB, GiB or TiB; K, M, G and T mean the same)")]
    Unit {
        /// The unit as written.
        unit: String,
    },
    /// A decimal unit such as GB, which is ambiguous for guest memory.
    #[error(
        "ambiguous unit {unit:?}: guest sizes are binary, write {suggest} (or a number of bytes)"
    )]
    Decimal {
        /// The unit as written.
        unit: String,
        /// The binary unit meant in Proxmox VE.
        suggest: &'static str,
    },
    /// A negative size.
    #[error("size cannot be negative")]
    Negative,
    /// The value does not fit in 64 bits of bytes.
    #[error("size overflows 64-bit bytes")]
    Overflow,
}

/// Parses a size such as `"2GiB"`, `"512 MiB"`, `"1.5G"` or `"1073741824"` into bytes.
/// Binary units only, as Proxmox VE uses them (`K`, `M`, `G`, `T` are powers of 1024).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    if s.starts_with('-') {
        return Err(SizeError::Negative);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let factor: u64 = match unit {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" | "Ki" => 1 << 10,
        "M" | "m" | "MiB" | "Mi" => 1 << 20,
        "G" | "g" | "GiB" | "Gi" => 1 << 30,
        "T" | "t" | "TiB" | "Ti" => 1 << 40,
        "KB" | "kB" => return Err(decimal(unit, "KiB")),
        "MB" => return Err(decimal(unit, "MiB")),
        "GB" => return Err(decimal(unit, "GiB")),
        "TB" => return Err(decimal(unit, "TiB")),
        other => {
            return Err(SizeError::Unit {
                unit: other.to_owned(),
            });
        }
    };
    if num.is_empty() || num.matches('.').count() > 1 || num.starts_with('.') {
        return Err(SizeError::Number(num.to_owned()));
    }
    match num.split_once('.') {
        None => {
            let n: u64 = num.parse().map_err(|_| SizeError::Number(num.to_owned()))?;
            n.checked_mul(factor).ok_or(SizeError::Overflow)
        }
        Some((whole, frac)) => {
            // Fractions are exact in binary units up to the factor's precision; compute in
            // integers so "1.5G" is exactly 1536 MiB.
            let whole: u64 = whole
                .parse()
                .map_err(|_| SizeError::Number(num.to_owned()))?;
            if frac.is_empty() || frac.len() > 9 {
                return Err(SizeError::Number(num.to_owned()));
            }
            let frac_n: u128 = frac
                .parse()
                .map_err(|_| SizeError::Number(num.to_owned()))?;
            let scale = 10u128.pow(frac.len() as u32);
            let frac_bytes = frac_n * u128::from(factor) / scale;
            let total = u128::from(whole) * u128::from(factor) + frac_bytes;
            u64::try_from(total).map_err(|_| SizeError::Overflow)
        }
    }
}

fn decimal(unit: &str, suggest: &'static str) -> SizeError {
    SizeError::Decimal {
        unit: unit.to_owned(),
        suggest,
    }
}

/// Formats bytes for people: the largest binary unit that divides exactly, else MiB with
/// a fraction.
pub fn format_size(bytes: u64) -> String {
    for (unit, f) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)] {
        if bytes >= f && bytes.is_multiple_of(f) {
            return format!("{}{unit}", bytes / f);
        }
    }
    if bytes.is_multiple_of(1024) && bytes > 0 {
        return format!("{}KiB", bytes / 1024);
    }
    format!("{bytes}B")
}

/// Writes bytes as Proxmox VE writes a disk size (`size=` in a configuration, and what
/// its resize call takes): the largest of K, M, G and T that divides exactly, or plain
/// bytes. `1024G` is written `1T`, so sizes compare as numbers, never as text.
pub fn pve_size(bytes: u64) -> String {
    let mut n = bytes;
    for unit in ["K", "M", "G", "T"] {
        if n == 0 || !n.is_multiple_of(1024) {
            return match unit {
                "K" => n.to_string(),
                _ => format!("{n}{}", prev_unit(unit)),
            };
        }
        n /= 1024;
    }
    format!("{n}T")
}

fn prev_unit(unit: &str) -> &'static str {
    match unit {
        "M" => "K",
        "G" => "M",
        _ => "G",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok = [
            ("1073741824", 1 << 30),
            ("2GiB", 2 << 30),
            ("2G", 2 << 30),
            ("512MiB", 512 << 20),
            ("512 MiB", 512 << 20),
            ("1.5G", 1536 << 20),
            ("1T", 1 << 40),
            ("64KiB", 64 << 10),
            ("0", 0),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
        let bad = [
            ("", "empty size"),
            ("GiB", "invalid number \"\" in size"),
            ("2 parsecs", "unknown unit \"parsecs\""),
            (
                "2GB",
                "ambiguous unit \"GB\": guest sizes are binary, write GiB",
            ),
            ("-1", "size cannot be negative"),
            ("1.2.3G", "invalid number \"1.2.3\" in size"),
            ("99999999999T", "size overflows 64-bit bytes"),
        ];
        for (input, want) in bad {
            let err = parse_size(input).expect_err(input).to_string();
            assert!(err.starts_with(want), "{input}: {err}");
        }
    }

    #[test]
    fn pve_sizes_use_the_largest_exact_unit() {
        assert_eq!(pve_size(1 << 40), "1T");
        assert_eq!(pve_size(1024 << 30), "1T");
        assert_eq!(pve_size(1536 << 20), "1536M");
        assert_eq!(pve_size(16 << 30), "16G");
        assert_eq!(pve_size(3 << 10), "3K");
        assert_eq!(pve_size(1000), "1000");
        assert_eq!(pve_size(5 << 40), "5T");
        assert_eq!(pve_size(2048 << 40), "2048T");
        for b in [1u64 << 30, 1536 << 20, 7 << 40, 12345 << 10] {
            assert_eq!(parse_size(&pve_size(b)), Ok(b), "{b}");
        }
    }

    #[test]
    fn format() {
        assert_eq!(format_size(2 << 30), "2GiB");
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(1 << 40), "1TiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
