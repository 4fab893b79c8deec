//! Model versions. A model's section named `m` is its version 1, and one
//! named `"m@N"` (quoted in TOML) its version N; each is a whole section of
//! its own (plugin, graphs, params, members), the way each of Triton's
//! version folders holds a whole model. `[versions.m]` picks which versions
//! are served (Triton's version policy): the latest N (`latest = N`, the
//! default being 1), `all = true`, or `specific = [..]`. Referring to `m`
//! (a client's path without a version, a hierarchy's member) means its
//! default version: the highest one served; `m@N` pins one.

use super::{Config, ConfigError, ConfigFile};
use std::collections::{BTreeMap, BTreeSet};

/// The suffix of a rollout's key among the models: `m@rollout` answers for
/// `m` while its rollout runs.
pub const ROLLOUT_SUFFIX: &str = "@rollout";

/// The model and version a section key names: `m@3` is `m`, 3; a rollout's
/// key `m@rollout` is `m`, 0; anything else is version 1 of itself.
pub fn split_version(key: &str) -> (&str, u64) {
    if let Some(base) = key.strip_suffix(ROLLOUT_SUFFIX) {
        return (base, 0);
    }
    match key.rsplit_once('@') {
        Some((base, n)) if !base.is_empty() => match n.parse::<u64>() {
            Ok(version) if version >= 1 => (base, version),
            _ => (key, 1),
        },
        _ => (key, 1),
    }
}

/// Every model's versions in a config, and which of them are served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// Each model's versions, by number, with the key of its section.
    pub defined: BTreeMap<String, BTreeMap<u64, String>>,
    /// The section keys the version policies serve (and rollouts' keys).
    pub served: BTreeSet<String>,
    /// Models with a rollout, and the rollout's key: it answers for them.
    pub rollouts: BTreeMap<String, String>,
}

impl Versions {
    /// The versions `config` defines and serves.
    pub fn of(config: &Config) -> Versions {
        let mut defined: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
        for key in config.model_keys() {
            let (base, version) = split_version(key);
            defined
                .entry(base.to_string())
                .or_default()
                .insert(version, key.clone());
        }
        let mut served = BTreeSet::new();
        for (base, versions) in &defined {
            let policy = config.versions.get(base);
            let keep: Vec<&String> = match policy {
                Some(p) if p.all => versions.values().collect(),
                Some(p) if p.specific.is_some() => versions
                    .iter()
                    .filter(|(v, _)| p.specific.iter().flatten().any(|s| s == *v))
                    .map(|(_, key)| key)
                    .collect(),
                _ => {
                    let latest = policy.and_then(|p| p.latest).unwrap_or(1).max(1) as usize;
                    versions.values().rev().take(latest).collect()
                }
            };
            served.extend(keep.into_iter().cloned());
        }
        let rollouts: BTreeMap<String, String> = config
            .rollouts
            .iter()
            .filter(|(base, _)| defined.contains_key(*base))
            .map(|(base, r)| (base.clone(), r.key.clone()))
            .collect();
        served.extend(rollouts.values().cloned());
        Versions {
            defined,
            served,
            rollouts,
        }
    }

    /// The section key `name` refers to: `m@N` that version (`m@1` may be
    /// written `m`), a plain `m` its default version. `None` when the
    /// config has no such model or version.
    pub fn resolve(&self, name: &str) -> Option<&String> {
        if let Some(key) = self.defined.get(name).and_then(|_| self.default_key(name)) {
            return Some(key);
        }
        let (base, version) = split_version(name);
        self.defined.get(base)?.get(&version)
    }

    /// The key of `base`'s default version: its rollout while one runs,
    /// else its highest served version, or its highest when none is served.
    pub fn default_key(&self, base: &str) -> Option<&String> {
        if let Some(rollout) = self.rollouts.get(base) {
            return Some(rollout);
        }
        let versions = self.defined.get(base)?;
        versions
            .values()
            .rev()
            .find(|key| self.served.contains(*key))
            .or_else(|| versions.values().next_back())
    }

    /// The key of `base` at `version`.
    pub fn key(&self, base: &str, version: u64) -> Option<&String> {
        self.defined.get(base)?.get(&version)
    }

    /// Takes `base`'s versions and policy from `other` (a reload of `base`
    /// from a newer config), leaving every other model's as they were.
    pub fn take_model(&mut self, base: &str, other: &Versions) {
        self.served.retain(|key| split_version(key).0 != base);
        match other.defined.get(base) {
            Some(versions) => {
                self.served.extend(
                    versions
                        .values()
                        .filter(|key| other.served.contains(*key))
                        .cloned(),
                );
                self.defined.insert(base.to_string(), versions.clone());
            }
            None => {
                self.defined.remove(base);
            }
        }
        match other.rollouts.get(base) {
            Some(key) => {
                self.served.insert(key.clone());
                self.rollouts.insert(base.to_string(), key.clone());
            }
            None => {
                self.rollouts.remove(base);
            }
        }
    }

