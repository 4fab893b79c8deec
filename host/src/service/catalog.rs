//! The models served right now, by name, and how that changes: the first
//! install, a reload of one model (swapped in with every hierarchy that
//! calls it), an unload (refused while a served hierarchy calls the model,
//! unless its users go too).

use super::error::ServiceError;
use crate::config::{ConfigFile, Versions, split_version};
use crate::graph::{Models, Served};
use crate::repository::{Reload, Repository};
use crate::runtime::Runtime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One model in the repository index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexEntry {
    /// The model.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `READY` or `UNAVAILABLE`.
    pub state: &'static str,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Clone)]
enum Slot {
    Ready(Arc<Served>),
    Unloaded,
}

#[derive(Default)]
struct Entries {
    /// Set once the config's first load succeeded.
    runtime: Option<Arc<Runtime>>,
    /// By section key: `m` for version 1 of `m`, `m@N` for version N.
    models: BTreeMap<String, Slot>,
    /// The versions the config defines and serves, as last loaded.
    versions: Versions,
}

/// The models by name, and the config file a reload reads.
pub(super) struct Catalog {
    config: PathBuf,
    models: RwLock<Entries>,
    /// Loads run one at a time. Loads of models that share members, run
    /// side by side, kept rebuilding on what the other had just replaced
    /// and gave up (67 of 83 in one storm); queued, each either succeeds or
    /// fails for a reason of its own. A load takes seconds and is rare.
    loading: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub fn new(config: PathBuf) -> Self {
        Catalog {
            config,
            models: RwLock::new(Entries::default()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn install(&self, repository: Repository) {
        let mut catalog = self.write();
        catalog.runtime = Some(repository.runtime.clone());
        catalog.versions = Versions::of(&repository.file.config);
        catalog.models = repository
            .models
            .into_iter()
            .map(|(name, model)| (name, Slot::Ready(model)))
            .collect();
    }

    pub fn is_loaded(&self) -> bool {
        self.read().runtime.is_some()
    }

    /// True when the config has a model (or version) called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.read().versions.resolve(name).is_some()
    }

    /// The model `name` at `version`, or at its default version (the
    /// highest served), ready to run.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<Served>, ServiceError> {
        let catalog = self.read();
        if catalog.runtime.is_none() {
            return Err(ServiceError::unavailable(
                "the server is not ready: it is still loading its models",
            ));
        }
        let versions = &catalog.versions;
        let serves = |base: &str| {
            let served: Vec<String> = versions
                .served_versions(base)
                .iter()
                .map(u64::to_string)
                .collect();
            if served.is_empty() {
                "it serves no version".to_string()
            } else {
                format!("it serves version {}", served.join(", "))
            }
        };
        let key = match version {
            None => versions
                .resolve(name)
                .ok_or_else(|| ServiceError::not_found(unknown(name, versions)))?,
            Some(v) => {
                if !versions.defined.contains_key(name) {
                    return Err(ServiceError::not_found(unknown(name, versions)));
                }
                let key = v.parse::<u64>().ok().and_then(|n| versions.key(name, n));
                key.ok_or_else(|| {
                    ServiceError::not_found(format!(
                        "model `{name}` has no version `{v}` ({})",
                        serves(name)
                    ))
                })?
            }
        };
        let (base, number) = split_version(key);
        // A version started only because a hierarchy pins it (`m@3`) runs
        // for that hierarchy; clients reach only what the policy serves.
        let serving = versions.served.contains(key);
        match catalog.models.get(key) {
            Some(Slot::Ready(served)) if serving => Ok(served.clone()),
            Some(Slot::Unloaded) if serving => Err(ServiceError::unavailable(format!(
                "model `{base}` version {number} is unloaded; load it with \
                 POST /v2/repository/models/{base}/load"
            ))),
            _ => Err(ServiceError::not_found(format!(
                "model `{base}` version {number} is not served: its version policy ([versions.{base}]) \
                 leaves it out ({})",
                serves(base)
            ))),
        }
    }

    /// The model at section `key`, when it is ready.
    pub fn by_key(&self, key: &str) -> Option<Arc<Served>> {
        match self.read().models.get(key) {
            Some(Slot::Ready(served)) => Some(served.clone()),
            _ => None,
        }
    }

    pub fn ready_models(&self) -> Vec<Arc<Served>> {
        self.read()
            .models
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(served) => Some(served.clone()),
                Slot::Unloaded => None,
            })
            .collect()
    }

    /// The versions of `name` ready to serve, in order.
    pub fn ready_versions(&self, name: &str) -> Vec<u64> {
        let catalog = self.read();
        let Some(defined) = catalog.versions.defined.get(name) else {
            return Vec::new();
        };
        defined
            .iter()
            .filter(|(_, key)| catalog.versions.served.contains(*key))
            .filter(|(_, key)| matches!(catalog.models.get(*key), Some(Slot::Ready(_))))
            .map(|(v, _)| *v)
            .collect()
    }

    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        self.read()
            .models
            .iter()
            .filter(|(_, slot)| !ready_only || matches!(slot, Slot::Ready(_)))
            // A rollout answers for its model; its versions are listed.
            .filter(|(key, _)| split_version(key).1 != 0)
            .map(|(key, slot)| {
                let (name, version) = split_version(key);
                IndexEntry {
                    name: name.to_string(),
                    version: version.to_string(),
                    state: match slot {
                        Slot::Ready(_) => "READY",
                        Slot::Unloaded => "UNAVAILABLE",
                    },
                    reason: match slot {
                        Slot::Ready(_) => String::new(),
                        Slot::Unloaded => "unloaded".into(),
                    },
                }
            })
            .collect()
    }

    /// Re-reads the config file and starts `name` afresh from it: each
    /// version its policy serves (or the one version `name@N` names), a
    /// node's plugin and graphs read from disk again; rebuilds every served
    /// hierarchy that calls it around the new one, and swaps them all in.
    /// Versions the policy no longer serves are unloaded. Requests already
    /// running finish on the old ones; the next ones get the new ones. An
    /// error leaves the old ones serving. Reading and compiling run on a
    /// blocking thread, so serving keeps its async workers. Returns the time it took
    /// and the config file as it was read for it (read once: what follows
    /// the load, capture, follows the same file).
    pub async fn load(&self, name: &str) -> Result<(Duration, ConfigFile), ServiceError> {
        let started = Instant::now();
        let runtime =
            self.read().runtime.clone().ok_or_else(|| {
                ServiceError::unavailable("the server is still loading its models")
            })?;
        let file = ConfigFile::load(&self.config)
            .map_err(|e| ServiceError::client(format!("cannot load `{name}`: {e}")))?;
        let versions = Versions::of(&file.config);
        let (base, keys): (&str, Vec<String>) = if versions.defined.contains_key(name) {
            let keys = versions.served_versions(name);
            let keys = keys.iter().filter_map(|&v| versions.key(name, v)).cloned();
            (name, keys.collect())
        } else if let Some(key) = versions.resolve(name) {
            (split_version(key).0, vec![key.clone()])
        } else {
            return Err(ServiceError::not_found(format!(
                "{} has no model `{name}`; add it as a node or a hierarchy",
                self.config.display()
            )));
        };
        if keys.is_empty() {
            return Err(ServiceError::client(format!(
                "cannot load `{name}`: its version policy ([versions.{name}]) serves no version"
            )));
        }
        let mut keys = keys;
        // A running rollout answers for `base`: it is started again (from its
        // first step) around the versions just loaded, or `base` would
        // answer with a rollout left unloaded.
        if let Some(rollout) = versions.rollouts.get(base).filter(|_| base == name) {
            keys.push(rollout.clone());
        }
        let _one_at_a_time = self.loading.lock().await;
        // The default (highest) version, then the rollout, last: hierarchies
        // calling `base` are rebuilt around it.
        for key in &keys {
            self.start(&file, &runtime, key)
                .await
                .map_err(|e| ServiceError {
                    kind: e.kind,
                    message: format!("cannot load `{name}`: {}", e.message),
                })?;
        }
        let mut catalog = self.write();
        if versions.defined.contains_key(name) {
            let dropped: Vec<String> = catalog
                .models
                .keys()
                .filter(|key| split_version(key).0 == base && !keys.contains(*key))
                .cloned()
                .collect();
            for key in dropped {
                catalog.models.insert(key, Slot::Unloaded);
            }
        }
        catalog.versions.take_model(base, &versions);
        drop(catalog);
        Ok((started.elapsed(), file))
    }

    /// Starts the model at section `key` around the models serving now (its
    /// files read and compiled on a blocking thread), and swaps it and its rebuilt users in. Loads of
    /// different models run side by side, so the swap happens only if
    /// nothing this build stands on (its members, the models it replaces)
    /// was replaced meanwhile; otherwise it builds again on the new ones.
    async fn start(
        &self,
        file: &ConfigFile,
        runtime: &Arc<Runtime>,
        key: &str,
    ) -> Result<(), ServiceError> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let serving = self.serving();
            // Parsed again rather than cloned: the same text, the same result.
            let file = ConfigFile::parse(&file.path, file.text.clone())
                .map_err(|e| ServiceError::client(e.to_string()))?;
            let reload = Reload {
                model: key.to_string(),
                serving: serving.clone(),
            };
            let built = Repository::start_with(file, runtime.clone(), Some(reload))
                .await
                .map_err(|e| ServiceError::client(e.to_string()))?;
            if !built.models.contains_key(key) {
                return Err(ServiceError::client(format!("`{key}` was not built")));
            }
            let mut catalog = self.write();
            if !still_current(&catalog, &serving, &built.models) {
                continue;
            }
            for (built_key, served) in built.models {
                catalog.models.insert(built_key, Slot::Ready(served));
            }
            return Ok(());
        }
        Err(ServiceError::unavailable(format!(
            "`{key}` was not swapped in: other loads kept replacing the models it stands on; \
             load it again"
        )))
    }

    /// Stops serving `name` (every version, or the one `name@N` names);
    /// requests running on it finish. Refused while a served hierarchy
    /// calls it, unless `with_users`, which unloads those hierarchies too.
    pub fn unload(&self, name: &str, with_users: bool) -> Result<Vec<String>, ServiceError> {
        let mut catalog = self.write();
        let keys: Vec<String> = if catalog.versions.defined.contains_key(name) {
            catalog
                .models
                .keys()
                .filter(|key| split_version(key).0 == name)
                .cloned()
                .collect()
        } else {
            catalog
                .versions
                .resolve(name)
                .filter(|key| catalog.models.contains_key(*key))
                .cloned()
                .into_iter()
                .collect()
        };
        if keys.is_empty() {
            return Err(ServiceError::not_found(format!("unknown model `{name}`")));
        }
        let users: Vec<String> = catalog
            .models
            .iter()
            .filter(|(user, _)| !keys.contains(*user))
            .filter(|(_, slot)| {
                matches!(slot, Slot::Ready(served) if keys.iter().any(|key| calls(served, key)))
            })
            .map(|(user, _)| user.clone())
            .collect();
        if !users.is_empty() && !with_users {
            return Err(ServiceError::conflict(format!(
                "model `{name}` is called by {} still serving ({}); unload those first, or \
                 send {{\"parameters\": {{\"unload_users\": true}}}} to unload them with it",
                if users.len() == 1 {
                    "a hierarchy"
                } else {
                    "hierarchies"
                },
                users.join(", ")
            )));
        }
        for unloaded in users.iter().chain(&keys) {
            catalog.models.insert(unloaded.clone(), Slot::Unloaded);
        }
        Ok(users)
    }

    /// The models serving now.
    fn serving(&self) -> Models {
        self.read()
            .models
            .iter()
            .filter_map(|(name, slot)| match slot {
                Slot::Ready(served) => Some((name.clone(), served.clone())),
                Slot::Unloaded => None,
            })
            .collect()
    }

    // A panic while holding the lock cannot leave the map half-written (each
    // update is one insert), so a poisoned lock is still good to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.models.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.models.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// True when `model` calls `name`, directly or through its members.
fn calls(model: &Served, name: &str) -> bool {
    model
        .members()
        .iter()
        .any(|m| m.name == name || calls(m, name))
}

/// "unknown model", naming the models the config has.
fn unknown(name: &str, versions: &Versions) -> String {
    let names: Vec<&str> = versions.defined.keys().map(String::as_str).collect();
    format!("unknown model `{name}` (served: {})", names.join(", "))
}

/// True when every model `built` replaces is still the one `snapshot` had,
/// and every member it calls that it did not build is still serving as is.
fn still_current(catalog: &Entries, snapshot: &Models, built: &Models) -> bool {
    let current = |key: &str| match catalog.models.get(key) {
        Some(Slot::Ready(served)) => Some(served),
        _ => None,
    };
    let same = |a: Option<&Arc<Served>>, b: Option<&Arc<Served>>| match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    built
        .keys()
        .all(|key| same(current(key), snapshot.get(key)))
        && built.values().all(|model| {
            model
                .members()
                .iter()
                .filter(|m| !built.contains_key(&m.name))
                .all(|m| same(current(&m.name), Some(m)))
        })
}
