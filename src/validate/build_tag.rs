//! The Windows build an image's tag names, against `spec.windows.version`.
//!
//! A process-isolated Windows container runs only on the Windows Server build its image was
//! built for, and image tags conventionally say which: `ltsc2022`, `1809`, `10.0.20348`, alone or
//! inside a longer tag such as `4.8-windowsservercore-ltsc2022`. When the tag names a build and
//! `spec.windows.version` names another, every pod would fail on the node with "the container
//! operating system does not match the host"; the operator and `render` refuse it up front. A tag
//! that names no build (`:1.2`, a digest alone) or several is not judged.

use super::{ValidationError, image};
use crate::api::{WindowsAppSpec, WindowsVersion};

/// Words of a tag that name a build: the LTSC release, the Windows 10 version of the 2019 build,
/// and the build number (which `10.0.17763` and `10.0.17763.6893` contain as a word).
const BUILD_WORDS: &[(&str, WindowsVersion)] = &[
    ("ltsc2019", WindowsVersion::Ltsc2019),
    ("1809", WindowsVersion::Ltsc2019),
    ("17763", WindowsVersion::Ltsc2019),
    ("ltsc2022", WindowsVersion::Ltsc2022),
    ("20348", WindowsVersion::Ltsc2022),
    ("ltsc2025", WindowsVersion::Ltsc2025),
    ("26100", WindowsVersion::Ltsc2025),
];

/// The release the image's tag names, when it names exactly one (case-insensitive, as a whole
/// word: delimited by the tag's ends or by characters other than letters and digits).
pub fn tagged_build(reference: &str) -> Option<WindowsVersion> {
    let tag = image::tag(reference)?.to_ascii_lowercase();
    let mut found: Vec<WindowsVersion> =
        BUILD_WORDS.iter().filter(|(word, _)| has_word(&tag, word)).map(|(_, v)| *v).collect();
    found.dedup();
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Whether `word` occurs in `text` with no letter or digit right before or after it.
fn has_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric()) && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// Every image the app declares: `spec.image`, then those of `spec.podTemplate`'s containers and
/// init containers (sidecars), with the field that sets each.
fn images(spec: &WindowsAppSpec) -> Vec<(String, &str)> {
    let mut out = vec![("spec.image".to_owned(), spec.image.as_str())];
    let overrides = spec.pod_template.as_ref().and_then(|t| t.spec.as_ref());
    for list in ["initContainers", "containers"] {
        let Some(serde_json::Value::Array(items)) = overrides.and_then(|o| o.get(list)) else { continue };
        for item in items {
            if let (Some(name), Some(image)) =
                (item.get("name").and_then(|n| n.as_str()), item.get("image").and_then(|i| i.as_str()))
            {
                out.push((format!("spec.podTemplate.spec.{list}[{name}].image"), image));
            }
        }
    }
    out
}

/// The refusal's words, after the field: both builds and the two fixes.
pub fn describe(image: &str, tagged: WindowsVersion, version: WindowsVersion) -> String {
    format!(
        "the image {image:?} is tagged for {} ({}) but spec.windows.version is {} ({}): a Windows container image runs only on the build it was built for; use the image's {} tag, or set spec.windows.version to {}",
        tagged.as_str(),
        tagged.build(),
        version.as_str(),
        version.build(),
        version.as_str(),
        tagged.as_str()
    )
}

/// Each image whose tag names another build than `spec.windows.version` (none without a version:
/// the pods may then land on any build).
pub fn check(spec: &WindowsAppSpec, errors: &mut Vec<ValidationError>) {
    let Some(version) = spec.windows.version else { return };
    for (field, reference) in images(spec) {
        if let Some(tagged) = tagged_build(reference).filter(|t| *t != version) {
            errors.push(ValidationError::ImageBuildMismatch { field, image: reference.to_owned(), tagged, version });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WindowsVersion::*;

    #[test]
    fn tags_name_builds_as_whole_words() {
        let cases = [
            ("mcr.microsoft.com/windows/servercore:ltsc2019", Some(Ltsc2019)),
            ("mcr.microsoft.com/windows/nanoserver:1809", Some(Ltsc2019)),
            ("mcr.microsoft.com/windows/servercore:10.0.17763.6893", Some(Ltsc2019)),
            ("mcr.microsoft.com/dotnet/framework/aspnet:4.8-windowsservercore-ltsc2022", Some(Ltsc2022)),
            ("registry.example.com/web:1.2-LTSC2022", Some(Ltsc2022)),
            ("localhost:5000/web:10.0.20348", Some(Ltsc2022)),
            ("web:2.0_ltsc2025", Some(Ltsc2025)),
            ("web:26100", Some(Ltsc2025)),
            (
                "registry.example.com/web:1.2-ltsc2022@sha256:3f1b0c8a9d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
                Some(Ltsc2022),
            ),
            // No build named: no tag, a digest alone, a version that merely contains the digits.
            ("registry.example.com/web", None),
            ("registry.example.com/web:1.2", None),
            ("registry.example.com/web@sha256:3f1b0c8a9d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a", None),
            ("web:v18091", None),
            ("web:ltsc20221", None),
            ("web:built-for-2019", None),
            // The registry's port and the repository are not the tag.
            ("ltsc2019.example.com:1809/ltsc2019/web:1.0", None),
            // Two builds named: a multi-build tag, not judged.
            ("web:ltsc2019-ltsc2022", None),
            ("web:ltsc2022-20348", Some(Ltsc2022)),
        ];
        for (reference, want) in cases {
            assert_eq!(tagged_build(reference), want, "{reference}");
        }
    }

    fn spec(yaml: &str) -> WindowsAppSpec {
        serde_saphyr::from_str(yaml).expect("a spec")
    }

    #[test]
    fn every_declared_image_is_held_to_the_version() {
        let mut errors = Vec::new();
        check(
            &spec(
                "image: web:1-ltsc2019\nwindows: {version: ltsc2022}\npodTemplate:\n  spec:\n    initContainers: [{name: init, image: 'tools:1809'}]\n    containers: [{name: log, image: 'log:ltsc2022'}, {name: probe, image: 'probe:1.0'}]\n",
            ),
            &mut errors,
        );
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                ValidationError::ImageBuildMismatch { field, tagged, version, .. } => {
                    assert_eq!((*tagged, *version), (Ltsc2019, Ltsc2022));
                    field.clone()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(fields, ["spec.image", "spec.podTemplate.spec.initContainers[init].image"]);
    }

    #[test]
    fn no_version_or_a_matching_tag_passes() {
        for yaml in [
            "image: web:1-ltsc2019\n",
            "image: web:1-ltsc2019\nwindows: {version: ltsc2019}\n",
            "image: web:1.2\nwindows: {version: ltsc2025}\n",
        ] {
            let mut errors = Vec::new();
            check(&spec(yaml), &mut errors);
            assert!(errors.is_empty(), "{yaml}: {errors:?}");
        }
    }
}
