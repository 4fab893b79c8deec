//! Everything a config file describes, loaded and running: the engine, the
//! plugins, the graph registry, a warm pool per node and every hierarchy.
//! `aimass check`, `serve` and `eval` all start here.

use crate::config::{
    ConfigError, ConfigErrors, ConfigFile, IsolationConfig, NodeConfig, ParamConfig, Versions,
};
use crate::graph::{
    HierarchyOrder, Models, Served, build_models, check_references, model_closure, model_users,
};
use crate::nn::{BackendKind, Device, GraphStore};
use crate::runtime::bindings::ParamValue;
use crate::runtime::{
    EngineOptions, InstanceLimits, Isolation, NodePool, NodeSpec, Plugin, Runtime,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// A config, loaded and ready to serve.
pub struct Repository {
    /// The file it came from.
    pub file: ConfigFile,
    /// The shared engine.
    pub runtime: Arc<Runtime>,
    /// The operator's graphs.
    pub graphs: GraphStore,
    /// Every node and hierarchy it started, by name.
    pub models: BTreeMap<String, Arc<Served>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("file", &self.file.path)
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a reload of one model starts, around the models already serving.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The model to start afresh from the config.
    pub model: String,
    /// The models serving now.
    pub serving: Models,
}

impl Repository {
    /// Reads, checks and starts everything in the file at `path`.
    pub async fn open(path: &Path) -> Result<Repository, ConfigErrors> {
        let path = path.to_path_buf();
        on_blocking_thread(move || Loaded::read(ConfigFile::load(&path)?, None, None))
            .await?
            .start()
            .await
    }

    /// Checks and starts everything in `file`.
    pub async fn start(file: ConfigFile) -> Result<Repository, ConfigErrors> {
        on_blocking_thread(move || Loaded::read(file, None, None))
            .await?
            .start()
            .await
    }

    /// The engine `file` asks for.
    pub fn engine(file: &ConfigFile) -> Result<Runtime, ConfigErrors> {
        let c = &file.config;
        // Every node keeps at least one instance alive (a pooled node its
        // warm one, a per-request node the one running its call); at least
        // one slot more is left for a busy node's second instance or a
        // reload, which starts new instances before the old ones go.
        let nodes = c.nodes.len();
        let slots = c.engine.max_instances as usize;
        if nodes >= slots {
            return Err(ConfigErrors::one(
                file.error(
                    file.table_span("engine", ""),
                    "engine.max_instances",
                    format!(
                        "the engine has {slots} instance slots but the config has {nodes} nodes, \
                         each keeping one alive, which leaves no slot for a second instance \
                         or a reload"
                    ),
                )
                .fix(format!(
                    "raise `engine.max_instances` to at least {}",
                    nodes + 1
                )),
            ));
        }
        let most: u64 = c
            .nodes
            .values()
            .filter_map(|n| c.plugins.get(n.plugin.get_ref()))
            .map(|p| u64::from(p.max_instances.max(1)))
            .sum();
        if most > slots as u64 {
            tracing::warn!(
                "the nodes may use {most} instances at once but `engine.max_instances` is {slots}: \
                 under full load some calls will be answered 503 (no free instance slot)"
            );
        }
        Runtime::new(EngineOptions {
            max_instances: c.engine.max_instances,
            // Checked to be at most 4096 MiB, so this cannot overflow.
            max_memory_bytes: (c.engine.max_memory_mb as usize) << 20,
            compile_cache: c.engine.compile_cache.as_deref().map(|d| file.resolve(d)),
        })
        .map_err(|e| {
            ConfigErrors::one(file.error(file.table_span("engine", ""), "engine", e.to_string()))
        })
    }

    /// Checks `file` and starts, on an engine that is already running, either
    /// everything in it or, for a reload, one model afresh: a node gets a new
    /// pool (its plugin and graphs read from disk again), a hierarchy is
    /// rebuilt around the models serving now (no node starts twice), and
    /// every hierarchy serving now that calls it is rebuilt around the new
    /// one, so none keeps calling the old. Models it calls that are not
    /// serving (unloaded) start too. Returns only what it started.
    pub async fn start_with(
        file: ConfigFile,
        runtime: Arc<Runtime>,
        reload: Option<Reload>,
    ) -> Result<Repository, ConfigErrors> {
        on_blocking_thread(move || Loaded::read(file, Some(runtime), reload))
            .await?
            .start()
            .await
    }
}

/// Runs a build's blocking half (reading files, compiling plugins, loading
/// graphs: seconds of CPU) where it holds up no request.
async fn on_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ConfigErrors> + Send + 'static,
) -> Result<T, ConfigErrors> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        ConfigErrors::one(ConfigError {
            file: String::new(),
            line: None,
            key: String::new(),
            message: format!("the loader failed: {e}"),
            fix: None,
        })
    })?
}

