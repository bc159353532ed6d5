//! The official CycloneDX JSON schemas, embedded and compiled once per spec version.

use std::sync::OnceLock;

use jsonschema::{Draft, Resource, Validator};

/// A CycloneDX specification version vouch validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SpecVersion {
    /// CycloneDX 1.4.
    #[serde(rename = "1.4")]
    V1_4,
    /// CycloneDX 1.5.
    #[serde(rename = "1.5")]
    V1_5,
    /// CycloneDX 1.6.
    #[serde(rename = "1.6")]
    V1_6,
    /// CycloneDX 1.7.
    #[serde(rename = "1.7")]
    V1_7,
}

impl SpecVersion {
    /// Every supported version, oldest first.
    pub const ALL: [SpecVersion; 4] = [Self::V1_4, Self::V1_5, Self::V1_6, Self::V1_7];

    /// Parse a `specVersion` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The `specVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_4 => "1.4",
            Self::V1_5 => "1.5",
            Self::V1_6 => "1.6",
            Self::V1_7 => "1.7",
        }
    }

    fn schema_text(self) -> &'static str {
        match self {
            Self::V1_4 => include_str!("../../schemas/cyclonedx/bom-1.4.SNAPSHOT.schema.json"),
            Self::V1_5 => include_str!("../../schemas/cyclonedx/bom-1.5.SNAPSHOT.schema.json"),
            Self::V1_6 => include_str!("../../schemas/cyclonedx/bom-1.6.SNAPSHOT.schema.json"),
            Self::V1_7 => include_str!("../../schemas/cyclonedx/bom-1.7.SNAPSHOT.schema.json"),
        }
    }

    fn slot(self) -> &'static OnceLock<Result<Validator, String>> {
        static V1_4: OnceLock<Result<Validator, String>> = OnceLock::new();
        static V1_5: OnceLock<Result<Validator, String>> = OnceLock::new();
        static V1_6: OnceLock<Result<Validator, String>> = OnceLock::new();
        static V1_7: OnceLock<Result<Validator, String>> = OnceLock::new();
        match self {
            Self::V1_4 => &V1_4,
            Self::V1_5 => &V1_5,
            Self::V1_6 => &V1_6,
            Self::V1_7 => &V1_7,
        }
    }
}

impl std::fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Schemas the BOM schemas reference: file name (as referenced) and contents.
const REFERENCED: [(&str, &str); 3] = [
    ("spdx.SNAPSHOT.schema.json", include_str!("../../schemas/cyclonedx/spdx.SNAPSHOT.schema.json")),
    ("jsf-0.82.SNAPSHOT.schema.json", include_str!("../../schemas/cyclonedx/jsf-0.82.SNAPSHOT.schema.json")),
    (
        "cryptography-defs.SNAPSHOT.schema.json",
        include_str!("../../schemas/cyclonedx/cryptography-defs.SNAPSHOT.schema.json"),
    ),
];

/// Base of the `$id`s of all CycloneDX schemas; relative references resolve against it.
const SCHEMA_BASE: &str = "http://cyclonedx.org/schema/";

/// The compiled validator of `version`, built on first use and shared afterwards.
pub(crate) fn validator(version: SpecVersion) -> Result<&'static Validator, String> {
    version.slot().get_or_init(|| compile(version)).as_ref().map_err(Clone::clone)
}

fn compile(version: SpecVersion) -> Result<Validator, String> {
    let schema: serde_json::Value = serde_json::from_str(version.schema_text())
        .map_err(|e| format!("embedded schema is not JSON: {e}"))?;
    let mut options = jsonschema::options().with_draft(Draft::Draft7);
    for (file, text) in REFERENCED {
        let contents: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("embedded schema {file} is not JSON: {e}"))?;
        // Registered under the name the BOM schemas use and under the schema's own `$id`, so both the
        // cross-file references and the referenced schema's internal `#/...` references resolve in memory.
        let own_id = contents.get("$id").and_then(|v| v.as_str()).map(str::to_owned);
        let resource = Resource::from_contents(contents.clone()).map_err(|e| format!("{file}: {e}"))?;
        options = options.with_resource(format!("{SCHEMA_BASE}{file}"), resource);
        if let Some(id) = own_id {
            let resource = Resource::from_contents(contents).map_err(|e| format!("{file}: {e}"))?;
            options = options.with_resource(id, resource);
        }
    }
    options.build(&schema).map_err(|e| format!("embedded CycloneDX {version} schema does not compile: {e}"))
}
