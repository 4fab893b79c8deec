//! An evaluation report as text for people.

use super::Report;
use std::fmt::Write as _;

/// The report as aligned text: summary, stages, per-class scores and the
/// confusion matrix.
pub fn render(report: &Report) -> String {
    let s = &report.scores;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model `{}` on {} ({} samples)",
        report.model, report.data, s.samples
    );
    let _ = writeln!(out, "  accuracy          {:.4}", s.accuracy);
    let _ = writeln!(out, "  macro precision   {:.4}", s.macro_precision);
    let _ = writeln!(out, "  macro recall      {:.4}", s.macro_recall);
    let _ = writeln!(out, "  macro F1          {:.4}", s.macro_f1);
    match s.macro_roc_auc {
        Some(auc) => {
            let _ = writeln!(out, "  ROC AUC (macro, one-vs-rest) {auc:.4}");
        }
        None => {
            let why = s.roc_auc_missing.as_deref().unwrap_or("no probabilities");
            let _ = writeln!(out, "  ROC AUC           n/a ({why})");
        }
    }
    let _ = writeln!(
        out,
        "  latency/sample    mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs ({} per request)",
        report.latency.mean_us, report.latency.p50_us, report.latency.p99_us, report.batch
    );
    if let Some(stages) = &report.stages {
        for stage in stages {
            let _ = writeln!(
                out,
                "  stage {}           answered {} ({:.1}%), accuracy {:.4}",
                stage.stage,
                stage.samples,
                100.0 * stage.samples as f64 / s.samples.max(1) as f64,
                stage.accuracy
            );
        }
    }
    if let Some(live) = &report.live {
        let _ = writeln!(
            out,
            "  as served live    accuracy {:.4} on the same {} samples ({} captured requests \
             without a label, failed or of several rows left out)",
            live.accuracy, live.samples, live.skipped
        );
        for stage in live.stages.iter().flatten() {
            let _ = writeln!(
                out,
                "    live stage {}    answered {} ({:.1}%), accuracy {:.4}",
                stage.stage,
                stage.samples,
                100.0 * stage.samples as f64 / live.samples.max(1) as f64,
                stage.accuracy
            );
        }
    }
    out.push_str("\n  class  support  precision  recall  F1      ROC AUC\n");
    for c in &s.classes {
        let auc = c
            .roc_auc
            .map_or_else(|| "n/a".to_string(), |a| format!("{a:.4}"));
        let _ = writeln!(
            out,
            "  {:>5}  {:>7}  {:>9.4}  {:>6.4}  {:>6.4}  {auc}",
            c.class, c.support, c.precision, c.recall, c.f1
        );
    }
    out.push_str("\n  confusion (rows: true class, columns: predicted)\n       ");
    for c in 0..s.confusion.len() {
        let _ = write!(out, "{c:>5}");
    }
    out.push('\n');
    for (t, row) in s.confusion.iter().enumerate() {
        let _ = write!(out, "  {t:>5}");
        for n in row {
            let _ = write!(out, "{n:>5}");
        }
        out.push('\n');
    }
    out
}
