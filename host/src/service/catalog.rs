//! The models served right now, by name, and how that changes: the first
//! install, a reload of one model (swapped in with every hierarchy that
//! calls it), an unload (refused while a served hierarchy calls the model,
//! unless its users go too).

use super::error::ServiceError;
use crate::config::ConfigFile;
use crate::graph::{Models, Served, model_closure};
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
    models: BTreeMap<String, Slot>,
}

/// The models by name, and the config file a reload reads.
pub(super) struct Catalog {
    config: PathBuf,
    models: RwLock<Entries>,
    /// Loads run one at a time: a load rebuilds the hierarchies around the
    /// models serving when it starts, which a concurrent load could replace.
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
        catalog.models = repository
            .models
            .into_iter()
            .map(|(name, model)| (name, Slot::Ready(model)))
            .collect();
    }

    pub fn is_loaded(&self) -> bool {
        self.read().runtime.is_some()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().models.contains_key(name)
    }

    /// The model `name` (at `version`, when given), ready to run.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<Served>, ServiceError> {
        let catalog = self.read();
        if catalog.runtime.is_none() {
            return Err(ServiceError::unavailable(
                "the server is not ready: it is still loading its models",
            ));
        }
        let served = match catalog.models.get(name) {
            Some(Slot::Ready(served)) => served.clone(),
            Some(Slot::Unloaded) => {
                return Err(ServiceError::unavailable(format!(
                    "model `{name}` is unloaded; load it with POST /v2/repository/models/{name}/load"
                )));
            }
            None => {
                let names: Vec<&str> = catalog.models.keys().map(String::as_str).collect();
                return Err(ServiceError::not_found(format!(
                    "unknown model `{name}` (served: {})",
                    names.join(", ")
                )));
            }
        };
        match version {
            None | Some("1") => Ok(served),
            Some(other) => Err(ServiceError::not_found(format!(
                "model `{name}` has no version `{other}` (it serves version 1)"
            ))),
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

    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        self.read()
            .models
            .iter()
            .filter(|(_, slot)| !ready_only || matches!(slot, Slot::Ready(_)))
            .map(|(name, slot)| IndexEntry {
                name: name.clone(),
                version: "1".into(),
                state: match slot {
                    Slot::Ready(_) => "READY",
                    Slot::Unloaded => "UNAVAILABLE",
                },
                reason: match slot {
                    Slot::Ready(_) => String::new(),
                    Slot::Unloaded => "unloaded".into(),
                },
            })
            .collect()
    }

    /// Re-reads the config file and starts `name` afresh from it (a node's
    /// plugin and graphs read from disk again), rebuilds every served
    /// hierarchy that calls it around the new one, and swaps them all in.
    /// Requests already running finish on the old ones; the next ones get
    /// the new ones. Any error leaves the old ones serving. The work runs
    /// on a blocking thread, so serving keeps its async workers.
    pub async fn load(&self, name: &str) -> Result<Duration, ServiceError> {
        let started = Instant::now();
        let runtime =
            self.read().runtime.clone().ok_or_else(|| {
                ServiceError::unavailable("the server is still loading its models")
            })?;
        let file = ConfigFile::load(&self.config)
            .map_err(|e| ServiceError::client(format!("cannot load `{name}`: {e}")))?;
        if model_closure(&file, name).is_none() {
            return Err(ServiceError::not_found(format!(
                "{} has no model `{name}`; add it as a node or a hierarchy",
                self.config.display()
            )));
        }
        let _one_at_a_time = self.loading.lock().await;
        let serving = self.serving();
        let model = name.to_string();
        let handle = tokio::runtime::Handle::current();
        let built = tokio::task::spawn_blocking(move || {
            handle.block_on(Repository::start_with(
                file,
                runtime,
                Some(Reload {
                    model: &model,
                    serving: &serving,
                }),
            ))
        })
        .await
        .map_err(|e| {
            ServiceError::internal(format!("cannot load `{name}`: the loader failed: {e}"))
        })?
        .map_err(|e| ServiceError::client(format!("cannot load `{name}`: {e}")))?;
        if !built.models.contains_key(name) {
            return Err(ServiceError::client(format!(
                "cannot load `{name}`: it was not built"
            )));
        }
        let mut catalog = self.write();
        for (built_name, served) in built.models {
            catalog.models.insert(built_name, Slot::Ready(served));
        }
        Ok(started.elapsed())
    }

    /// Stops serving `name`; requests running on it finish. Refused while a
    /// served hierarchy calls it, unless `with_users`, which unloads those
    /// hierarchies too.
    pub fn unload(&self, name: &str, with_users: bool) -> Result<Vec<String>, ServiceError> {
        let mut catalog = self.write();
        if !catalog.models.contains_key(name) {
            return Err(ServiceError::not_found(format!("unknown model `{name}`")));
        }
        let users: Vec<String> = catalog
            .models
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Ready(served) if calls(served, name)))
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
        for unloaded in users.iter().map(String::as_str).chain([name]) {
            catalog.models.insert(unloaded.to_string(), Slot::Unloaded);
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
