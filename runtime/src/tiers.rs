//! The tier configuration file (design §4), read by all three daemons, and
//! the object store behind each tier.
//!
//! ```toml
//! [[tiers]]
//! name = "hot"
//! url = "file://${STRATA_DATA_DIR}/hot"   # file://, memory://, s3://, gs://, az://
//! idle_days = 0                           # objects idle this long may live here
//! storage_usd_per_gb_month = 0.10
//! [tiers.options]                         # store options; credentials best from the environment
//! ```
//!
//! Tiers are listed fastest first. `${VAR}` and `${VAR:-default}` in the file
//! are replaced from the environment (and from `STRATA_DATA_DIR`'s resolved
//! value) before parsing.

use std::{collections::BTreeMap, path::Path as FsPath, sync::Arc};

use anyhow::{Context, bail};
use object_store::{
    Attribute, Attributes, ClientConfigKey, ObjectStore,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder},
    client::{HttpClient, HttpConnector, ReqwestConnector},
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
    local::LocalFileSystem,
    memory::InMemory,
    multipart::MultipartStore,
    path::Path,
};
use serde::Deserialize;
use url::Url;

/// The whole tier file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Tiers, fastest (and dearest) first.
    pub tiers: Vec<Tier>,
}

/// One storage tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Name used in events, jobs and statuses.
    pub name: String,
    /// Where its objects live: `file:///abs/dir`, `memory://`, `s3://bucket/prefix`, ...
    pub url: String,
    /// Store options (endpoint, region, allow_http, ...). Credentials come
    /// from the environment (AWS_ACCESS_KEY_ID, ...); object_store's
    /// credential keys are taken here too (best as `${VAR}`), so the
    /// options are never logged.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The first decision rule: an object idle at least this many days
    /// belongs on this tier or a slower one.
    #[serde(default)]
    pub idle_days: f64,
    /// Storage price, USD per GB-month.
    #[serde(default)]
    pub storage_usd_per_gb_month: f64,
    /// Retrieval price, USD per GB read out.
    #[serde(default)]
    pub retrieval_usd_per_gb: f64,
    /// Write request price, USD per 1,000 requests.
    #[serde(default)]
    pub put_usd_per_1k: f64,
    /// Read request price, USD per 1,000 requests.
    #[serde(default)]
    pub get_usd_per_1k: f64,
    /// Minimum storage duration; leaving earlier is charged pro rata.
    #[serde(default)]
    pub min_storage_days: f64,
    /// Typical time to first byte, milliseconds.
    #[serde(default)]
    pub first_byte_ms: f64,
    /// mover-svc's cap on requests per second to this tier (all jobs together).
    #[serde(default)]
    pub max_ops_per_sec: Option<u32>,
    /// mover-svc's cap on bytes per second read from or written to this tier.
    #[serde(default)]
    pub max_bytes_per_sec: Option<u64>,
    /// A price preset (`aws-s3-standard-ia`, `azure-cool`, `gcs-nearline`, ...)
    /// that policy-svc fills the prices from; fields written in the file win.
    #[serde(default)]
    pub preset: Option<String>,
    /// Who hosts the tier (`aws`, `azure`, `gcp`, `local`, ...): a move
    /// between two providers pays the source's egress.
    #[serde(default)]
    pub provider: Option<String>,
    /// Egress price, USD per GB leaving this tier's provider.
    #[serde(default)]
    pub egress_usd_per_gb: f64,
    /// Smallest size billed for storage (S3 IA and Glacier IR: 128 KB).
    #[serde(default)]
    pub min_billable_bytes: u64,
    /// Bytes billed on top of each object (S3 Glacier: 40 KB of metadata).
    #[serde(default)]
    pub overhead_bytes: u64,
    /// The storage class every object written to this tier gets: S3's
    /// `x-amz-storage-class` (`STANDARD_IA`, `GLACIER_IR`, ...), GCS's
    /// storage class (`NEARLINE`, ...), Azure's access tier (`Cool`, ...).
    /// Unset, it is the preset's class ([`preset_storage_class`]), or none;
    /// `""` sends none (for S3-compatible servers that know no classes).
    #[serde(default)]
    pub storage_class: Option<String>,
    /// On an S3 tier whose class is archived (Glacier Flexible Retrieval,
    /// Deep Archive): how many days a restored copy stays readable. mover-svc
    /// asks S3 to restore an object it cannot read; default 7.
    #[serde(default)]
    pub restore_days: Option<u32>,
    /// How fast a restore goes: on S3 the retrieval tier, `Standard`
    /// (default), `Bulk` or `Expedited` (Glacier Flexible Retrieval only);
    /// on Azure the rehydrate priority, `Standard` (default) or `High`.
    #[serde(default)]
    pub restore_tier: Option<String>,
    /// An auto-tiering class (S3 Intelligent-Tiering): the store itself bills
    /// an object at a lower price once it has gone unread for a while, and
    /// at `storage_usd_per_gb_month` again from its next read. Filled by the
    /// `aws-s3-intelligent-tiering` preset.
    #[serde(default)]
    pub auto_tiering: Option<AutoTiering>,
    /// The fields written in the file for this tier (filled by
    /// [`TierConfig::parse`]), so that a preset never overrides them.
    #[serde(skip)]
    pub explicit: std::collections::BTreeSet<String>,
}

/// How an auto-tiering class prices an object by the days since it was
/// last read (or written, or moved in).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutoTiering {
    /// The access tiers below the first: from `idle_days` without a read,
    /// `storage_usd_per_gb_month`; in increasing `idle_days`.
    pub steps: Vec<IdleStep>,
    /// The monitoring fee, USD per 1,000 objects and month.
    #[serde(default)]
    pub monitoring_usd_per_1k: f64,
    /// Objects smaller than this are never moved down nor monitored: they
    /// pay the first price and no fee.
    #[serde(default)]
    pub min_bytes: u64,
}

