//! Checks of `[capture.MODEL]` sections: the model exists, the inner models
//! named are really inside it, and the numbers make sense.

use super::closure::model_closure;
use crate::config::{ConfigError, ConfigFile, MAX_FILE_BYTES, Versions, split_version};
use std::collections::BTreeSet;

pub(super) fn check(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let versions = Versions::of(&file.config);
    for (model, capture) in &file.config.capture {
        let span = file.table_span("capture", model);
        let key = |field: &str| format!("capture.{model}.{field}");
        let Some(defined) = versions.defined.get(model) else {
            let known: Vec<&str> = versions.defined.keys().map(String::as_str).collect();
            errors.push(
                file.error(
                    span,
                    format!("capture.{model}"),
                    format!("unknown model `{model}`"),
                )
                .fix(format!(
                    "capture a node or hierarchy the file defines (one of: {}); every version \
                     of it is captured",
                    known.join(", ")
                )),
            );
            continue;
        };
        // The model's files go in a folder named after it.
        if model.contains(['/', '\\']) || model.starts_with('.') {
            errors.push(
                file.error(
                    span.clone(),
                    format!("capture.{model}"),
                    format!("`{model}` cannot name a folder: its capture would leave `folder`"),
                )
                .fix("capture a model whose name has no `/`, `\\` or leading `.`"),
            );
        }
        // What any version of the model calls, by model name.
        let inside: BTreeSet<String> = defined
            .values()
            .filter_map(|key| model_closure(file, key))
            .flatten()
            .map(|key| split_version(&key).0.to_string())
            .filter(|name| name != model)
            .collect();
        for inner in &capture.inner {
            if !inside.contains(split_version(inner).0) {
                errors.push(
                    file.error(
                        span.clone(),
                        key("inner"),
                        format!("`{inner}` is not a model inside `{model}`"),
                    )
                    .fix(if inside.is_empty() {
                        format!("`{model}` is a node: it has no inner models; remove `inner`")
                    } else {
                        format!(
                            "name models `{model}` calls: {}",
                            inside.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }),
                );
            }
        }
        let mut bound = |ok: bool, field: &str, message: String, fix: &str| {
            if !ok {
                errors.push(
                    file.error(span.clone(), key(field), message)
                        .fix(fix.to_string()),
                );
            }
        };
        bound(
            (0.0..=1.0).contains(&capture.sample),
            "sample",
            format!("{} is not a share between 0 and 1", capture.sample),
            "write 1 to keep every request, 0.1 for one in ten",
        );
        bound(
            capture.flush_ms >= 1,
            "flush_ms",
            "a flush interval of 0 ms would write a file per request".into(),
            "give it at least 1 (the default is 1000)",
        );
        bound(
            capture.max_file_rows >= 1,
            "max_file_rows",
            "a file must hold at least one request".into(),
            "give it at least 1 (the default is 100000)",
        );
        bound(
            (1..=MAX_FILE_BYTES).contains(&capture.max_file_bytes),
            "max_file_bytes",
            format!("{} is outside 1..={MAX_FILE_BYTES}", capture.max_file_bytes),
            "a file is built in memory before it is written; keep it at most 1 GiB",
        );
        bound(
            (1..=1 << 20).contains(&capture.queue),
            "queue",
            format!("{} is outside 1..={}", capture.queue, 1 << 20),
            "the default, 65536, absorbs seconds of a busy model's traffic",
        );
        bound(
            capture.max_queue_bytes >= 1,
            "max_queue_bytes",
            "a queue of 0 bytes drops every request".into(),
            "the default, 268435456 (256 MiB), bounds the memory waiting requests hold",
        );
        bound(
            capture.max_total_bytes != Some(0),
            "max_total_bytes",
            "a limit of 0 bytes deletes every file as soon as it is written".into(),
            "remove it for no limit, or give the bytes the model's files may take",
        );
        bound(
            capture.max_age_s != Some(0),
            "max_age_s",
            "a limit of 0 s deletes every file as soon as it is written".into(),
            "remove it for no limit, or give the seconds a file is kept",
        );
        bound(
            !capture.folder.trim().is_empty(),
            "folder",
            "the folder is empty".into(),
            "name a folder, e.g. folder = \"capture\"",
        );
    }
}
