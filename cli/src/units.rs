//! Figures as a person reads them, in the style of heaptide's text report.

use std::fmt;

/// A byte count with a binary unit: `512 KiB`, `4.0 MiB`, `17 B`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        let text = if unit == 0 {
            format!("{} B", self.0)
        } else if value.fract() == 0.0 {
            format!("{value:.0} {}", UNITS[unit])
        } else {
            format!("{value:.1} {}", UNITS[unit])
        };
        f.pad(&text)
    }
}

/// A change in bytes with its sign: `+4.0 MiB`, `-512 KiB`, `0 B`.
pub struct SignedBytes(pub i64);

impl fmt::Display for SignedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.0 {
            0 => "",
            d if d < 0 => "-",
            _ => "+",
        };
        f.pad(&format!("{sign}{}", Bytes(self.0.unsigned_abs())))
    }
}

/// A count with thousands separators: `1,234,567`.
pub struct Count(pub u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut text = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                text.push(',');
            }
            text.push(c);
        }
        f.pad(&text)
    }
}

/// A change in a count with its sign: `+12`, `-1,024`, `0`.
pub struct SignedCount(pub i64);

impl fmt::Display for SignedCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.0 {
            0 => "",
            d if d < 0 => "-",
            _ => "+",
        };
        f.pad(&format!("{sign}{}", Count(self.0.unsigned_abs())))
    }
}

/// Seconds as a person reads them: `80 s`, `1.5 s`, `250 ms`.
pub struct Seconds(pub f64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let text = if s >= 10.0 {
            format!("{s:.0} s")
        } else if s >= 1.0 {
            format!("{s:.1} s")
        } else {
            format!("{:.0} ms", s * 1e3)
        };
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(Bytes(17).to_string(), "17 B");
        assert_eq!(Bytes(512 << 10).to_string(), "512 KiB");
        assert_eq!(Bytes(4 << 20).to_string(), "4 MiB");
        assert_eq!(Bytes(1536 << 10).to_string(), "1.5 MiB");
        assert_eq!(format!("{:>9}", Bytes(1024)), "    1 KiB");
        assert_eq!(SignedBytes(-(256 << 10)).to_string(), "-256 KiB");
        assert_eq!(SignedBytes(3).to_string(), "+3 B");
        assert_eq!(SignedBytes(0).to_string(), "0 B");
        assert_eq!(Count(0).to_string(), "0");
        assert_eq!(Count(999).to_string(), "999");
        assert_eq!(Count(1000).to_string(), "1,000");
        assert_eq!(Count(1_234_567).to_string(), "1,234,567");
        assert_eq!(SignedCount(-1024).to_string(), "-1,024");
        assert_eq!(SignedCount(12).to_string(), "+12");
        assert_eq!(Seconds(80.4).to_string(), "80 s");
        assert_eq!(Seconds(1.5).to_string(), "1.5 s");
        assert_eq!(Seconds(0.25).to_string(), "250 ms");
    }
}