impl AutoTiering {
    /// Steps in increasing idle days at prices that never rise, prices and
    /// fee finite and not negative.
    fn check(&self) -> anyhow::Result<()> {
        let (mut last_days, mut last_price) = (0.0, f64::INFINITY);
        for step in &self.steps {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !ok(step.idle_days)
                || step.idle_days > MAX_DAYS
                || !ok(step.storage_usd_per_gb_month)
                || step.idle_days <= last_days
                || step.storage_usd_per_gb_month > last_price
            {
                bail!(
                    "steps must have increasing positive idle_days (at most {MAX_DAYS}) and prices >= 0 that never rise, got {step:?}"
                );
            }
            (last_days, last_price) = (step.idle_days, step.storage_usd_per_gb_month);
        }
        if !(self.monitoring_usd_per_1k.is_finite() && self.monitoring_usd_per_1k >= 0.0) {
            bail!("monitoring_usd_per_1k must be >= 0");
        }
        Ok(())
    }
}

impl Tier {
    /// Where the tier's objects live, as a string that starts with another
    /// tier's exactly when one's objects lie within the other's: the store
    /// (scheme, bucket or container, the endpoint option under any of its
    /// names) and the folder, with a trailing `/`. Spellings of one place
    /// are one: `s3a://` is `s3://`, `abfss://c@account...` is `az://c`, an
    /// existing folder is named through its links. `None` for `memory://`,
    /// each tier its own store.
    fn root(&self) -> Option<String> {
        let url = Url::parse(&self.url).ok()?;
        let (scheme, bucket) = match url.scheme() {
            "memory" => return None,
            "s3a" => ("s3", url.host_str()),
            "azure" => ("az", url.host_str()),
            // `abfs[s]://container@account.dfs.core.windows.net/path`.
            "abfs" | "abfss" if !url.username().is_empty() => ("az", Some(url.username())),
            other => (other, url.host_str()),
        };
        let path = match scheme {
            // The folder as the file system names it: `//` and `.` are
            // spellings of the same folder, and so is a link to it.
            "file" => match url.to_file_path() {
                Ok(dir) => resolved(&dir).display().to_string(),
                Err(()) => url.path().to_owned(),
            },
            // The prefix as the store reads it, decoded: `%2F` is a `/`.
            _ => format!("/{}", self.prefix(&url).ok()?.as_ref()),
        };
        let endpoint = self
            .options
            .iter()
            .find(|(k, _)| match scheme {
                "s3" => matches!(k.parse(), Ok(AmazonS3ConfigKey::Endpoint)),
                _ => k.as_str() == "endpoint",
            })
            .map_or("", |(_, v)| v.trim().trim_end_matches('/'));
        Some(format!(
            "{endpoint} {scheme}://{}{}/",
            bucket.unwrap_or(""),
            path.trim_end_matches('/')
        ))
    }

    /// The path inside the store under which the tier's objects live: the
    /// URL's path, which must be a valid object path (no empty segment as in
    /// `s3://bucket/warm//`: read as no prefix at all, the tier would write
    /// at the bucket's root, over the other tiers' objects). A `file://`
    /// tier's path names its folder instead, and has none.
    fn prefix(&self, url: &Url) -> anyhow::Result<Path> {
        if url.scheme() == "file" {
            return Ok(Path::default());
        }
        Path::from_url_path(url.path()).with_context(|| {
            format!(
                "tier {}: url {:?}: the path {:?} is not a valid object path",
                self.name,
                self.url,
                url.path()
            )
        })
    }

    /// Prices, days and latencies must be finite and not negative: the cost
    /// model adds them up, and one NaN would make every total NaN.
    fn check_numbers(&self) -> anyhow::Result<()> {
        for (field, value) in [
            ("idle_days", self.idle_days),
            ("storage_usd_per_gb_month", self.storage_usd_per_gb_month),
            ("retrieval_usd_per_gb", self.retrieval_usd_per_gb),
            ("put_usd_per_1k", self.put_usd_per_1k),
            ("get_usd_per_1k", self.get_usd_per_1k),
            ("min_storage_days", self.min_storage_days),
            ("first_byte_ms", self.first_byte_ms),
            ("egress_usd_per_gb", self.egress_usd_per_gb),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                bail!(
                    "tier {}: {field} must be a finite number >= 0, not {value}",
                    self.name
                );
            }
        }
        // Days and ms are added to times in ms: a century at most keeps
        // those sums far from what an i64 holds.
        for (field, value, most) in [
            ("idle_days", self.idle_days, MAX_DAYS),
            ("min_storage_days", self.min_storage_days, MAX_DAYS),
            ("first_byte_ms", self.first_byte_ms, MAX_DAYS * 86_400_000.0),
        ] {
            if value > most {
                bail!(
                    "tier {}: {field} must be at most {most} (a century), not {value}",
                    self.name
                );
            }
        }
        Ok(())
    }
}

/// The most days a day count may give, in a tier file or a flag: a
/// century. Days are added to times in ms, and this keeps those sums far
/// from what an i64 holds.
pub const MAX_DAYS: f64 = 36_500.0;

/// One access tier of an [`AutoTiering`] class.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdleStep {
    pub idle_days: f64,
    pub storage_usd_per_gb_month: f64,
}

impl TierConfig {
    /// Reads, expands and checks a tier file. `vars` take precedence over the
    /// environment in `${...}` expansion.
    pub fn load(path: &FsPath, vars: &[(&str, String)]) -> anyhow::Result<Self> {
        let raw = std::fs::read_to_string(path)
            .with_context(|| format!("read tier file {}", path.display()))?;
        Self::parse(&raw, vars).with_context(|| format!("parse tier file {}", path.display()))
    }

    /// Parses tier-file text; see [`TierConfig::load`].
    pub fn parse(raw: &str, vars: &[(&str, String)]) -> anyhow::Result<Self> {
        let expanded = expand_vars(raw, vars)?;
        let mut config: TierConfig = toml::from_str(&expanded)?;
        let table: toml::Table = toml::from_str(&expanded)?;
        if let Some(toml::Value::Array(raw_tiers)) = table.get("tiers") {
            for (tier, raw) in config.tiers.iter_mut().zip(raw_tiers) {
                if let toml::Value::Table(fields) = raw {
                    tier.explicit = fields.keys().cloned().collect();
                }
            }
        }
        if config.tiers.is_empty() {
            bail!("no tiers configured");
        }
        let mut seen = std::collections::HashSet::new();
        for tier in &config.tiers {
            strata_proto::validate::tier_name("name", &tier.name)?;
            if !seen.insert(tier.name.as_str()) {
                bail!("tier {:?} is configured twice", tier.name);
            }
            let url = Url::parse(&tier.url)
                .with_context(|| format!("tier {}: url {:?}", tier.name, tier.url))?;
            tier.prefix(&url)?;
            tier.check_numbers()?;
            if let Some(auto) = &tier.auto_tiering {
                auto.check()
                    .with_context(|| format!("tier {}: auto_tiering", tier.name))?;
            }
        }
        let roots: Vec<(&Tier, String)> = config
            .tiers
            .iter()
            .filter_map(|t| Some((t, t.root()?)))
            .collect();
        for (i, (a, root_a)) in roots.iter().enumerate() {
            for (b, root_b) in &roots[i + 1..] {
                if root_a.starts_with(root_b.as_str()) || root_b.starts_with(root_a.as_str()) {
                    bail!(
                        "tiers {} ({}) and {} ({}) share storage: each tier needs a place of \
                         its own, or a move between them would write over its source",
                        a.name,
                        a.url,
                        b.name,
                        b.url
                    );
                }
            }
        }
        Ok(config)
    }

