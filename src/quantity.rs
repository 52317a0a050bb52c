//! Kubernetes resource quantities (`500m`, `1Gi`, `1e3`) as exact decimals, to compare them by
//! value the way the API server does.

use std::cmp::Ordering;

/// An exact decimal value `n * 10^scale` with no trailing zeros in `n`.
pub fn parse(s: &str) -> Option<(i128, i32)> {
    let s = s.trim();
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    let (neg, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty()) || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut n: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        n = n.checked_mul(10)?.checked_add(i128::from(c.to_digit(10)?))?;
    }
    let mut scale = -i32::try_from(frac.len()).ok()?;
    let (pow2, pow10): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        e if e.starts_with(['e', 'E']) => (0, e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    n = n.checked_mul(1i128.checked_shl(pow2)?)?;
    scale = scale.checked_add(pow10)?;
    if neg {
        n = -n;
    }
    while n != 0 && n % 10 == 0 {
        n /= 10;
        scale += 1;
    }
    if n == 0 {
        scale = 0;
    }
    Some((n, scale))
}

/// `a` against `b` by value; None when either is not a quantity (or too large to compare).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let ((na, sa), (nb, sb)) = (parse(a)?, parse(b)?);
    // Bring both to the smaller scale: n * 10^(s - min).
    let min = sa.min(sb);
    let widen = |n: i128, s: i32| -> Option<i128> { n.checked_mul(10i128.checked_pow(u32::try_from(s - min).ok()?)?) };
    Some(widen(na, sa)?.cmp(&widen(nb, sb)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_by_value_across_suffixes() {
        assert_eq!(compare("1Gi", "1024Mi"), Some(Ordering::Equal));
        assert_eq!(compare("500m", "0.5"), Some(Ordering::Equal));
        assert_eq!(compare("10Gi", "100Gi"), Some(Ordering::Less));
        assert_eq!(compare("1Ti", "100Gi"), Some(Ordering::Greater));
        assert_eq!(compare("1G", "1Gi"), Some(Ordering::Less));
        assert_eq!(compare("ten", "1Gi"), None);
    }
}
