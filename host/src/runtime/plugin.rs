//! Loading a plugin: digest pin, component check, compilation, and the
//! contract check, each refused with a message that names the plugin.

use super::bindings::{MODEL_EXPORT, MODEL_FUNCTIONS, SubModelIndices, SubModelPre};
use super::cache::CompileCache;
use super::error::RuntimeError;
use super::state::HostState;
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// A loaded, validated plugin, ready to be instantiated any number of times.
#[derive(Clone)]
pub struct Plugin {
    name: String,
    digest: String,
    from_cache: bool,
    pre: SubModelPre<HostState>,
    indices: SubModelIndices,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The name the operator gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sha256 of its `.wasm`, lowercase hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether its compiled code came from the on-disk compile cache.
    pub fn compiled_from_cache(&self) -> bool {
        self.from_cache
    }

    /// The names of the interfaces and functions it imports.
    pub fn imports(&self, engine: &Engine) -> Vec<String> {
        let ty = self.pre.instance_pre().component().component_type();
        ty.imports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The names of the interfaces and functions it exports.
    pub fn exports(&self, engine: &Engine) -> Vec<String> {
        let ty = self.pre.instance_pre().component().component_type();
        ty.exports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    pub(crate) fn pre(&self) -> &SubModelPre<HostState> {
        &self.pre
    }

    pub(crate) fn indices(&self) -> &SubModelIndices {
        &self.indices
    }

    /// Reads and loads the `.wasm` at `path`.
    pub fn load_file(
        engine: &Engine,
        linker: &Linker<HostState>,
        cache: Option<&CompileCache>,
        name: &str,
        path: &Path,
        pinned_sha256: Option<&str>,
    ) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            plugin: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let digest = sha256_hex(&bytes);
        if let Some(expected) = pinned_sha256
            && !expected.eq_ignore_ascii_case(&digest)
        {
            return Err(RuntimeError::DigestMismatch {
                plugin: name.to_string(),
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual: digest,
            });
        }
        Self::load_bytes(engine, linker, cache, name, &bytes, digest)
    }

    fn load_bytes(
        engine: &Engine,
        linker: &Linker<HostState>,
        cache: Option<&CompileCache>,
        name: &str,
        bytes: &[u8],
        digest: String,
    ) -> Result<Self, RuntimeError> {
        let plugin = || name.to_string();
        check_component_header(bytes).map_err(|reason| RuntimeError::NotAComponent {
            plugin: plugin(),
            reason,
        })?;
        let compiled = match cache {
            Some(cache) => cache.load_or_compile(engine, bytes, &digest),
            None => Component::new(engine, bytes).map(|component| (component, false)),
        };
        let (component, from_cache) = compiled.map_err(|e| RuntimeError::Invalid {
            plugin: plugin(),
            reason: format!("{e:#}"),
        })?;
        check_exports(engine, &component).map_err(|reason| RuntimeError::WrongWorld {
            plugin: plugin(),
            reason,
        })?;
        let instance_pre =
            linker
                .instantiate_pre(&component)
                .map_err(|e| RuntimeError::UnsupportedImport {
                    plugin: plugin(),
                    reason: format!("{e:#}"),
                })?;
        let wrong = |e: wasmtime::Error| RuntimeError::WrongWorld {
            plugin: plugin(),
            reason: format!("{e:#}"),
        };
        let indices = SubModelIndices::new(&instance_pre).map_err(wrong)?;
        let pre = SubModelPre::new(instance_pre).map_err(wrong)?;
        Ok(Plugin {
            name: name.to_string(),
            digest,
            from_cache,
            pre,
            indices,
        })
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Tells a component from a core module before compiling, because the
/// compiler's own message for a core module is cryptic.
fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE_LAYER: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("the file does not start with the WebAssembly magic bytes".into());
    }
    if bytes[4..8] == CORE_MODULE_LAYER {
        return Err(
            "it is a core module; build it with `--target wasm32-wasip2` \
             so that rustc emits a component"
                .into(),
        );
    }
    Ok(())
}

/// Checks that the component exports the contract's `model` interface with
/// all of its functions; the message lists what was found instead.
fn check_exports(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let Some(export) = ty.get_export(engine, MODEL_EXPORT) else {
        let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
        let other_version = exports
            .iter()
            .find(|name| name.starts_with("aimass:plugin/model@"));
        return Err(match other_version {
            Some(found) => format!(
                "it exports `{found}`, but this host speaks `{MODEL_EXPORT}`; \
                 rebuild it against aimass-sdk {} (contract 0.2.0 added BYTES and the \
                 other protocol types)",
                env!("CARGO_PKG_VERSION")
            ),
            None => format!(
                "it does not export `{MODEL_EXPORT}` (its exports: [{}]); \
                 build it with aimass-sdk and `export_sub_model!`",
                exports.join(", ")
            ),
        });
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(format!("its `{MODEL_EXPORT}` export is not an interface"));
    };
    let functions: Vec<&str> = instance.exports(engine).map(|(name, _)| name).collect();
    let missing: Vec<&str> = MODEL_FUNCTIONS
        .into_iter()
        .filter(|f| !functions.contains(f))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "its `{MODEL_EXPORT}` export lacks function(s) [{}]",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_tells_core_modules_from_components() {
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
        let err = check_component_header(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(err.contains("core module"), "{err}");
        assert!(check_component_header(b"hello").is_err());
    }

    #[test]
    fn digest_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
