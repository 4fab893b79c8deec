//! Compiled components cached on disk as `.cwasm`, keyed by the engine's
//! compatibility hash and the component's sha256, so that a second start
//! deserialises (about 0.1 ms) instead of running cranelift (tens of ms).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(engine: &Engine, dir: &Path) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// Where the compiled form of the component with `digest` lives.
    pub fn path_for(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}-{digest}.cwasm", self.engine_key))
    }

    /// The component with `digest`, from the cache if it is there (`true`),
    /// else compiled from `bytes` and stored for next time (`false`).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(digest);
        // Read into memory rather than mmap the file: a mapped file that
        // someone truncates under a running host would crash it (SIGBUS).
        if let Ok(cached) = std::fs::read(&path) {
            // SAFETY: this directory holds only files written below, from
            // components compiled by an engine with the same compatibility
            // hash (part of the file name). wasmtime also checks the file's
            // header against the engine and refuses a mismatch, which then
            // falls through to a fresh compile.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize(engine, &cached) } {
                Ok(component) => return Ok((component, true)),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    "ignoring unusable compile cache entry: {error:#}"
                ),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        // SAFETY: `compiled` was produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        if let Err(error) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), "cannot write compile cache: {error}");
        }
        Ok((component, false))
    }

    /// Writes through a temporary file and a rename, so a concurrent reader
    /// never sees half a file.
    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, compiled)?;
        std::fs::rename(&temporary, path)
    }
}