/// A build's blocking half done: the file checked, what it starts decided,
/// the plugins compiled and the graphs loaded.
struct Loaded {
    file: ConfigFile,
    order: HierarchyOrder,
    runtime: Arc<Runtime>,
    plan: Plan,
    reload: Option<Reload>,
    plugins: BTreeMap<String, Plugin>,
    graphs: GraphStore,
}

impl Loaded {
    /// Checks `file` and reads what the build needs from disk, on `runtime`
    /// (or on a new engine sized from the file).
    fn read(
        file: ConfigFile,
        runtime: Option<Arc<Runtime>>,
        reload: Option<Reload>,
    ) -> Result<Loaded, ConfigErrors> {
        // Checked before the engine is sized from the file's numbers.
        let mut order = check_references(&file)?;
        let runtime = match runtime {
            Some(runtime) => runtime,
            None => Arc::new(Repository::engine(&file)?),
        };
        let plan = Plan::of(&file, reload.as_ref())?;
        order.0.retain(|name| plan.builds(name));
        let nodes = plan.nodes(&file);
        let plugins = load_plugins(&file, &runtime, &plan, &nodes)?;
        let graphs = load_graphs(&file, &plan, &nodes)?;
        Ok(Loaded {
            file,
            order,
            runtime,
            plan,
            reload,
            plugins,
            graphs,
        })
    }

    /// Starts a pool per node (each runs its plugin's `info` and `init`)
    /// and builds the hierarchies over them.
    async fn start(self) -> Result<Repository, ConfigErrors> {
        let Loaded {
            file,
            order,
            runtime,
            plan,
            reload,
            plugins,
            graphs,
        } = self;
        let c = &file.config;
        let mut nodes = BTreeMap::new();
        for (name, node) in plan.nodes(&file) {
            let plugin_name = node.plugin.get_ref().as_str();
            let (Some(config), Some(plugin)) =
                (c.plugins.get(plugin_name), plugins.get(plugin_name))
            else {
                continue; // reported by check_references
            };
            let spec = node_spec(&file, name, node, config, &graphs)?;
            let pool = NodePool::start(runtime.clone(), plugin.clone(), spec)
                .await
                .map_err(|e| ConfigErrors::one(start_error(&file, name, plugin_name, &e)))?;
            nodes.insert(name.clone(), Arc::new(pool));
        }
        let around: Models = reload
            .iter()
            .flat_map(|r| r.serving.iter())
            .filter(|(name, _)| !plan.rebuilds(name))
            .map(|(name, model)| (name.clone(), model.clone()))
            .collect();
        let models = build_models(&file, &order, nodes, &around)?;
        Ok(Repository {
            file,
            runtime,
            graphs,
            models,
        })
    }
}

/// What a build starts and rebuilds. A full start: what the version
/// policies serve and what that calls. A reload of one model: the model and
/// whatever it calls that is not serving yet start afresh; they and the
/// serving hierarchies that use them are rebuilt.
struct Plan {
    /// Served by policy, with what it calls.
    policy: BTreeSet<String>,
    /// A reload's: started afresh, and rebuilt.
    reload: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

impl Plan {
    fn of(file: &ConfigFile, reload: Option<&Reload>) -> Result<Plan, ConfigErrors> {
        let versions = Versions::of(&file.config);
        let policy = versions
            .served
            .iter()
            .filter_map(|key| model_closure(file, key))
            .flatten()
            .collect();
        let Some(Reload { model, serving }) = reload else {
            return Ok(Plan {
                policy,
                reload: None,
            });
        };
        let closure = model_closure(file, model).ok_or_else(|| {
            ConfigErrors::one(ConfigError {
                file: file.path.display().to_string(),
                line: None,
                key: model.to_string(),
                message: format!("the config has no model `{model}`"),
                fix: Some("add it as a node or a hierarchy".into()),
            })
        })?;
        let fresh: BTreeSet<String> = closure
            .into_iter()
            .filter(|m| m == model || !serving.contains_key(m))
            .collect();
        let users = model_users(file, model)
            .into_iter()
            .filter(|u| serving.contains_key(u));
        let rebuilt = fresh.iter().cloned().chain(users).collect();
        Ok(Plan {
            policy,
            reload: Some((fresh, rebuilt)),
        })
    }

    /// The nodes that start, with their config.
    fn nodes<'a>(&self, file: &'a ConfigFile) -> BTreeMap<&'a String, &'a NodeConfig> {
        file.config
            .nodes
            .iter()
            .filter(|(name, _)| self.starts(name))
            .collect()
    }

