//! Price presets for the public clouds' storage classes, selected in a tier
//! by `preset = "aws-s3-standard-ia"`; a field written in the tier file
//! overrides the preset's value.
//!
//! Source: the providers' public list prices as gathered in Strata's
//! `docs/prices.md` (AWS S3 us-east-1, Azure Blob LRS, GCS us-central1),
//! 2026. GCS request prices of Nearline, Coldline and Archive (class A /
//! class B operations) are from cloud.google.com/storage/pricing, 2026.
//! Prices change: override them in the tier file when they do.
//!
//! Local disks and MinIO have no list price: write a tier without `preset`
//! and state its `storage_usd_per_gb_month` (e.g. amortised hardware cost),
//! `first_byte_ms` and `provider = "local"`.

use anyhow::bail;
use strata_runtime::tiers::{AutoTiering, IdleStep, Tier, TierConfig};

/// Where and when the preset figures come from.
pub const SOURCE: &str =
    "public list prices, AWS S3 us-east-1, Azure Blob LRS, GCS us-central1 (prices.md, 2026)";

/// One storage class's list prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub provider: &'static str,
    pub storage_usd_per_gb_month: f64,
    pub retrieval_usd_per_gb: f64,
    pub put_usd_per_1k: f64,
    pub get_usd_per_1k: f64,
    pub min_storage_days: f64,
    pub min_billable_bytes: u64,
    pub overhead_bytes: u64,
    pub first_byte_ms: f64,
    pub egress_usd_per_gb: f64,
    /// An auto-tiering class's access tiers and fee (S3 Intelligent-Tiering).
    pub auto_tiering: Option<AutoPreset>,
}

/// [`strata_runtime::tiers::AutoTiering`] as a constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoPreset {
    /// (days without a read, USD per GB-month from then on).
    pub steps: &'static [(f64, f64)],
    pub monitoring_usd_per_1k: f64,
    pub min_bytes: u64,
}

impl AutoPreset {
    pub fn to_tiering(self) -> AutoTiering {
        AutoTiering {
            steps: self
                .steps
                .iter()
                .map(|&(idle_days, storage_usd_per_gb_month)| IdleStep {
                    idle_days,
                    storage_usd_per_gb_month,
                })
                .collect(),
            monitoring_usd_per_1k: self.monitoring_usd_per_1k,
            min_bytes: self.min_bytes,
        }
    }
}

const KB128: u64 = 128 * 1024;
const KB40: u64 = 40 * 1024;
const HOUR_MS: f64 = 3_600_000.0;

#[allow(clippy::too_many_arguments)]
const fn p(
    name: &'static str,
    provider: &'static str,
    storage: f64,
    retrieval: f64,
    put_1k: f64,
    get_1k: f64,
    min_days: f64,
    min_bytes: u64,
    overhead: u64,
    first_byte_ms: f64,
    egress: f64,
) -> Preset {
    Preset {
        name,
        provider,
        storage_usd_per_gb_month: storage,
        retrieval_usd_per_gb: retrieval,
        put_usd_per_1k: put_1k,
        get_usd_per_1k: get_1k,
        min_storage_days: min_days,
        min_billable_bytes: min_bytes,
        overhead_bytes: overhead,
        first_byte_ms,
        egress_usd_per_gb: egress,
        auto_tiering: None,
    }
}

/// AWS S3 Standard, us-east-1 (prices.md 2026). Internet egress $0.09/GB.
const AWS_S3_STANDARD: Preset = p(
    "aws-s3-standard",
    "aws",
    0.023,
    0.0,
    0.005,
    0.0004,
    0.0,
    0,
    0,
    10.0,
    0.09,
);

/// S3 Intelligent-Tiering's access tiers below Frequent (Standard-IA's and
/// Glacier IR's prices), fee and size floor.
const INTELLIGENT_TIERING: AutoPreset = AutoPreset {
    steps: &[(30.0, 0.0125), (90.0, 0.004)],
    monitoring_usd_per_1k: 0.0025,
    min_bytes: KB128,
};