    /// The versions of `base` that are served, in order.
    pub fn served_versions(&self, base: &str) -> Vec<u64> {
        self.defined
            .get(base)
            .map(|versions| {
                versions
                    .iter()
                    .filter(|(_, key)| self.served.contains(*key))
                    .map(|(v, _)| *v)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The mistakes versions allow: a key whose `@` is not followed by a
/// version number, `m` beside `m@1`, a policy for no model, a policy that
/// sets more than one choice or names a version that does not exist.
pub fn check(file: &ConfigFile, errors: &mut Vec<ConfigError>) {
    let c = &file.config;
    let versions = Versions::of(c);
    let table_of = |key: &str| {
        [
            ("nodes", c.nodes.contains_key(key)),
            ("sequence", c.sequence.contains_key(key)),
            ("dag", c.dag.contains_key(key)),
            ("ensemble", c.ensemble.contains_key(key)),
            ("switch", c.switch.contains_key(key)),
            ("cascade", c.cascade.contains_key(key)),
            ("splitter", c.splitter.contains_key(key)),
            ("shadow", c.shadow.contains_key(key)),
        ]
        .into_iter()
        .find_map(|(table, has)| has.then_some(table))
        .unwrap_or("nodes")
    };
    for key in c.model_keys() {
        let table = table_of(key);
        if key.contains('@') && split_version(key).0 == key {
            errors.push(
                file.error(
                    file.table_span(table, key),
                    format!("{table}.{key}"),
                    format!("`{key}`: after `@` a model's name takes a version number (1, 2, ...)"),
                )
                .fix(format!(
                    "name it \"{}@2\" for version 2, or drop the `@`",
                    key.split('@').next().unwrap_or(key)
                )),
            );
        }
        if key.ends_with(ROLLOUT_SUFFIX) {
            errors.push(
                file.error(
                    file.table_span(table, key),
                    format!("{table}.{key}"),
                    format!("`{key}`: names ending in `{ROLLOUT_SUFFIX}` are kept for rollouts"),
                )
                .fix("choose another name"),
            );
        }
        if let Some(base) = key.strip_suffix("@1")
            && c.model_keys().any(|k| k == base)
        {
            errors.push(
                file.error(
                    file.table_span(table, key),
                    format!("{table}.{key}"),
                    format!("`{key}` and `{base}` are both version 1 of `{base}`"),
                )
                .fix(format!("keep one; `{base}` alone is version 1")),
            );
        }
    }
    for (base, policy) in &c.versions {
        let at = file.table_span("versions", base);
        let key = format!("versions.{base}");
        let Some(defined) = versions.defined.get(base) else {
            errors.push(
                file.error(
                    at,
                    key,
                    format!("a version policy for `{base}`, which the config does not define"),
                )
                .fix("name a node or hierarchy (without `@N`), or remove the table"),
            );
            continue;
        };
        let chosen = [
            policy.latest.is_some(),
            policy.all,
            policy.specific.is_some(),
        ];
        if chosen.iter().filter(|&&c| c).count() > 1 {
            errors.push(
                file.error(
                    at.clone(),
                    &key,
                    "set one of `latest`, `all` and `specific`, not several",
                )
                .fix("keep the one that says which versions to serve"),
            );
        }
        if policy.latest == Some(0) {
            errors.push(
                file.error(
                    at.clone(),
                    format!("{key}.latest"),
                    "`latest = 0` serves no version",
                )
                .fix("serve at least 1"),
            );
        }
        if let Some(specific) = &policy.specific {
            let have: Vec<String> = defined.keys().map(u64::to_string).collect();
            if specific.is_empty() {
                errors.push(
                    file.error(
                        at.clone(),
                        format!("{key}.specific"),
                        "an empty list serves no version",
                    )
                    .fix(format!("list some of its versions: {}", have.join(", "))),
                );
            }
            for v in specific.iter().filter(|v| !defined.contains_key(v)) {
                errors.push(
                    file.error(
                        at.clone(),
                        format!("{key}.specific"),
                        format!("`{base}` has no version {v}"),
                    )
                    .fix(format!("its versions: {}", have.join(", "))),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    const THREE: &str = "[nodes.m]\nplugin = \"p\"\n[nodes.\"m@2\"]\nplugin = \"p\"\n\
                         [nodes.\"m@3\"]\nplugin = \"p\"\n[nodes.other]\nplugin = \"p\"\n";

    #[test]
    fn keys_split_into_model_and_version() {
        assert_eq!(split_version("m@2"), ("m", 2));
        assert_eq!(split_version("m"), ("m", 1));
        assert_eq!(split_version("m@0"), ("m@0", 1));
        assert_eq!(split_version("m@x"), ("m@x", 1));
        assert_eq!(split_version("@2"), ("@2", 1));
        assert_eq!(split_version("a@b@4"), ("a@b", 4));
    }

    #[test]
    fn the_latest_version_serves_by_default_and_policies_pick_others() {
        let v = Versions::of(&config(THREE));
        assert_eq!(v.served, ["m@3", "other"].map(String::from).into());
        assert_eq!(v.resolve("m").map(String::as_str), Some("m@3"));
        assert_eq!(v.resolve("m@1").map(String::as_str), Some("m"));
        assert_eq!(v.resolve("m@2").map(String::as_str), Some("m@2"));
        assert_eq!(v.resolve("m@4"), None);
        assert_eq!(v.resolve("nothing"), None);

        let v = Versions::of(&config(&format!("{THREE}[versions.m]\nlatest = 2\n")));
        assert_eq!(v.served_versions("m"), [2, 3]);
        let v = Versions::of(&config(&format!("{THREE}[versions.m]\nall = true\n")));
        assert_eq!(v.served_versions("m"), [1, 2, 3]);
        let v = Versions::of(&config(&format!(
            "{THREE}[versions.m]\nspecific = [1, 2]\n"
        )));
        assert_eq!(v.served_versions("m"), [1, 2]);
        assert_eq!(v.resolve("m").map(String::as_str), Some("m@2"));
    }
}
