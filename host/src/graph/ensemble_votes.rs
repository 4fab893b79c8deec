//! An ensemble's arithmetic: majority votes and the mean's classifier
//! outputs.

use crate::tensor::{NamedTensor, Tensor};

/// Each row's most voted label (on a tie, the earliest member's) and the
/// share of members that chose it.
pub(super) fn tally(votes: &[Vec<i64>], rows: usize) -> (Vec<i64>, Vec<f32>) {
    let mut labels = Vec::with_capacity(rows);
    let mut agreement = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut best = (0usize, 0i64);
        for ballot in votes {
            let count = votes.iter().filter(|v| v[row] == ballot[row]).count();
            if count > best.0 {
                best = (count, ballot[row]);
            }
        }
        labels.push(best.1);
        agreement.push(best.0 as f32 / votes.len().max(1) as f32);
    }
    (labels, agreement)
}

/// `probabilities`, `label` (argmax, the first on ties) and `confidence`
/// (max) for one batch.
pub(super) fn classifier_outputs(
    dims: Vec<u32>,
    probabilities: Vec<f32>,
) -> Result<Vec<NamedTensor>, crate::tensor::TensorError> {
    let classes = dims.get(1).copied().unwrap_or(1).max(1) as usize;
    let rows = probabilities.len() / classes;
    let mut labels = Vec::with_capacity(rows);
    let mut confidence = Vec::with_capacity(rows);
    for row in probabilities.chunks_exact(classes) {
        let mut best = 0;
        for (i, v) in row.iter().enumerate() {
            if *v > row[best] {
                best = i;
            }
        }
        labels.push(best as i64);
        confidence.push(row[best]);
    }
    Ok(vec![
        (
            "label".into(),
            Tensor::from_i64(vec![rows as u32], &labels)?,
        ),
        (
            "probabilities".into(),
            Tensor::from_f32(dims, &probabilities)?,
        ),
        (
            "confidence".into(),
            Tensor::from_f32(vec![rows as u32], &confidence)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_go_to_the_majority_then_the_earliest_member() {
        let (labels, agreement) = tally(&[vec![1, 2], vec![1, 3], vec![4, 5]], 2);
        assert_eq!(labels, [1, 2]);
        assert_eq!(agreement, [2.0 / 3.0, 1.0 / 3.0]);
    }

    #[test]
    fn the_mean_answers_like_a_classifier() {
        let out = classifier_outputs(vec![2, 3], vec![0.1, 0.7, 0.2, 0.5, 0.5, 0.0]).unwrap();
        assert_eq!(out[0].1.i64s().unwrap(), [1, 0]);
        assert_eq!(out[2].1.f32s().unwrap(), [0.7, 0.5]);
    }
}