/// Every preset, fastest first within each provider.
pub const PRESETS: &[Preset] = &[
    // AWS S3, us-east-1 (prices.md 2026).
    AWS_S3_STANDARD,
    p(
        "aws-s3-standard-ia",
        "aws",
        0.0125,
        0.01,
        0.01,
        0.001,
        30.0,
        KB128,
        0,
        10.0,
        0.09,
    ),
    p(
        "aws-s3-glacier-ir",
        "aws",
        0.004,
        0.03,
        0.02,
        0.01,
        90.0,
        KB128,
        0,
        10.0,
        0.09,
    ),
    // Standard retrieval (3-5 h); expedited is $0.03/GB in 1-5 minutes.
    p(
        "aws-s3-glacier-flexible",
        "aws",
        0.0036,
        0.01,
        0.03,
        0.0004,
        90.0,
        0,
        KB40,
        5.0 * HOUR_MS,
        0.09,
    ),
    p(
        "aws-s3-deep-archive",
        "aws",
        0.00099,
        0.02,
        0.05,
        0.0004,
        180.0,
        0,
        KB40,
        12.0 * HOUR_MS,
        0.09,
    ),
    // S3 Intelligent-Tiering: Standard's price until 30 days without a
    // read, Standard-IA's until 90, then Glacier Instant Retrieval's; no
    // retrieval charge, Standard's request prices, a monitoring fee of
    // $0.0025 per 1,000 objects a month; objects under 128 KB stay at the
    // first price and pay no fee (prices.md 2026). The opt-in Archive
    // Access tiers are not modelled.
    Preset {
        name: "aws-s3-intelligent-tiering",
        auto_tiering: Some(INTELLIGENT_TIERING),
        ..AWS_S3_STANDARD
    },
    // Azure Blob, LRS (prices.md 2026; per 10,000 requests there, per 1,000 here).
    // Internet egress $0.087/GB.
    p(
        "azure-hot",
        "azure",
        0.018,
        0.0,
        0.005,
        0.00044,
        0.0,
        0,
        0,
        10.0,
        0.087,
    ),
    p(
        "azure-cool",
        "azure",
        0.010,
        0.01,
        0.01,
        0.001,
        30.0,
        0,
        0,
        10.0,
        0.087,
    ),
    p(
        "azure-cold",
        "azure",
        0.0036,
        0.03,
        0.018,
        0.01,
        90.0,
        0,
        0,
        10.0,
        0.087,
    ),
    p(
        "azure-archive",
        "azure",
        0.00099,
        0.02,
        0.01,
        0.5,
        180.0,
        0,
        0,
        15.0 * HOUR_MS,
        0.087,
    ),
    // Google Cloud Storage, us-central1 (prices.md 2026; class A / B request
    // prices beyond Standard from cloud.google.com/storage/pricing, 2026).
    // Internet egress $0.12/GB.
    p(
        "gcs-standard",
        "gcp",
        0.020,
        0.0,
        0.005,
        0.0004,
        0.0,
        0,
        0,
        10.0,
        0.12,
    ),
    p(
        "gcs-nearline",
        "gcp",
        0.010,
        0.01,
        0.01,
        0.001,
        30.0,
        0,
        0,
        10.0,
        0.12,
    ),
    p(
        "gcs-coldline",
        "gcp",
        0.004,
        0.02,
        0.02,
        0.01,
        90.0,
        0,
        0,
        10.0,
        0.12,
    ),
    p(
        "gcs-archive",
        "gcp",
        0.0012,
        0.05,
        0.05,
        0.05,
        365.0,
        0,
        0,
        10.0,
        0.12,
    ),
];