    /// The tier called `name`.
    pub fn get(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// Position of `name` in the list, 0 for the fastest.
    pub fn rank(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }
}

/// A tier's store, with the path prefix under which its objects live.
#[derive(Debug, Clone)]
pub struct TierStore {
    /// The tier's name.
    pub name: String,
    /// The backend.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix inside the store (the path part of an `s3://bucket/prefix` URL).
    pub prefix: Path,
    /// The tier's URL, for people.
    pub url: String,
    /// The tier's caps on operations and bytes per second, shared by every
    /// job that touches it.
    pub limits: Arc<crate::limits::Limits>,
    /// Set for a `file://` tier whose `store` is the plain local file system:
    /// the mover copies between such tiers directly, and removes the staging
    /// files (`<object>#<n>`) that interrupted uploads leave there.
    pub local: Option<LocalTier>,
    /// The same store's multipart API where the mover uses it (S3 and
    /// `memory://`): an upload's id is known before its first part, so an
    /// upload cut short by a crash can be aborted at the next start.
    pub multipart: Option<Multipart>,
    /// What every write to this tier carries: its storage class
    /// ([`Tier::storage_class`]), if it has one.
    pub attributes: Attributes,
    /// Set on an S3 tier: what the mover needs for the requests object_store
    /// does not make (restoring archived objects).
    pub s3: Option<S3Tier>,
    /// Set on an Azure tier: the same, for rehydrating archived blobs and
    /// archiving verified copies.
    pub azure: Option<AzureTier>,
    /// Objects written here cannot be read until restored: the tier's class
    /// is S3 Glacier Flexible Retrieval or Deep Archive. A copy to it is
    /// verified by its size and by the store's own check of each request's
    /// signed SHA-256, not by reading it back.
    pub archived: bool,
    /// The store can write an object only if its key is empty
    /// (`If-None-Match: *`, a link on files): every store but an S3 one
    /// whose option `conditional_put = "disabled"` says it cannot.
    pub conditional_put: bool,
    /// The store deletes an object only if it is the one named (S3 and
    /// Azure: `If-Match` on the delete): off where `conditional_put` is, or
    /// where Strata's own option `conditional_delete = "disabled"` says the
    /// store ignores the condition (MinIO deletes whatever it holds); the
    /// mover then looks before it deletes.
    pub conditional_delete: bool,
}

/// An Azure tier's store and what signing a request of one's own takes.
#[derive(Debug, Clone)]
pub struct AzureTier {
    /// The store: its credentials sign, and its URLs name blobs as its own
    /// requests do.
    pub store: Arc<MicrosoftAzure>,
    /// The storage account requests are signed for.
    pub account: String,
    /// An HTTP client with the tier's client options (`allow_http`, ...).
    pub client: HttpClient,
    /// The access tier a verified copy is moved to in place (`Archive`):
    /// a blob in it could not be read back, so it is written in the
    /// account's default tier and archived once verified.
    pub seal_tier: Option<String>,
    /// The priority of rehydrations from Archive: `Standard` or `High`.
    pub rehydrate_priority: String,
}

/// The storage account an Azure URL names in its host, if it does
/// (`abfss://container@account.dfs.core.windows.net/`, sovereign clouds'
/// hosts alike); `az://container` names none.
fn account_of(url: &Url) -> Option<String> {
    let Some(url::Host::Domain(host)) = url.host() else {
        return None;
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let (account, _) = host.split_once('.')?;
    Some(account.to_owned())
}

/// Whether an Azure access tier is Archive (any case).
fn is_archive_tier(class: &str) -> bool {
    class.eq_ignore_ascii_case("archive")
}

/// A boolean option as object_store reads one (`true`, `1`, `yes`, `y`,
/// `on`, in any case).
fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "y" | "on"
    )
}

/// An S3 tier's store and what signing a request of one's own takes.
#[derive(Debug, Clone)]
pub struct S3Tier {
    /// The store: its credentials sign, and its URLs name objects as its
    /// own requests do.
    pub store: Arc<AmazonS3>,
    /// The region requests are signed for.
    pub region: String,
    /// An HTTP client with the tier's client options (`allow_http`, ...).
    pub client: HttpClient,
    /// Days a restored copy stays readable ([`Tier::restore_days`]);
    /// `None` on an Intelligent-Tiering tier, whose archive tiers restore
    /// an object to Frequent Access for good and refuse a number of days.
    pub restore_days: Option<u32>,
    /// The retrieval tier of restores ([`Tier::restore_tier`]).
    pub restore_tier: String,
}

/// A store's multipart API ([`TierStore::multipart`]).
#[derive(Clone)]
pub struct Multipart(pub Arc<dyn MultipartStore>);

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Multipart")
    }
}

/// A `file://` tier's folder and its file system store.
#[derive(Debug, Clone)]
pub struct LocalTier {
    /// The tier's folder, canonical: the store's paths start with it.
    pub root: std::path::PathBuf,
    /// The store, for its mapping of object paths to files.
    pub fs: Arc<LocalFileSystem>,
    /// Whether writes are fsynced (the tier option `fsync`, on by default).
    pub fsync: bool,
}

impl LocalTier {
    /// The file that holds `location`.
    pub fn file_of(&self, location: &Path) -> anyhow::Result<std::path::PathBuf> {
        Ok(self.fs.path_to_filesystem(location)?)
    }
}

