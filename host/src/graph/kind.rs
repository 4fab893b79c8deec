//! What every hierarchy kind implements, and the one list of kinds.

use super::builder::Builder;
use super::model::{Built, Kind};
use super::refs::ModelRef;
use crate::config::{Config, ConfigError, ConfigFile};

/// One hierarchy kind's section of the config and everything the host asks
/// of a kind, implemented in the kind's own file: adding a kind is its file,
/// its config table, a `Kind` and a line in [`sections`].
pub(super) trait HierarchySection: Sync {
    /// Which kind it is.
    fn kind(&self) -> Kind;

    /// Where hierarchy `name`'s table is in the file (dotted).
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.kind().name())
    }

    /// The operator's `max_batch_rows`, if set.
    fn max_batch_rows(&self) -> Option<u32>;

    /// The models it names, with where.
    fn refs(&self, name: &str) -> Vec<ModelRef>;

    /// Its own checks of its section (references are checked for all kinds
    /// together).
    fn check(&self, file: &ConfigFile, name: &str, errors: &mut Vec<ConfigError>);

    /// Its signature and run, over members already built.
    fn build(&self, b: &Builder, name: &str) -> Result<Built, ConfigError>;
}

/// One hierarchy's section of the config.
pub(super) type Section<'a> = &'a dyn HierarchySection;

/// Every hierarchy in the config with its section: the one list of kinds.
pub(super) fn sections(c: &Config) -> Vec<(&String, Section<'_>)> {
    fn each<'a, T: HierarchySection>(
        all: &mut Vec<(&'a String, Section<'a>)>,
        table: &'a std::collections::BTreeMap<String, T>,
    ) {
        all.extend(table.iter().map(|(name, h)| (name, h as Section<'a>)));
    }
    let mut all = Vec::new();
    each(&mut all, &c.sequence);
    each(&mut all, &c.dag);
    each(&mut all, &c.ensemble);
    each(&mut all, &c.switch);
    each(&mut all, &c.cascade);
    each(&mut all, &c.splitter);
    each(&mut all, &c.shadow);
    all.extend(c.rollouts.values().map(|r| (&r.key, r as Section<'_>)));
    all
}