    /// True when `name` (a node) starts.
    fn starts(&self, name: &str) -> bool {
        match &self.reload {
            Some((fresh, _)) => fresh.contains(name),
            None => self.policy.contains(name),
        }
    }

    /// True when `name` (a hierarchy) is built.
    fn builds(&self, name: &str) -> bool {
        match &self.reload {
            Some((_, rebuilt)) => rebuilt.contains(name),
            None => self.policy.contains(name),
        }
    }

    /// True when `name`, serving now, is replaced by this build.
    fn rebuilds(&self, name: &str) -> bool {
        self.reload
            .as_ref()
            .is_some_and(|(_, rebuilt)| rebuilt.contains(name))
    }

    /// A full start reads every plugin and graph, so that a broken one is
    /// reported; a reload only those its nodes use.
    fn reads_all(&self) -> bool {
        self.reload.is_none()
    }
}

/// The plugins the build's nodes use (every one on a full start), loaded.
fn load_plugins(
    file: &ConfigFile,
    runtime: &Runtime,
    plan: &Plan,
    nodes: &BTreeMap<&String, &NodeConfig>,
) -> Result<BTreeMap<String, Plugin>, ConfigErrors> {
    let needed: BTreeSet<&str> = nodes
        .values()
        .map(|n| n.plugin.get_ref().as_str())
        .collect();
    let mut plugins = BTreeMap::new();
    for (name, p) in &file.config.plugins {
        if !plan.reads_all() && !needed.contains(name.as_str()) {
            continue;
        }
        let path = file.resolve(&p.path);
        let plugin = runtime
            .load(name, &path, p.sha256.as_deref())
            .map_err(|e| {
                let fix = plugin_fix(&path, p.build.is_some());
                ConfigErrors::one(
                    file.error(
                        file.table_span("plugins", name),
                        format!("plugins.{name}"),
                        e.to_string(),
                    )
                    .fix(fix),
                )
            })?;
        plugins.insert(name.clone(), plugin);
    }
    Ok(plugins)
}

/// The graphs the build's nodes (and their plugins) are granted (every
/// artifact on a full start), loaded on their backends.
fn load_graphs(
    file: &ConfigFile,
    plan: &Plan,
    nodes: &BTreeMap<&String, &NodeConfig>,
) -> Result<GraphStore, ConfigErrors> {
    let c = &file.config;
    let needed: BTreeSet<&str> = nodes
        .values()
        .flat_map(|n| {
            let plugin_graphs = c.plugins.get(n.plugin.get_ref()).map(|p| &p.graphs);
            n.graphs.iter().chain(plugin_graphs.into_iter().flatten())
        })
        .map(|g| g.get_ref().as_str())
        .collect();
    let mut graphs = GraphStore::default();
    for (name, a) in &c.artifacts {
        if !plan.reads_all() && !needed.contains(name.as_str()) {
            continue;
        }
        graphs
            .load_file(
                name,
                &file.resolve(&a.path),
                backend(&a.backend),
                device(&a.device),
            )
            .map_err(|e| {
                ConfigErrors::one(file.error(
                    file.table_span("artifacts", name),
                    format!("artifacts.{name}"),
                    e.to_string(),
                ))
            })?;
    }
    Ok(graphs)
}

/// How node `name` runs: its parameters, grants and its plugin's limits.
fn node_spec(
    file: &ConfigFile,
    name: &str,
    node: &NodeConfig,
    plugin: &crate::config::PluginConfig,
    graphs: &GraphStore,
) -> Result<NodeSpec, ConfigErrors> {
    let granted = plugin
        .graphs
        .iter()
        .chain(&node.graphs)
        .map(|g| g.get_ref().as_str());
    let graphs = graphs.grant(granted).map_err(|e| {
        ConfigErrors::one(file.error(
            file.table_span("nodes", name),
            format!("nodes.{name}.graphs"),
            e.to_string(),
        ))
    })?;
    Ok(NodeSpec {
        node: name.to_string(),
        params: node
            .params
            .iter()
            .map(|(k, v)| (k.clone(), param_value(v)))
            .collect(),
        graphs,
        limits: InstanceLimits {
            memory_bytes: plugin.memory_bytes(),
            call_timeout: plugin.call_timeout(),
        },
        isolation: match plugin.isolation {
            IsolationConfig::Pooled => Isolation::Pooled,
            IsolationConfig::PerRequest => Isolation::PerRequest,
        },
        max_instances: plugin.max_instances as usize,
        max_queue: plugin.max_queue(),
        queue_timeout: plugin.queue_timeout(),
    })
}