impl TierStore {
    /// Where `key` lives in this tier's store. Fails for a key that could name
    /// anything outside the tier (validated first, then parsed strictly).
    pub fn location(&self, key: &str) -> anyhow::Result<Path> {
        strata_proto::validate::object_key(key)?;
        if self.local.is_some()
            && let Some(segment) = key.split('/').find(|s| is_staging_name(s))
        {
            bail!(
                "object key {key:?}: on a file:// tier a segment ending in '#' and digits \
                 ({segment:?}) is the name of another object's staged upload"
            );
        }
        let relative = Path::parse(key).with_context(|| format!("object key {key:?}"))?;
        Ok(self.prefix.parts().chain(relative.parts()).collect())
    }

    /// The object key of a location listed from this tier, if it is one.
    pub fn key_of(&self, location: &Path) -> Option<String> {
        let rest: Vec<_> = location.prefix_match(&self.prefix)?.collect();
        let key = rest
            .iter()
            .map(|p| p.as_ref())
            .collect::<Vec<_>>()
            .join("/");
        strata_proto::validate::object_key(&key).ok().map(|_| key)
    }

    /// The storage class this tier's objects are billed in, once the mover
    /// has written them: the class of its writes, or the Azure access tier
    /// a verified copy is set to.
    pub fn storage_class(&self) -> Option<String> {
        self.attributes
            .get(&Attribute::StorageClass)
            .map(|c| c.to_string())
            .or_else(|| self.azure.as_ref().and_then(|a| a.seal_tier.clone()))
    }

    /// A URL naming `key` on this tier, for people and lookups.
    pub fn url_of(&self, key: &str) -> String {
        match self.url.trim_end_matches('/') {
            // A URL with no host and no path (`memory://`) keeps its `//`.
            base if base.ends_with(':') => format!("{base}///{key}"),
            base => format!("{base}/{key}"),
        }
    }
}

/// Whether a path segment has the form `<name>#<digits>`: that of the files
/// object_store's `LocalFileSystem` stages an upload of `<name>` in (and the
/// mover's direct copies too). On a `file://` tier no object key may have
/// such a segment, or cleaning up after an interrupted upload of `<name>`
/// would delete that object (object_store itself checks only the text after
/// a name's first `#`, so it accepts `a#b#1`, a staged name of `a#b`).
fn is_staging_name(segment: &str) -> bool {
    segment
        .rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The storage class of each cloud price preset: what an object must be
/// written with to be billed as the preset says, and the URL schemes of the
/// store that knows the class. Policy-svc's presets
/// (`policy-svc/src/presets.rs`) are checked to have one each.
pub const PRESET_STORAGE_CLASSES: &[(&str, &[&str], &str)] = &[
    ("aws-s3-standard", S3, "STANDARD"),
    ("aws-s3-standard-ia", S3, "STANDARD_IA"),
    ("aws-s3-glacier-ir", S3, "GLACIER_IR"),
    ("aws-s3-glacier-flexible", S3, "GLACIER"),
    ("aws-s3-deep-archive", S3, "DEEP_ARCHIVE"),
    ("aws-s3-intelligent-tiering", S3, "INTELLIGENT_TIERING"),
    ("azure-hot", AZURE, "Hot"),
    ("azure-cool", AZURE, "Cool"),
    ("azure-cold", AZURE, "Cold"),
    ("azure-archive", AZURE, "Archive"),
    ("gcs-standard", GCS, "STANDARD"),
    ("gcs-nearline", GCS, "NEARLINE"),
    ("gcs-coldline", GCS, "COLDLINE"),
    ("gcs-archive", GCS, "ARCHIVE"),
];

const S3: &[&str] = &["s3", "s3a"];
const AZURE: &[&str] = &["az", "azure", "abfs", "abfss"];
const GCS: &[&str] = &["gs"];

/// The storage class of the price preset `preset`, if it is a known one.
pub fn preset_storage_class(preset: &str) -> Option<&'static str> {
    preset_class(preset).map(|(_, class)| class)
}

fn preset_class(preset: &str) -> Option<(&'static [&'static str], &'static str)> {
    PRESET_STORAGE_CLASSES
        .iter()
        .find(|(name, _, _)| *name == preset)
        .map(|(_, schemes, class)| (*schemes, *class))
}

impl Tier {
    /// The storage class objects written to this tier get: the one written
    /// in the file (`""`: none), else its preset's, else none.
    pub fn storage_class(&self) -> Option<&str> {
        match &self.storage_class {
            Some(class) => Some(class.as_str()).filter(|c| !c.is_empty()),
            None => self.preset.as_deref().and_then(preset_storage_class),
        }
    }

