//! Just enough of Kubernetes `resource.Quantity` to compare sizes (never-shrink checks).

/// Value of a quantity in its base unit (bytes for storage), or `None` when it is not a
/// quantity. f64 is exact for every size a volume can have (< 2^53 bytes = 8 PiB).
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num == "." {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let v = value * multiplier;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_binary_and_decimal_suffixes() {
        assert_eq!(parse("10Gi"), Some(10.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse("1536Mi"), Some(1536.0 * 1024.0 * 1024.0));
        assert_eq!(parse("5G"), Some(5e9));
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("2"), Some(2.0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Gi", "10GB", "ten", "1.2.3Gi", "."] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn orders_mixed_units() {
        assert!(parse("1Gi").unwrap() > parse("1G").unwrap());
        assert!(parse("1024Mi").unwrap() == parse("1Gi").unwrap());
    }
}
