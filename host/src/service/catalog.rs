//! The models served right now, by name, and how that changes: the first
//! install, a reload of one model (swapped in whole), an unload.

use super::error::ServiceError;
use crate::config::ConfigFile;
use crate::graph::{Served, model_closure};
use crate::repository::Repository;
use crate::runtime::Runtime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
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
struct Models {
    /// Set once the config's first load succeeded.
    runtime: Option<Arc<Runtime>>,
    models: BTreeMap<String, Slot>,
}

/// The models by name, and the config file a reload reads.
pub(super) struct Catalog {
    config: PathBuf,
    models: RwLock<Models>,
    /// One lock per model name: loads of one model run one at a time,
    /// loads of different models do not wait on each other.
    loading: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Catalog {
    pub fn new(config: PathBuf) -> Self {
        Catalog {
            config,
            models: RwLock::new(Models::default()),
            loading: Mutex::new(BTreeMap::new()),
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

    /// Re-reads the config file and starts `name` afresh from it (its
    /// plugins and graphs read from disk again), then swaps it in. Requests
    /// already running finish on the old one; the next ones get the new one.
    /// Any error leaves the old one serving.
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
        // Only names the config has get a lock, so clients cannot grow the map.
        let lock = {
            let mut locks = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(name.to_string()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let mut repository = Repository::start_with(file, runtime, Some(name))
            .await
            .map_err(|e| ServiceError::client(format!("cannot load `{name}`: {e}")))?;
        let served = repository.models.remove(name).ok_or_else(|| {
            ServiceError::client(format!("cannot load `{name}`: it was not built"))
        })?;
        self.write()
            .models
            .insert(name.to_string(), Slot::Ready(served));
        Ok(started.elapsed())
    }

    /// Stops serving `name`; requests running on it finish.
    pub fn unload(&self, name: &str) -> Result<(), ServiceError> {
        match self.write().models.get_mut(name) {
            Some(slot) => {
                *slot = Slot::Unloaded;
                Ok(())
            }
            None => Err(ServiceError::not_found(format!("unknown model `{name}`"))),
        }
    }

    // A panic while holding the lock cannot leave the map half-written (each
    // update is one insert), so a poisoned lock is still good to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Models> {
        self.models.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Models> {
        self.models.write().unwrap_or_else(|p| p.into_inner())
    }
}