    /// The write attributes of an object store behind `scheme`. A local
    /// folder has no storage classes: there a preset prices the tier as if
    /// it were the class, and a class written out is refused.
    fn write_attributes(&self, scheme: &str) -> anyhow::Result<Attributes> {
        let mut attributes = Attributes::new();
        let Some(class) = self.storage_class() else {
            return Ok(attributes);
        };
        match (
            &self.storage_class,
            self.preset.as_deref().and_then(preset_class),
        ) {
            (Some(_), _) if scheme == "file" => bail!(
                "tier {}: a file:// tier has no storage class (storage_class = {class:?})",
                self.name
            ),
            // A local folder or memory priced as a cloud class: no class to send.
            (None, _) if scheme == "file" => return Ok(attributes),
            (None, Some((schemes, _))) if scheme != "memory" && !schemes.contains(&scheme) => {
                bail!(
                    "tier {}: preset {:?} is a class of {}:// stores, not of {scheme}://; \
                     write storage_class = \"\" to price the tier as the preset without \
                     sending its class",
                    self.name,
                    self.preset.as_deref().unwrap_or_default(),
                    schemes[0]
                )
            }
            // Azure's Archive tier is set once a copy has been read back
            // ([`AzureTier::seal_tier`]), not on the write.
            _ if AZURE.contains(&scheme) && is_archive_tier(class) => return Ok(attributes),
            _ => {}
        }
        if !class
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!(
                "tier {}: storage class {class:?} is not a class name (letters, digits, '_', '-')",
                self.name
            );
        }
        attributes.insert(Attribute::StorageClass, class.to_owned().into());
        Ok(attributes)
    }

    /// Whether the tier's class on a `scheme` store makes objects unreadable
    /// as soon as they are written (S3's archive classes). Azure's Archive
    /// tier is set after the read-back ([`AzureTier::seal_tier`]).
    fn is_archived(&self, scheme: &str) -> bool {
        matches!(self.storage_class(), Some("GLACIER" | "DEEP_ARCHIVE")) && S3.contains(&scheme)
    }

    /// The tier's options as a store builder's configuration keys; an
    /// option the store does not know is refused.
    fn store_options<K>(&self) -> anyhow::Result<Vec<(K, &String)>>
    where
        K: std::str::FromStr,
        K::Err: std::error::Error + Send + Sync + 'static,
    {
        self.options
            .iter()
            .filter(|(k, _)| k.as_str() != CONDITIONAL_DELETE)
            .map(|(k, v)| {
                let key = k
                    .parse()
                    .with_context(|| format!("tier {} option {k:?}", self.name))?;
                Ok((key, v))
            })
            .collect()
    }

    /// An HTTP client for the requests the mover makes itself, with the
    /// client options the store has: those in the file (`proxy_url`,
    /// `timeout`, ...) and `allow_http` as the store resolved it (the
    /// environment's included).
    fn http_client(&self, allow_http: Option<String>) -> anyhow::Result<HttpClient> {
        let mut options = object_store::ClientOptions::new();
        for (k, v) in &self.options {
            if let Ok(key) = k.parse::<ClientConfigKey>() {
                options = options.with_config(key, v);
            }
        }
        if let Some(allow) = allow_http {
            options = options.with_config(ClientConfigKey::AllowHttp, allow);
        }
        Ok(ReqwestConnector::default().connect(&options)?)
    }

    /// The retrieval tier of S3 restores, checked.
    fn restore_tier(&self) -> anyhow::Result<String> {
        match self.restore_tier.as_deref() {
            None => Ok("Standard".into()),
            Some(t @ ("Standard" | "Bulk" | "Expedited")) => Ok(t.into()),
            Some(other) => bail!(
                "tier {}: restore_tier {other:?} is not Standard, Bulk or Expedited",
                self.name
            ),
        }
    }

    /// The priority of Azure rehydrations (`restore_tier`), checked.
    fn rehydrate_priority(&self) -> anyhow::Result<String> {
        match self.restore_tier.as_deref() {
            None => Ok("Standard".into()),
            Some(t @ ("Standard" | "High")) => Ok(t.into()),
            Some(other) => bail!(
                "tier {}: restore_tier {other:?} is not an Azure rehydrate priority (Standard or High)",
                self.name
            ),
        }
    }

    /// Builds the tier's object store. `file://` folders are created when
    /// missing; S3 credentials come from `AWS_*` variables.
    pub fn open(&self) -> anyhow::Result<TierStore> {
        let url = Url::parse(&self.url).with_context(|| format!("tier {} url", self.name))?;
        let prefix = self.prefix(&url)?;
        let attributes = self.write_attributes(url.scheme())?;
        let archived = self.is_archived(url.scheme());
        let mut s3 = None;
        let mut azure = None;
        let mut local = None;
        let mut multipart = None;
        let mut conditional_put = true;
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match url.scheme() {
            "file" => {
                let dir = url.to_file_path().map_err(|()| {
                    anyhow::anyhow!("tier {}: {} is not a local path", self.name, url)
                })?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("create tier folder {}", dir.display()))?;
                // fsync: a copy the catalog switches to must survive power
                // loss, not only a crash. Option `fsync = "false"` trades
                // that away for speed.
                let fsync = self.options.get("fsync").is_none_or(|v| v != "false");
                let fs = Arc::new(
                    LocalFileSystem::new_with_prefix(&dir)?
                        .with_automatic_cleanup(true)
                        .with_fsync(fsync),
                );
                local = Some(LocalTier {
                    // As the store's own paths are (it canonicalizes it).
                    root: std::fs::canonicalize(&dir)
                        .with_context(|| format!("resolve tier folder {}", dir.display()))?,
                    fs: fs.clone(),
                    fsync,
                });
                (fs, Path::default())
            }
            "memory" => {
                let memory = Arc::new(InMemory::new());
                multipart = Some(Multipart(memory.clone()));
                (memory, prefix)
            }
            "s3" | "s3a" => {
                let mut builder = AmazonS3Builder::from_env().with_url(self.url.as_str());
                for (key, value) in self.store_options()? {
                    builder = builder.with_config(key, value);
                }
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                let allow_http = builder
                    .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp));
                // An archived copy is not read back: S3's check of the
                // SHA-256 each request signs is its verification.
                let unsigned = [
                    AmazonS3ConfigKey::UnsignedPayload,
                    AmazonS3ConfigKey::SkipSignature,
                ]
                .iter()
                .any(|key| builder.get_config_value(key).is_some_and(|v| truthy(&v)));
                if archived && unsigned {
                    bail!(
                        "tier {}: an archived class needs signed payloads (no unsigned_payload or \
                         skip_signature): S3's check of them is what verifies a copy that cannot \
                         be read back",
                        self.name
                    );
                }
                conditional_put = builder
                    .get_config_value(&AmazonS3ConfigKey::ConditionalPut)
                    .is_none_or(|v| v.trim() != "disabled");
                let store = Arc::new(builder.build()?);
                s3 = Some(S3Tier {
                    store: store.clone(),
                    region,
                    client: self.http_client(allow_http)?,
                    restore_days: (self.storage_class() != Some("INTELLIGENT_TIERING"))
                        .then(|| self.restore_days.unwrap_or(7).max(1)),
                    restore_tier: self.restore_tier()?,
                });
                multipart = Some(Multipart(store.clone()));
                (store, prefix)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut builder = MicrosoftAzureBuilder::from_env().with_url(self.url.as_str());
                for (key, value) in self.store_options()? {
                    builder = builder.with_config(key, value);
                }
                let emulator = builder
                    .get_config_value(&AzureConfigKey::UseEmulator)
                    .is_some_and(|v| truthy(&v));
                let account = builder
                    .get_config_value(&AzureConfigKey::AccountName)
                    .or_else(|| account_of(&url))
                    .or_else(|| emulator.then(|| "devstoreaccount1".into()))
                    .with_context(|| {
                        format!("tier {}: no storage account name (account_name)", self.name)
                    })?;
                let allow_http =
                    builder.get_config_value(&AzureConfigKey::Client(ClientConfigKey::AllowHttp));
                let store = Arc::new(builder.build()?);
                // The Archive tier is set once a copy has been read back
                // (Azure changes a blob's tier in place, without a copy).
                let seal_tier = self
                    .storage_class()
                    .filter(|c| is_archive_tier(c))
                    .map(str::to_owned);
                azure = Some(AzureTier {
                    store: store.clone(),
                    account,
                    client: self.http_client(allow_http)?,
                    seal_tier,
                    rehydrate_priority: self.rehydrate_priority()?,
                });
                (store, prefix)
            }
            "gs" => {
                // Credentials from the environment (GOOGLE_SERVICE_ACCOUNT,
                // GOOGLE_APPLICATION_CREDENTIALS, ...), as for S3 and Azure.
                let mut builder = GoogleCloudStorageBuilder::from_env().with_url(self.url.as_str());
                for (key, value) in self.store_options::<GoogleConfigKey>()? {
                    builder = builder.with_config(key, value);
                }
                (Arc::new(builder.build()?), prefix)
            }
            other => bail!("tier {}: unsupported url scheme {other:?}", self.name),
        };
        Ok(TierStore {
            name: self.name.clone(),
            store,
            prefix,
            url: self.url.clone(),
            limits: Arc::new(crate::limits::Limits::new(
                self.max_ops_per_sec,
                self.max_bytes_per_sec,
            )),
            local,
            multipart,
            attributes,
            s3,
            azure,
            archived,
            conditional_put,
            conditional_delete: conditional_put
                && self
                    .options
                    .get(CONDITIONAL_DELETE)
                    .is_none_or(|v| v.trim() != "disabled"),
        })
    }
}

