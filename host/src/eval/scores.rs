//! Classification scores from labels and probabilities: the confusion
//! matrix, per-class and macro precision/recall/F1, and one-vs-rest ROC AUC.

/// Scores over a labelled set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scores {
    /// Samples scored.
    pub samples: usize,
    /// Fraction labelled right.
    pub accuracy: f64,
    /// Mean over the classes present (in the labels or the predictions) of
    /// each class's precision, as scikit-learn's macro average: a class
    /// absent from both would count as 0 and say nothing of the model.
    pub macro_precision: f64,
    /// Mean over classes of each class's recall.
    pub macro_recall: f64,
    /// Mean over classes of each class's F1.
    pub macro_f1: f64,
    /// Mean over classes of the one-vs-rest ROC AUC (classes with both
    /// positives and negatives only); `None` without probabilities or
    /// without two classes among the labels.
    pub macro_roc_auc: Option<f64>,
    /// Why there is no ROC AUC, when there is none.
    pub roc_auc_missing: Option<String>,
    /// Per class, in class order.
    pub classes: Vec<ClassScores>,
    /// `confusion[truth][predicted]`.
    pub confusion: Vec<Vec<u64>>,
}

/// One class's scores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassScores {
    /// The class.
    pub class: usize,
    /// Samples of this class.
    pub support: u64,
    /// Of the samples predicted as this class, the fraction that are.
    pub precision: f64,
    /// Of the samples of this class, the fraction found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// One-vs-rest ROC AUC of this class's probability.
    pub roc_auc: Option<f64>,
}

/// Scores `predicted` against `truth` over `classes` classes; `probabilities`
/// (one row of `classes` values per sample) give the ROC AUC.
pub fn score(
    truth: &[usize],
    predicted: &[usize],
    probabilities: Option<&[Vec<f32>]>,
    classes: usize,
) -> Scores {
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        if t < classes && p < classes {
            confusion[t][p] += 1;
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassScores> = (0..classes)
        .map(|c| {
            let right = confusion[c][c];
            let support: u64 = confusion[c].iter().sum();
            let predicted_as: u64 = confusion.iter().map(|row| row[c]).sum();
            let precision = ratio(right, predicted_as);
            let recall = ratio(right, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            let roc_auc = probabilities.and_then(|p| {
                let scores: Vec<f32> = p
                    .iter()
                    .map(|row| row.get(c).copied().unwrap_or(0.0))
                    .collect();
                let positive: Vec<bool> = truth.iter().map(|&t| t == c).collect();
                roc_auc(&scores, &positive)
            });
            ClassScores {
                class: c,
                support,
                precision,
                recall,
                f1,
                roc_auc,
            }
        })
        .collect();
    let present: Vec<&ClassScores> = per_class
        .iter()
        .filter(|c| c.support > 0 || confusion.iter().any(|row| row[c.class] > 0))
        .collect();
    let mean = |f: &dyn Fn(&ClassScores) -> f64| {
        present.iter().map(|c| f(c)).sum::<f64>() / present.len().max(1) as f64
    };
    let aucs: Vec<f64> = per_class.iter().filter_map(|c| c.roc_auc).collect();
    let labelled = per_class.iter().filter(|c| c.support > 0).count();
    let roc_auc_missing = match (probabilities, aucs.is_empty()) {
        (_, false) => None,
        (None, true) => Some("the model returns no probabilities".to_string()),
        (Some(_), true) => Some(format!(
            "the labels hold {labelled} class{}: one-vs-rest needs samples of two",
            if labelled == 1 { "" } else { "es" }
        )),
    };
    let right = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    Scores {
        samples: truth.len(),
        accuracy: ratio(right as u64, truth.len() as u64),
        macro_precision: mean(&|c| c.precision),
        macro_recall: mean(&|c| c.recall),
        macro_f1: mean(&|c| c.f1),
        macro_roc_auc: (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64),
        roc_auc_missing,
        classes: per_class,
        confusion,
    }
}

/// The probability that a random positive scores above a random negative
/// (ties count half): the area under the ROC curve, from ranks.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let positives = positive.iter().filter(|&&p| p).count();
    let negatives = positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum_positive = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        rank_sum_positive +=
            order[start..end].iter().filter(|&&i| positive[i]).count() as f64 * average_rank;
        start = end;
    }
    let p = positives as f64;
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_reversed_and_tied_scores() {
        let positive = [true, true, false, false];
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &positive), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &positive), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &positive), Some(0.5));
        // One positive below one negative: 3 of 4 pairs ordered.
        assert_eq!(roc_auc(&[0.9, 0.3, 0.4, 0.1], &positive), Some(0.75));
        assert_eq!(roc_auc(&[0.9, 0.3], &[true, true]), None);
    }

    #[test]
    fn per_class_and_macro_scores() {
        // Class 0: 2 samples, both found; class 1: 2 samples, one taken for 0.
        let s = score(&[0, 0, 1, 1], &[0, 0, 0, 1], None, 2);
        assert_eq!(s.confusion, vec![vec![2, 0], vec![1, 1]]);
        assert_eq!(s.accuracy, 0.75);
        assert!((s.classes[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.classes[0].recall, s.classes[1].recall), (1.0, 0.5));
        assert_eq!(s.classes[1].precision, 1.0);
        assert!((s.macro_recall - 0.75).abs() < 1e-12);
        let f1_0 = 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0);
        let f1_1 = 2.0 * 0.5 / 1.5;
        assert!((s.macro_f1 - (f1_0 + f1_1) / 2.0).abs() < 1e-12);
        assert_eq!(s.macro_roc_auc, None);
    }

    #[test]
    fn a_bad_class_shows_in_its_recall_despite_high_accuracy() {
        // 98 samples of class 0 all right, 2 of class 1 both wrong.
        let truth: Vec<usize> = (0..100).map(|i| usize::from(i >= 98)).collect();
        let s = score(&truth, &[0; 100], None, 2);
        assert_eq!(s.accuracy, 0.98);
        assert_eq!(s.classes[1].recall, 0.0);
        assert_eq!(s.macro_recall, 0.5);
    }

    #[test]
    fn one_class_in_the_labels_scores_that_class_and_says_why_there_is_no_auc() {
        // Ten samples of class 4, all right, with probabilities over 10
        // classes: F1 1.0 (not 0.1, a mean over nine absent classes), and
        // no ROC AUC because of the labels, not the model.
        let probabilities: Vec<Vec<f32>> = (0..10)
            .map(|_| (0..10).map(|c| if c == 4 { 0.9 } else { 0.01 }).collect())
            .collect();
        let s = score(&[4; 10], &[4; 10], Some(&probabilities), 10);
        assert_eq!((s.accuracy, s.macro_f1, s.macro_precision), (1.0, 1.0, 1.0));
        assert_eq!(s.macro_roc_auc, None);
        let why = s.roc_auc_missing.unwrap();
        assert!(why.contains("the labels hold 1 class"), "{why}");
        let without = score(&[0, 1], &[0, 1], None, 2);
        assert_eq!(
            without.roc_auc_missing.as_deref(),
            Some("the model returns no probabilities")
        );
    }
}