fn backend(config: &crate::config::BackendConfig) -> BackendKind {
    match config {
        crate::config::BackendConfig::Tract => BackendKind::Tract,
        crate::config::BackendConfig::Onnxruntime => BackendKind::OnnxRuntime,
    }
}

fn device(config: &crate::config::DeviceConfig) -> Device {
    match config {
        crate::config::DeviceConfig::Cpu => Device::Cpu,
        crate::config::DeviceConfig::Gpu => Device::Gpu,
    }
}

/// Why a node did not start, blamed where the fix is: the node's params when
/// `init` refused them, the plugin when it is broken, slow or wrong.
fn start_error(
    file: &ConfigFile,
    node: &str,
    plugin: &str,
    error: &crate::runtime::RuntimeError,
) -> ConfigError {
    use crate::runtime::RuntimeError as E;
    let (span, key, fix) = match error {
        E::Plugin { .. } => {
            return file
                .error(
                    file.table_span("nodes", node),
                    format!("nodes.{node}.params"),
                    error.to_string(),
                )
                .fix("fix the node's params so the plugin's init accepts them");
        }
        E::Timeout { .. } => (
            file.table_span("plugins", plugin),
            format!("plugins.{plugin}.timeout_ms"),
            "the plugin did not start in time: fix the plugin, or raise `timeout_ms` if it needs longer"
                .to_string(),
        ),
        E::OutOfMemory { .. } => (
            file.table_span("plugins", plugin),
            format!("plugins.{plugin}.memory_mb"),
            "raise `memory_mb`, or fix the plugin".to_string(),
        ),
        _ => (
            file.table_span("plugins", plugin),
            format!("plugins.{plugin}"),
            "the plugin is at fault: rebuild it against aimass-sdk, or replace it".to_string(),
        ),
    };
    file.error(span, key, format!("node `{node}`: {error}"))
        .fix(fix)
}

fn param_value(value: &ParamConfig) -> ParamValue {
    match value {
        ParamConfig::Flag(b) => ParamValue::Flag(*b),
        ParamConfig::Integer(i) => ParamValue::Integer(*i),
        ParamConfig::Number(n) => ParamValue::Number(*n),
        ParamConfig::Text(s) => ParamValue::Text(s.clone()),
        ParamConfig::Texts(v) => ParamValue::Texts(v.clone()),
        ParamConfig::Numbers(v) => ParamValue::Numbers(v.clone()),
    }
}
/// What to do about a plugin that did not load, from what is at its path.
fn plugin_fix(path: &Path, has_build: bool) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        // A build that ran may have named its output otherwise: cargo
        // writes a crate `my-plugin` as `my_plugin.wasm`.
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sibling = path.with_file_name(name.replace('-', "_"));
        if sibling != path && sibling.is_file() {
            return format!(
                "`path` names a file that is not there, but `{}` is (cargo writes \
                 dashes in crate names as underscores); point `path` at it",
                sibling.display()
            );
        }
        return if has_build {
            "build it first (`aimass serve --build` runs its build command in the \
             config's folder), and check that `path` names what it writes"
                .into()
        } else {
            "check `path`, or add a `build` command".into()
        };
    };
    let mut head = [0u8; 4];
    let native = std::io::Read::read_exact(&mut file, &mut head).is_ok()
        && (head == *b"\x7fELF"
            || head[..2] == *b"MZ"
            || matches!(
                head,
                [0xcf | 0xce, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe]
            ));
    if native {
        "this is a native library, not a WebAssembly component: build the plugin with \
         `cargo build --target wasm32-wasip2` and point `path` at its `.wasm`"
            .into()
    } else {
        format!(
            "`aimass inspect {}` shows what the file is and what it lacks",
            path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::plugin_fix;

    #[test]
    fn a_plugin_that_does_not_load_gets_the_fix_its_file_calls_for() {
        let dir = std::env::temp_dir().join(format!("aimass-plugin-fix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("my_plugin.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("native.so"), b"\x7fELF\x02\x01").unwrap();
        let renamed = plugin_fix(&dir.join("my-plugin.wasm"), true);
        assert!(renamed.contains("my_plugin.wasm` is"), "{renamed}");
        let native = plugin_fix(&dir.join("native.so"), true);
        assert!(native.contains("native library"), "{native}");
        let missing = plugin_fix(&dir.join("other.wasm"), true);
        assert!(missing.starts_with("build it first"), "{missing}");
        let unbuilt = plugin_fix(&dir.join("other.wasm"), false);
        assert!(unbuilt.contains("add a `build` command"), "{unbuilt}");
        let wrong = plugin_fix(&dir.join("my_plugin.wasm"), true);
        assert!(wrong.contains("aimass inspect"), "{wrong}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