/// `dir` named through its links, as far as it exists (its longest existing
/// ancestor resolved, the rest appended): two spellings of one folder, a
/// link among them, come out the same.
fn resolved(dir: &FsPath) -> std::path::PathBuf {
    let dir: std::path::PathBuf = dir.components().collect();
    for ancestor in dir.ancestors() {
        if let (Ok(real), Ok(rest)) = (std::fs::canonicalize(ancestor), dir.strip_prefix(ancestor))
        {
            return if rest.as_os_str().is_empty() {
                real
            } else {
                real.join(rest)
            };
        }
    }
    dir
}

/// The tier option, Strata's own (no store reads it), that says a store
/// ignores `If-Match` on deletes.
const CONDITIONAL_DELETE: &str = "conditional_delete";

/// Replaces `${NAME}` and `${NAME:-default}` from `vars`, then the environment.
fn expand_vars(raw: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').context("unclosed ${ in tier file")?;
        let (name, default) = match after[..end].split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (&after[..end], None),
        };
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .or_else(|| default.map(str::to_owned))
            .with_context(|| format!("${{{name}}} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[tiers]]
        name = "hot"
        url = "file://${DATA}/hot"
        [[tiers]]
        name = "cold"
        url = "memory://"
        idle_days = 30
        storage_usd_per_gb_month = ${PRICE:-0.004}
    "#;

    #[test]
    fn a_url_path_that_is_no_object_path_is_refused() {
        let parse =
            |url: &str| TierConfig::parse(&format!("[[tiers]]\nname = 'a'\nurl = '{url}'\n"), &[]);
        for good in [
            "s3://bucket",
            "s3://bucket/",
            "s3://bucket/warm/",
            "s3://bucket/a%20b",
        ] {
            parse(good).unwrap_or_else(|e| panic!("{good}: {e:#}"));
        }
        let tier = parse("s3://bucket/warm/").unwrap().tiers[0].clone();
        let url = Url::parse(&tier.url).unwrap();
        assert_eq!(tier.prefix(&url).unwrap().as_ref(), "warm");
        for bad in [
            "s3://bucket/warm//",
            "s3://bucket//warm",
            "s3://bucket/a%00b",
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains("is not a valid object path"), "{bad}: {e}");
        }
        // A local folder's path is the folder's, however it is spelled.
        parse("file:///tmp//strata-x").unwrap();
    }

    #[test]
    fn gcs_tiers_take_their_options_as_s3_and_azure_do() {
        let open = |option: &str| {
            let raw = format!(
                "[[tiers]]\nname = 'g'\nurl = 'gs://bucket/cold'\n[tiers.options]\n{option}\n"
            );
            TierConfig::parse(&raw, &[]).unwrap().tiers[0].open()
        };
        let tier = open("google_bucket = 'bucket'").unwrap();
        assert_eq!(tier.prefix.as_ref(), "cold");
        let e = format!("{:#}", open("no_such_option = 'x'").unwrap_err());
        assert!(e.contains("tier g option \"no_such_option\""), "{e}");
    }

    #[test]
    fn writes_and_deletes_are_conditional_unless_an_s3_tier_says_its_store_cannot() {
        let s3 = "url = 's3://bucket/a'\n[tiers.options]\nregion = 'us-east-1'\n";
        let conditional = |toml: &str| tier_of(toml).open().unwrap().conditional_put;
        assert!(conditional(s3));
        assert!(!conditional(&format!("{s3}conditional_put = 'disabled'\n")));
        assert!(conditional(&format!("{s3}conditional_put = 'etag'\n")));
        assert!(conditional("url = 'memory://'"));
        // Deletes: conditional unless either option says the store cannot.
        let deletes = |toml: &str| tier_of(toml).open().unwrap().conditional_delete;
        assert!(deletes(s3));
        assert!(!deletes(&format!("{s3}conditional_delete = 'disabled'\n")));
        assert!(!deletes(&format!("{s3}conditional_put = 'disabled'\n")));
    }

    #[test]
    fn restores_last_days_except_from_intelligent_tiering() {
        let days = |preset: &str| {
            let raw = format!(
                "[[tiers]]\nname = 'a'\nurl = 's3://bucket/a'\npreset = '{preset}'\n\
                 [tiers.options]\nregion = 'us-east-1'\n"
            );
            let tier = TierConfig::parse(&raw, &[]).unwrap().tiers[0]
                .open()
                .unwrap();
            tier.s3.unwrap().restore_days
        };
        assert_eq!(days("aws-s3-deep-archive"), Some(7));
        assert_eq!(days("aws-s3-intelligent-tiering"), None);
    }

    #[test]
    fn tiers_may_not_share_storage() {
        let two = |a: &str, b: &str| {
            TierConfig::parse(
                &format!(
                    "[[tiers]]\nname = 'a'\nurl = '{a}'\n[[tiers]]\nname = 'b'\nurl = '{b}'\n"
                ),
                &[],
            )
        };
        for (a, b) in [
            ("file:///data/hot", "file:///data/cold"),
            ("file:///data/hot", "file:///data/hot2"),
            ("s3://bucket/hot", "s3://bucket/cold"),
            ("s3://one", "s3://two"),
            ("memory://", "memory://"),
        ] {
            assert!(two(a, b).is_ok(), "{a} {b}");
        }
        for (a, b) in [
            ("file:///data/hot", "file:///data/hot/"),
            ("file:///data", "file:///data/cold"),
            ("s3://bucket", "s3://bucket/archive"),
            ("s3://bucket/x/", "s3://bucket/x"),
            // Spelled apart, the same place.
            ("file:///data/hot", "file:///data//hot"),
            ("file:///data/./hot", "file:///data/hot/x"),
            ("s3://bucket/%61", "s3://bucket/a"),
            ("s3://bucket/warm%2F", "s3://bucket/warm"),
        ] {
            let e = two(a, b).unwrap_err().to_string();
            assert!(e.contains("share storage"), "{a} {b}: {e}");
        }
        // A prefix of nothing but a `/` spelled `%2F` is no object path:
        // refused before it could pass for the bucket's root.
        let e = format!(
            "{:#}",
            two("s3://bucket/%2F", "s3://bucket/warm").unwrap_err()
        );
        assert!(e.contains("is not a valid object path"), "{e}");
        // The same bucket name on two S3 servers is two stores; the same
        // server under two names of its option, or with a trailing `/`, one.
        let on = |a: (&str, &str), b: (&str, &str)| {
            let raw = format!(
                "[[tiers]]\nname = 'a'\nurl = 's3://b/x'\n[tiers.options]\n{} = '{}'\n\
                 [[tiers]]\nname = 'b'\nurl = 's3a://b/x/y'\n[tiers.options]\n{} = '{}'\n",
                a.0, a.1, b.0, b.1
            );
            TierConfig::parse(&raw, &[])
        };
        let (server_1, server_2) = ("http://one:9000", "http://two:9000");
        assert!(on(("endpoint", server_1), ("endpoint", server_2)).is_ok());
        for (key, value) in [("aws_endpoint", server_1), ("endpoint", "http://one:9000/")] {
            let e = on(("endpoint", server_1), (key, value))
                .unwrap_err()
                .to_string();
            assert!(e.contains("share storage"), "{key} = {value}: {e}");
        }
        // A folder and a link to it; an Azure container by its two URLs.
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("hot"), dir.path().join("also-hot"));
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (real, link) = (
            format!("file://{}", real.display()),
            format!("file://{}/x", link.display()),
        );
        let abfss = "abfss://c@acct.dfs.core.windows.net/p";
        for (a, b) in [(real.as_str(), link.as_str()), ("az://c/p/q", abfss)] {
            let e = two(a, b).unwrap_err().to_string();
            assert!(e.contains("share storage"), "{a} {b}: {e}");
        }
    }

    #[test]
    fn prices_days_and_latencies_must_be_finite_not_negative_and_days_at_most_a_century() {
        let tier = |field: &str| {
            TierConfig::parse(
                &format!("[[tiers]]\nname = 'a'\nurl = 'memory://'\n{field}\n"),
                &[],
            )
        };
        assert!(tier("storage_usd_per_gb_month = 0.023").is_ok());
        for bad in [
            "storage_usd_per_gb_month = nan",
            "retrieval_usd_per_gb = -0.01",
            "min_storage_days = inf",
            "first_byte_ms = -1",
            "egress_usd_per_gb = nan",
            "first_byte_ms = 1e300",
            "min_storage_days = 36501",
            "idle_days = 1e20",
        ] {
            let e = format!("{:#}", tier(bad).unwrap_err());
            let field = bad.split(' ').next().unwrap();
            assert!(e.contains(&format!("tier a: {field}")), "{e}");
        }
    }

    #[test]
    fn auto_tiering_is_read_from_the_file_and_checked() {
        let tier = |steps: &str| {
            TierConfig::parse(
                &format!(
                    "[[tiers]]\nname = 'it'\nurl = 'memory://'\n\
                     [tiers.auto_tiering]\nsteps = [{steps}]\n\
                     monitoring_usd_per_1k = 0.0025\nmin_bytes = 131_072\n"
                ),
                &[],
            )
        };
        let ok = tier(
            "{ idle_days = 30, storage_usd_per_gb_month = 0.0125 }, \
             { idle_days = 90, storage_usd_per_gb_month = 0.004 }",
        )
        .unwrap();
        let auto = ok.tiers[0].auto_tiering.as_ref().unwrap();
        assert_eq!(auto.steps[1].idle_days, 90.0);
        assert_eq!(auto.min_bytes, 131_072);
        assert!(ok.tiers[0].explicit.contains("auto_tiering"));
        for bad in [
            "{ idle_days = 90, storage_usd_per_gb_month = 0.004 }, \
             { idle_days = 30, storage_usd_per_gb_month = 0.0125 }",
            "{ idle_days = 30, storage_usd_per_gb_month = -1.0 }",
            "{ idle_days = 0, storage_usd_per_gb_month = 0.01 }",
            "{ idle_days = 1e300, storage_usd_per_gb_month = 0.01 }",
            "{ idle_days = 30, storage_usd_per_gb_month = 0.004 }, \
             { idle_days = 90, storage_usd_per_gb_month = 0.0125 }",
        ] {
            let e = format!("{:#}", tier(bad).unwrap_err());
            assert!(e.contains("tier it: auto_tiering"), "{e}");
        }
    }

    #[test]
    fn parses_expands_and_ranks() {
        let config = TierConfig::parse(FILE, &[("DATA", "/tmp/x".into())]).unwrap();
        assert_eq!(config.tiers[0].url, "file:///tmp/x/hot");
        assert_eq!(config.get("cold").unwrap().storage_usd_per_gb_month, 0.004);
        assert_eq!(config.rank("cold"), Some(1));
        let cold = config.get("cold").unwrap();
        assert!(cold.explicit.contains("storage_usd_per_gb_month"));
        assert!(!cold.explicit.contains("retrieval_usd_per_gb"));
        assert_eq!(cold.preset, None);
        assert!(TierConfig::parse(FILE, &[]).is_err_and(|e| format!("{e:#}").contains("${DATA}")));
    }

    #[test]
    fn refuses_duplicates_and_bad_names() {
        let dup = "[[tiers]]\nname='a'\nurl='memory://'\n[[tiers]]\nname='a'\nurl='memory://'";
        assert!(TierConfig::parse(dup, &[]).is_err());
        assert!(TierConfig::parse("[[tiers]]\nname='a/b'\nurl='memory://'", &[]).is_err());
        assert!(TierConfig::parse("tiers = []", &[]).is_err());
    }

    fn tier_of(toml: &str) -> Tier {
        TierConfig::parse(&format!("[[tiers]]\nname = 't'\n{toml}"), &[])
            .unwrap()
            .tiers
            .remove(0)
    }

    fn class_written(toml: &str) -> anyhow::Result<Option<String>> {
        let store = tier_of(toml).open()?;
        Ok(store
            .attributes
            .get(&Attribute::StorageClass)
            .map(|v| v.to_string()))
    }

    #[test]
    fn writes_carry_the_class_of_the_tier_or_its_preset() {
        let s3 = "url = 's3://bucket/ia'\n[tiers.options]\nregion = 'us-east-1'";
        let ia = format!("preset = 'aws-s3-standard-ia'\n{s3}");
        assert_eq!(class_written(&ia).unwrap().as_deref(), Some("STANDARD_IA"));
        let explicit = format!("storage_class = 'ONEZONE_IA'\n{ia}");
        assert_eq!(
            class_written(&explicit).unwrap().as_deref(),
            Some("ONEZONE_IA")
        );
        // "" sends none: an S3-compatible server without classes (MinIO).
        let none = format!("storage_class = ''\n{ia}");
        assert_eq!(class_written(&none).unwrap(), None);
        assert_eq!(class_written(s3).unwrap(), None);
        let gcs = "preset = 'gcs-coldline'\nurl = 'memory://'";
        assert_eq!(class_written(gcs).unwrap().as_deref(), Some("COLDLINE"));
        // Only the classes S3 and Azure must restore before a read are
        // archived: copies to them are not read back.
        let archived = |preset: &str, url: &str| {
            tier_of(&format!(
                "preset = '{preset}'\nurl = '{url}'\n[tiers.options]\nregion = 'x'"
            ))
            .open()
            .unwrap()
            .archived
        };
        assert!(archived("aws-s3-deep-archive", "s3://b"));
        assert!(archived("aws-s3-glacier-flexible", "s3://b"));
        assert!(!archived("aws-s3-glacier-ir", "s3://b"));
        assert!(!archived("aws-s3-deep-archive", "memory://"));
        assert!(!archived("gcs-archive", "memory://"));
        for option in [
            "unsigned_payload = 'true'",
            "unsigned_payload = 'YES'",
            "skip_signature = '1'",
        ] {
            let unsigned = format!(
                "preset = 'aws-s3-deep-archive'\nurl = 's3://b'\n[tiers.options]\nregion = 'x'\n{option}"
            );
            let e = tier_of(&unsigned).open().unwrap_err();
            assert!(
                format!("{e:#}").contains("needs signed payloads"),
                "{option}: {e:#}"
            );
        }
    }

    #[test]
    fn an_azure_url_names_its_account_in_its_host_or_not_at_all() {
        let account = |u: &str| account_of(&Url::parse(u).unwrap());
        assert_eq!(account("az://container/prefix"), None);
        assert_eq!(
            account("abfss://c@acct.dfs.core.windows.net/p").as_deref(),
            Some("acct")
        );
        assert_eq!(
            account("abfss://c@gov.dfs.core.usgovcloudapi.net/").as_deref(),
            Some("gov")
        );
    }

    #[test]
    fn a_class_the_store_cannot_have_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let folder = format!("url = 'file://{}/t'", dir.path().display());
        // A local folder priced as a cloud class sends no class...
        let priced = format!("preset = 'aws-s3-glacier-ir'\n{folder}");
        assert_eq!(class_written(&priced).unwrap(), None);
        // ...and refuses one written out.
        let written = format!("storage_class = 'GLACIER_IR'\n{folder}");
        let e = format!("{:#}", class_written(&written).unwrap_err());
        assert!(e.contains("file:// tier has no storage class"), "{e}");
        // An Azure class on an S3 bucket is a mistake in the file.
        let e =
            class_written("preset = 'azure-cool'\nurl = 's3://b'\n[tiers.options]\nregion = 'x'")
                .unwrap_err();
        assert!(
            format!("{e:#}").contains("az:// stores, not of s3://"),
            "{e:#}"
        );
        let e = class_written("storage_class = 'STANDARD IA'\nurl = 'memory://'").unwrap_err();
        assert!(format!("{e:#}").contains("not a class name"), "{e:#}");
    }

    #[test]
    fn locations_stay_inside_the_tier() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/t", dir.path().display());
        let tier = Tier {
            url,
            ..serde_json::from_str(r#"{"name":"t","url":""}"#).unwrap()
        };
        let store = tier.open().unwrap();
        assert_eq!(store.location("a/b.txt").unwrap().as_ref(), "a/b.txt");
        assert_eq!(
            store.key_of(&Path::from("a/b.txt")).as_deref(),
            Some("a/b.txt")
        );
        for bad in ["../x", "/etc/passwd", "a/../../b", "a\0b"] {
            assert!(store.location(bad).is_err(), "{bad:?}");
        }
        // `a#b#1` is the name of a staged upload of `a#b` (and would be
        // removed with it); `a#1/x` puts a folder where one of `a` goes.
        // Other uses of `#` are keys like any.
        for staged in ["a#b#1", "d/a#7", "a#1/x"] {
            assert!(store.location(staged).is_err(), "{staged:?}");
        }
        for fine in ["a#b", "r#2024-01", "a#", "#x/y"] {
            assert!(store.location(fine).is_ok(), "{fine:?}");
        }
        // Other stores stage nothing beside the object: `#1` is allowed there.
        let memory = Tier {
            url: "memory://".into(),
            ..serde_json::from_str(r#"{"name":"m","url":""}"#).unwrap()
        };
        assert!(memory.open().unwrap().location("a#b#1").is_ok());
    }
}
