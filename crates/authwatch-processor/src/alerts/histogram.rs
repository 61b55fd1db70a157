//! Explicit-bucket histogram arithmetic for latency rules, as Prometheus' `histogram_quantile`
//! does it: bucket `i` counts the calls at or below `bounds[i]` and above `bounds[i - 1]`; the
//! last bucket (above the last bound) is `+Inf`.

/// The `q` quantile (0..1) of the calls counted in `counts` (one per bucket, `bounds.len() + 1`
/// of them), interpolated linearly inside its bucket; `None` without calls. A quantile in the
/// `+Inf` bucket is the last bound, as Prometheus answers it.
pub fn quantile(q: f64, bounds: &[f64], counts: &[f64]) -> Option<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q * total;
    let mut below = 0.0;
    for (i, c) in counts.iter().enumerate() {
        if below + c >= rank && *c > 0.0 {
            let Some(upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 { 0.0f64.min(*upper) } else { bounds[i - 1] };
            return Some(lower + (upper - lower) * ((rank - below) / c).clamp(0.0, 1.0));
        }
        below += c;
    }
    bounds.last().copied()
}

/// How many of the calls in `counts` took longer than `bound` seconds. Exact when `bound` is
/// one of `bounds`; otherwise the bucket holding it is split linearly, and the `+Inf` bucket
/// counts as slower.
pub fn slower_than(bound: f64, bounds: &[f64], counts: &[f64]) -> f64 {
    if counts.len() != bounds.len() + 1 {
        return 0.0;
    }
    let mut slow = 0.0;
    for (i, c) in counts.iter().enumerate() {
        let lower = if i == 0 { f64::NEG_INFINITY } else { bounds[i - 1] };
        let upper = bounds.get(i).copied().unwrap_or(f64::INFINITY);
        if lower >= bound {
            slow += c;
        } else if upper > bound {
            // The bucket holds the bound: the share of it above, linearly.
            let lower = if lower.is_finite() { lower } else { 0.0f64.min(upper) };
            if upper.is_finite() && upper > lower {
                slow += c * ((upper - bound) / (upper - lower)).clamp(0.0, 1.0);
            } else {
                slow += c;
            }
        }
    }
    slow
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: [f64; 4] = [0.1, 0.5, 1.0, 2.5];

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        // 10 calls: 5 at or below 0.1, 5 in (1, 2.5].
        let c = [5.0, 0.0, 0.0, 5.0, 0.0];
        assert_eq!(quantile(0.5, &B, &c), Some(0.1));
        let p90 = quantile(0.9, &B, &c).unwrap();
        assert!((p90 - 2.2).abs() < 1e-9, "{p90}");
        assert_eq!(quantile(0.5, &B, &[0.0; 5]), None);
        // In +Inf: the last bound.
        assert_eq!(quantile(0.99, &B, &[0.0, 0.0, 0.0, 0.0, 3.0]), Some(2.5));
        // Wrong shape: nothing.
        assert_eq!(quantile(0.5, &B, &[1.0]), None);
    }

    #[test]
    fn share_slower_than_a_bound() {
        let c = [5.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(slower_than(0.5, &B, &c), 9.0);
        assert_eq!(slower_than(2.5, &B, &c), 4.0);
        assert_eq!(slower_than(10.0, &B, &c), 4.0);
        // 0.75 halves the (0.5, 1] bucket.
        assert_eq!(slower_than(0.75, &B, &c), 8.0);
        assert_eq!(slower_than(0.0, &B, &c), 15.0);
    }
}
