//! References the pods cannot start without: the image (an OCI reference, as the container
//! runtime parses it) and the names of the Secrets the spec points at. The CRD refuses what could
//! never resolve; `crate::validate::image` says in words what is wrong with a refused image.

use schemars::Schema;
use serde_json::{Value, json};

// The grammar of github.com/distribution/reference (`regexp.go`), which containerd and the
// kubelet parse images with, written for RE2 (the API server) and the `regex` crate (render) alike:
// no lookaround, no backreference, ASCII classes spelled out (`\w` is Unicode in `regex`).

/// A label of a registry host: letters (either case), digits, inner dashes.
macro_rules! domain_component {
    () => {
        "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    };
}
/// One component of the repository path: lower-case letters and digits, separated by `.`, `_`,
/// `__` or dashes.
macro_rules! path_component {
    () => {
        "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
    };
}

/// `spec.image`: `[host[:port]/]path[:tag][@algorithm:hex]`. The host is a DNS name (IPv4
/// included) or a bracketed IPv6 address; the tag `[\w][\w.-]{0,127}`; the digest at least 32
/// hexadecimal digits (`sha256:` and 64 of them, as a rule).
pub const IMAGE_PATTERN: &str = concat!(
    "^(?:(?:",
    domain_component!(),
    "(?:\\.",
    domain_component!(),
    ")*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?/)?",
    path_component!(),
    "(?:/",
    path_component!(),
    ")*",
    "(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?",
    "(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$",
);

/// The longest name (registry and repository) the runtime accepts (distribution's
/// `NameTotalLengthMax`).
pub const IMAGE_NAME_MAX_LENGTH: usize = 255;
/// The longest tag.
pub const IMAGE_TAG_MAX_LENGTH: usize = 128;
/// The longest reference that can run: the longest name, `:`, the longest tag, `@` and a sha512
/// digest (`sha512:` and 128 hexadecimal digits), the longest digest the OCI image spec registers.
pub const IMAGE_MAX_LENGTH: usize = IMAGE_NAME_MAX_LENGTH + 1 + IMAGE_TAG_MAX_LENGTH + 1 + "sha512:".len() + 128;
// The README's API table states it.
const _: () = assert!(IMAGE_MAX_LENGTH == 520);
/// What a valid image reference looks like, for messages.
pub const IMAGE_EXAMPLE: &str = "registry.example.com/team/app:1.2-ltsc2022";

/// CEL rule of a Secret's name: a DNS-1123 subdomain (Kubernetes' rule for Secret names). Its
/// field has `maxLength: 253`, which also bounds the rule's cost.
pub const SECRET_NAME_RULE: &str =
    r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// The longest Secret name.
pub const SECRET_NAME_MAX_LENGTH: usize = 253;

/// The schema of the `name` of a Secret reference at `path` (property names; `[]` for a list's
/// entries): at most 253 characters, and [`SECRET_NAME_RULE`] with a message that starts with
/// what the Secret is for.
fn secret_name(schema: &mut Schema, path: &[&str], purpose: &str) {
    let Some(name) = schema
        .as_object_mut()
        .and_then(|o| super::bounds::node(o, path))
        .and_then(|o| super::bounds::node(o, &["name"]))
    else {
        // Not there: the name keeps its core schema, and the tests of the corpus find the gap.
        return;
    };
    name.insert("maxLength".into(), Value::from(SECRET_NAME_MAX_LENGTH));
    name.insert(
        "x-kubernetes-validations".into(),
        json!([{
            "rule": SECRET_NAME_RULE,
            "message": format!(
                "must name {purpose}, in the app's namespace: a DNS-1123 subdomain such as {} (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit); set it, it may not be empty",
                example_secret(purpose)
            ),
        }]),
    );
}

fn example_secret(purpose: &str) -> &'static str {
    if purpose.contains("share") {
        "smb-credentials"
    } else if purpose.contains("registry") {
        "registry-credentials"
    } else {
        "app-secrets"
    }
}

/// `spec.volumes[].smb.secretRef`.
pub fn smb_secret_ref(schema: &mut Schema) {
    secret_name(schema, &[], "the Secret with the share's username and password");
}

/// `spec.imagePullSecrets`.
pub fn image_pull_secrets(schema: &mut Schema) {
    secret_name(schema, &["[]"], "a Secret with registry credentials");
}

/// `spec.env`: `valueFrom.secretKeyRef.name`.
pub fn env_secret_refs(schema: &mut Schema) {
    secret_name(schema, &["[]", "valueFrom", "secretKeyRef"], "the Secret the value comes from");
}

/// `spec.envFrom`: `secretRef.name`.
pub fn env_from_secret_refs(schema: &mut Schema) {
    secret_name(schema, &["[]", "secretRef"], "the Secret whose keys become environment variables");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_pattern_compiles_as_render_compiles_it() {
        let re = regex::Regex::new(IMAGE_PATTERN).expect("compiles");
        assert!(re.is_match(IMAGE_EXAMPLE));
    }
}