/// The preset called `name`.
pub fn get(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Fills every tier that names a preset with the preset's figures, except
/// the fields written in the file. Fails on an unknown preset.
pub fn resolve(config: &mut TierConfig) -> anyhow::Result<()> {
    for tier in &mut config.tiers {
        apply_to(tier)?;
    }
    Ok(())
}

/// [`resolve`] for one tier.
pub fn apply_to(tier: &mut Tier) -> anyhow::Result<()> {
    let Some(name) = tier.preset.clone() else {
        return Ok(());
    };
    let Some(p) = get(&name) else {
        let known: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        bail!(
            "tier {}: unknown preset {name:?}; known: {}",
            tier.name,
            known.join(", ")
        );
    };
    let unset = |field: &str| !tier.explicit.contains(field);
    macro_rules! fill {
        ($($field:ident),*) => {$(
            if unset(stringify!($field)) {
                tier.$field = p.$field;
            }
        )*};
    }
    fill!(
        storage_usd_per_gb_month,
        retrieval_usd_per_gb,
        put_usd_per_1k,
        get_usd_per_1k,
        min_storage_days,
        min_billable_bytes,
        overhead_bytes,
        first_byte_ms,
        egress_usd_per_gb
    );
    if unset("provider") {
        tier.provider = Some(p.provider.to_owned());
    }
    if unset("auto_tiering") {
        tier.auto_tiering = p.auto_tiering.map(AutoPreset::to_tiering);
    }
    Ok(())
}

/// A tier file made of presets, one `memory://` tier per preset name, for
/// the simulator's defaults and tests.
pub fn tier_config(names: &[(&str, &str)]) -> anyhow::Result<TierConfig> {
    let mut raw = String::new();
    for (tier, preset) in names {
        raw.push_str(&format!(
            "[[tiers]]\nname = \"{tier}\"\nurl = \"memory://\"\npreset = \"{preset}\"\n"
        ));
    }
    let mut config = TierConfig::parse(&raw, &[])?;
    resolve(&mut config)?;
    Ok(config)
}

/// The simulator's default tiers: the five AWS S3 classes.
pub fn aws_s3() -> TierConfig {
    const AWS: [(&str, &str); 5] = [
        ("standard", "aws-s3-standard"),
        ("standard-ia", "aws-s3-standard-ia"),
        ("glacier-ir", "aws-s3-glacier-ir"),
        ("glacier", "aws-s3-glacier-flexible"),
        ("deep-archive", "aws-s3-deep-archive"),
    ];
    // The names and presets above are constants that parse.
    tier_config(&AWS).unwrap_or_else(|e| unreachable!("aws presets: {e}"))
}

/// The five AWS S3 classes with S3 Intelligent-Tiering second: Strata may
/// then hand an object to Intelligent-Tiering where its reads are too
/// irregular to place it better itself.
pub fn aws_s3_intelligent() -> TierConfig {
    const AWS: [(&str, &str); 6] = [
        ("standard", "aws-s3-standard"),
        ("intelligent-tiering", "aws-s3-intelligent-tiering"),
        ("standard-ia", "aws-s3-standard-ia"),
        ("glacier-ir", "aws-s3-glacier-ir"),
        ("glacier", "aws-s3-glacier-flexible"),
        ("deep-archive", "aws-s3-deep-archive"),
    ];
    tier_config(&AWS).unwrap_or_else(|e| unreachable!("aws presets: {e}"))
}

/// S3 Intelligent-Tiering's rule priced on plain tiers: an object is billed
/// at `first`'s storage price, at `lower[0]`'s after 30 days without access
/// and `lower[1]`'s after 90; it pays no retrieval, transition or early-delete charge,
/// requests at the first's prices, and $0.0025 per 1,000 objects a month
/// for monitoring; objects under 128 KB stay at the first price, unmonitored.
/// On the AWS S3 tiers this is the `aws-s3-intelligent-tiering` preset.
pub fn intelligent_tiering_rule(first: &Tier, lower: &[&Tier]) -> Tier {
    let rule = INTELLIGENT_TIERING;
    let steps = rule
        .steps
        .iter()
        .zip(lower)
        .map(|(&(idle_days, _), t)| IdleStep {
            idle_days,
            storage_usd_per_gb_month: t.storage_usd_per_gb_month,
        })
        .collect();
    Tier {
        name: "intelligent-tiering".into(),
        retrieval_usd_per_gb: 0.0,
        min_storage_days: 0.0,
        min_billable_bytes: 0,
        overhead_bytes: 0,
        first_byte_ms: lower
            .iter()
            .map(|t| t.first_byte_ms)
            .fold(first.first_byte_ms, f64::max),
        auto_tiering: Some(AutoTiering {
            steps,
            ..rule.to_tiering()
        }),
        ..first.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_fill_prices_and_explicit_fields_win() {
        let raw = r#"
            [[tiers]]
            name = "s3"
            url = "memory://"
            preset = "aws-s3-standard-ia"
            retrieval_usd_per_gb = 0.0
            [[tiers]]
            name = "nas"
            url = "memory://"
            storage_usd_per_gb_month = 0.005
        "#;
        let mut config = TierConfig::parse(raw, &[]).unwrap();
        resolve(&mut config).unwrap();
        let s3 = config.get("s3").unwrap();
        assert_eq!(s3.storage_usd_per_gb_month, 0.0125);
        assert_eq!(s3.retrieval_usd_per_gb, 0.0, "explicit field wins");
        assert_eq!((s3.min_storage_days, s3.min_billable_bytes), (30.0, KB128));
        assert_eq!(s3.provider.as_deref(), Some("aws"));
        let nas = config.get("nas").unwrap();
        assert_eq!(nas.storage_usd_per_gb_month, 0.005);
        assert_eq!(nas.provider, None);
    }

    /// A tier's prices, to compare two tiers by.
    fn prices(t: &Tier) -> [f64; 8] {
        [
            t.storage_usd_per_gb_month,
            t.retrieval_usd_per_gb,
            t.put_usd_per_1k,
            t.get_usd_per_1k,
            t.min_storage_days,
            t.min_billable_bytes as f64,
            t.overhead_bytes as f64,
            t.first_byte_ms,
        ]
    }

    /// The compose stack's MinIO buckets stand for four S3 classes and
    /// write their prices out; they must be the presets' prices.
    #[test]
    fn the_compose_tiers_price_as_the_s3_presets() {
        let classes = [
            ("hot", "aws-s3-standard"),
            ("warm", "aws-s3-standard-ia"),
            ("cold", "aws-s3-glacier-ir"),
            ("archive", "aws-s3-deep-archive"),
        ];
        let compose =
            TierConfig::parse(include_str!("../../deploy/strata.compose.toml"), &[]).unwrap();
        let presets = tier_config(&classes).unwrap();
        for (tier, preset) in classes {
            assert_eq!(
                prices(compose.get(tier).unwrap()),
                prices(presets.get(tier).unwrap()),
                "{tier} against {preset}"
            );
        }
    }

    /// The example tier files for AWS and Azure parse, resolve their
    /// presets to their classes, and open their stores.
    #[test]
    fn the_cloud_example_tier_files_open_with_their_classes() {
        let examples = [
            (
                include_str!("../../deploy/strata.aws.example.toml"),
                &[
                    "STANDARD",
                    "INTELLIGENT_TIERING",
                    "STANDARD_IA",
                    "GLACIER_IR",
                    "DEEP_ARCHIVE",
                ][..],
            ),
            (
                include_str!("../../deploy/strata.azure.example.toml"),
                &["Hot", "Cool", "Cold", "Archive"][..],
            ),
        ];
        let vars = [("STRATA_BUCKET", "bucket".to_owned())];
        for (raw, classes) in examples {
            let mut config = TierConfig::parse(raw, &vars).unwrap();
            resolve(&mut config).unwrap();
            assert_eq!(config.tiers.len(), classes.len());
            for (tier, &class) in config.tiers.iter_mut().zip(classes) {
                assert!(tier.storage_usd_per_gb_month > 0.0, "{}", tier.name);
                assert_eq!(tier.storage_class(), Some(class), "{}", tier.name);
                if tier.url.starts_with("az://") {
                    // The account comes from the environment in use.
                    tier.options.insert("account_name".into(), "account".into());
                }
                tier.open()
                    .unwrap_or_else(|e| panic!("{}: {e:#}", tier.name));
            }
        }
    }

    /// The shipped tier file with Intelligent-Tiering is the simulator's
    /// six-tier set the tests and docs/simulator.md use.
    #[test]
    fn the_intelligent_tiering_sample_tiers_are_the_six_aws_presets() {
        let raw = include_str!("../../samples/tiers-aws-intelligent.toml");
        let mut file = TierConfig::parse(raw, &[]).unwrap();
        resolve(&mut file).unwrap();
        let six = aws_s3_intelligent();
        assert_eq!(file.tiers.len(), six.tiers.len());
        for (a, b) in file.tiers.iter().zip(&six.tiers) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.storage_usd_per_gb_month, b.storage_usd_per_gb_month);
            assert_eq!(a.auto_tiering, b.auto_tiering, "{}", a.name);
        }
        assert_eq!(file.tiers[1].storage_class(), Some("INTELLIGENT_TIERING"));
    }

    #[test]
    fn unknown_presets_are_refused_with_the_known_names() {
        let raw = "[[tiers]]\nname='a'\nurl='memory://'\npreset='aws-s3-nope'";
        let mut config = TierConfig::parse(raw, &[]).unwrap();
        let err = resolve(&mut config).unwrap_err().to_string();
        assert!(err.contains("aws-s3-deep-archive"), "{err}");
    }

    /// The mover writes each preset's storage class
    /// (`strata_runtime::tiers::PRESET_STORAGE_CLASSES`): a preset it did not
    /// know would be priced as a class its objects are never written in.
    #[test]
    fn every_preset_names_the_storage_class_the_mover_writes() {
        use strata_runtime::tiers::{PRESET_STORAGE_CLASSES, preset_storage_class};
        for preset in PRESETS {
            assert!(
                preset_storage_class(preset.name).is_some(),
                "{} has no storage class",
                preset.name
            );
        }
        for (name, _, _) in PRESET_STORAGE_CLASSES {
            assert!(
                get(name).is_some(),
                "storage class of an unknown preset {name}"
            );
        }
    }

    #[test]
    fn every_provider_has_its_classes_cheaper_as_they_go_colder() {
        for provider in ["aws", "azure", "gcp"] {
            let classes: Vec<_> = PRESETS
                .iter()
                .filter(|p| p.provider == provider && p.auto_tiering.is_none())
                .collect();
            assert!(classes.len() >= 4, "{provider}");
            for pair in classes.windows(2) {
                assert!(pair[0].storage_usd_per_gb_month > pair[1].storage_usd_per_gb_month);
                assert!(pair[0].min_storage_days <= pair[1].min_storage_days);
            }
        }
        let aws = aws_s3();
        assert_eq!(aws.tiers.len(), 5);
        // The baseline's rule on the five classes is the preset.
        let rule = intelligent_tiering_rule(&aws.tiers[0], &[&aws.tiers[1], &aws.tiers[2]]);
        let preset = aws_s3_intelligent().tiers[1].clone();
        assert_eq!(rule.auto_tiering, preset.auto_tiering);
        assert_eq!(prices(&rule), prices(&preset));
        assert_eq!(aws.tiers[4].storage_usd_per_gb_month, 0.00099);
    }
}
