//! Small numeric operations every classifier-like plugin needs. They work on
//! row-major batches: `values.len()` is a multiple of the row `width`.

/// Replaces each row of `values` with its softmax, in place. Stable for large
/// logits (the row maximum is subtracted first).
///
/// ```
/// let mut v = [1.0f32, 1.0, 0.0, 1000.0];
/// aimass_sdk::ops::softmax_rows(&mut v, 2);
/// assert_eq!(v, [0.5, 0.5, 0.0, 1.0]);
/// ```
pub fn softmax_rows(values: &mut [f32], width: usize) {
    if width == 0 {
        return;
    }
    for row in values.chunks_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// The index of the largest value (the first one on ties); `None` for an
/// empty slice. NaN never wins.
///
/// ```
/// assert_eq!(aimass_sdk::ops::argmax(&[0.1, 0.7, 0.7]), Some(1));
/// assert_eq!(aimass_sdk::ops::argmax(&[f32::NAN, 0.2]), Some(1));
/// ```
pub fn argmax(values: &[f32]) -> Option<usize> {
    // One pass, no allocation: a classifier head calls this once per row.
    let mut best: Option<(usize, f32)> = None;
    for (index, &value) in values.iter().enumerate() {
        // `total_cmp`, as `top_k` ranks: 0.0 beats -0.0.
        if !value.is_nan() && best.is_none_or(|(_, top)| value.total_cmp(&top).is_gt()) {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index)
}

/// `argmax` of each row.
pub fn argmax_rows(values: &[f32], width: usize) -> Vec<usize> {
    if width == 0 {
        return Vec::new();
    }
    values
        .chunks(width)
        .map(|row| argmax(row).unwrap_or(0))
        .collect()
}

/// The `k` largest values with their indices, largest first (earlier index
/// first on ties). NaN values are never returned.
///
/// ```
/// assert_eq!(aimass_sdk::ops::top_k(&[0.2, 0.5, 0.3], 2), vec![(1, 0.5), (2, 0.3)]);
/// ```
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = values
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut v = [1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0];
        softmax_rows(&mut v, 3);
        for row in v.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert!(row[2] > row[1] && row[1] > row[0]);
        }
    }

    #[test]
    fn argmax_agrees_with_top_k() {
        let cases: [&[f32]; 6] = [
            &[0.1, 0.7, 0.7],
            &[f32::NAN, 0.2, f32::NAN],
            &[f32::NAN],
            &[-0.0, 0.0],
            &[f32::NEG_INFINITY, f32::NEG_INFINITY],
            &[3.0, f32::INFINITY, f32::INFINITY, 1.0],
        ];
        for values in cases {
            let ranked = top_k(values, 1).first().map(|&(index, _)| index);
            assert_eq!(argmax(values), ranked, "{values:?}");
        }
    }

    #[test]
    fn argmax_rows_per_row() {
        assert_eq!(argmax_rows(&[0.0, 1.0, 5.0, 2.0], 2), vec![1, 0]);
        assert!(argmax_rows(&[1.0], 0).is_empty());
        assert_eq!(argmax(&[]), None);
    }
}
