//! References the pods cannot start without: the image, an OCI reference as the container runtime
//! parses it. The CRD refuses what could never resolve; `crate::validate::image` says in words what
//! is wrong with a refused image.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_pattern_compiles_as_render_compiles_it() {
        let re = regex::Regex::new(IMAGE_PATTERN).expect("compiles");
        assert!(re.is_match(IMAGE_EXAMPLE));
    }
}
