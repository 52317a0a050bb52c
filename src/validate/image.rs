//! `spec.image`: an OCI image reference, as containerd and the kubelet parse it
//! (github.com/distribution/reference), checked in words.
//!
//! [`grammar`] accepts exactly what the CRD's pattern ([`crate::api::IMAGE_PATTERN`]) accepts, and
//! says what is wrong with the rest: `render` and the operator show its words instead of the
//! pattern. [`check`] adds what the runtime refuses although the grammar allows it: a name over
//! 255 characters as the runtime reads it, a bare image ID, and a sha256, sha384 or sha512 digest
//! of the wrong length or case.

use std::fmt;

use crate::api::reference::{IMAGE_EXAMPLE, IMAGE_NAME_MAX_LENGTH, IMAGE_TAG_MAX_LENGTH};

/// What is wrong with an image reference, with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageProblem {
    Empty,
    Whitespace(char),
    Control(char),
    NotAscii(char),
    NoRepository,
    EmptyComponent,
    UpperCasePath(String),
    PathComponent(String),
    Host(String),
    Port(String),
    EmptyTag,
    TagTooLong(usize),
    Tag(String),
    Digest(String),
    DigestLength { algorithm: String, expected: usize, found: String },
    NameTooLong(usize),
    ImageId,
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageProblem::Empty => write!(f, "it is empty; set the image to run"),
            ImageProblem::Whitespace(c) => {
                write!(f, "it contains whitespace ({c:?}); remove it (a stray space or line break)")
            }
            ImageProblem::Control(c) => {
                write!(f, "it contains the control character U+{:04X}; remove it", u32::from(*c))
            }
            ImageProblem::NotAscii(c) => write!(f, "it contains {c:?}, and a reference is plain ASCII; replace it"),
            ImageProblem::NoRepository => {
                write!(f, "it names no repository before the tag or digest; add the repository path")
            }
            ImageProblem::EmptyComponent => {
                write!(f, "its path has an empty component (a leading, trailing or doubled '/'); remove the extra '/'")
            }
            ImageProblem::UpperCasePath(c) => write!(
                f,
                "the repository path has upper-case letters ({c:?}); write it in lower case (only the registry host may have upper-case letters)"
            ),
            ImageProblem::PathComponent(c) => write!(
                f,
                "the path component {c:?} is not lower-case letters and digits separated by '.', '_', '__' or dashes; rename it (it starts and ends with a letter or digit)"
            ),
            ImageProblem::Host(h) => write!(
                f,
                "the registry host {h:?} is not a host name or IP address (labels of letters, digits and inner dashes, separated by dots; an IPv6 address in brackets); correct it"
            ),
            ImageProblem::Port(p) => {
                write!(f, "the registry port {p:?} is not a number; write it in digits, such as localhost:5000/app")
            }
            ImageProblem::EmptyTag => write!(f, "it ends in ':' without a tag; add the tag or remove the ':'"),
            ImageProblem::TagTooLong(n) => {
                write!(f, "the tag is {n} characters long, at most {IMAGE_TAG_MAX_LENGTH} allowed; use a shorter tag")
            }
            ImageProblem::Tag(t) => write!(
                f,
                "the tag {t:?} may hold only letters, digits, '_', '.' and '-', and may not start with '.' or '-'; correct it"
            ),
            ImageProblem::Digest(d) => write!(
                f,
                "the digest {d:?} is not ALGORITHM:HEX with at least 32 hexadecimal digits; copy the digest the registry shows (sha256: and 64 hexadecimal digits)"
            ),
            ImageProblem::DigestLength { algorithm, expected, found } => write!(
                f,
                "a {algorithm} digest is exactly {expected} lower-case hexadecimal digits, not {found:?}; copy the digest the registry shows"
            ),
            ImageProblem::NameTooLong(n) => write!(
                f,
                "the name (registry and repository, as the container runtime reads it) is {n} characters long, at most {IMAGE_NAME_MAX_LENGTH} allowed; shorten the repository path"
            ),
            ImageProblem::ImageId => write!(
                f,
                "64 hexadecimal digits are an image ID, which the container runtime refuses as a reference; name the repository (pin it with @sha256:<digest>)"
            ),
        }
    }
}

/// The whole message about a refused image, after the image itself: what is wrong, what to do,
/// and what a valid reference looks like.
pub fn describe(problem: &ImageProblem) -> String {
    format!(
        "is not a valid image reference: {problem}. A valid one reads [REGISTRY[:PORT]/]REPOSITORY[:TAG][@DIGEST], such as {IMAGE_EXAMPLE} or localhost:5000/app@sha256:<64 hexadecimal digits>"
    )
}

/// The reference's parts, once the grammar holds.
struct Parts<'a> {
    name: &'a str,
    digest: Option<&'a str>,
}

/// The grammar of distribution/reference: exactly what [`crate::api::IMAGE_PATTERN`] accepts
/// (a test holds the two together), with what is wrong with the rest.
pub fn grammar(image: &str) -> Result<(), ImageProblem> {
    parts(image).map(|_| ())
}

/// [`grammar`], and what the container runtime refuses beyond it.
pub fn check(image: &str) -> Result<(), ImageProblem> {
    let Parts { name, digest } = parts(image)?;
    if image.len() == 64 && image.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ImageProblem::ImageId);
    }
    let normalized = normalized_name_length(name);
    if normalized > IMAGE_NAME_MAX_LENGTH {
        return Err(ImageProblem::NameTooLong(normalized));
    }
    if let Some((algorithm, hex)) = digest.and_then(|d| d.split_once(':')) {
        let expected = match algorithm {
            "sha256" => Some(64),
            "sha384" => Some(96),
            "sha512" => Some(128),
            _ => None, // the grammar's general form; the runtime knows whether it has the algorithm
        };
        if let Some(expected) = expected
            && (hex.len() != expected || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(ImageProblem::DigestLength {
                algorithm: algorithm.to_owned(),
                expected,
                found: hex.to_owned(),
            });
        }
    }
    Ok(())
}

/// The tag of a reference, if it has one: what follows the last ':' before any digest, unless a
/// '/' follows that ':' (then it is a registry's port). Assumes nothing about the rest's grammar.
pub fn tag(image: &str) -> Option<&str> {
    let rest = image.split_once('@').map_or(image, |(rest, _)| rest);
    rest.rfind(':').map(|i| &rest[i + 1..]).filter(|t| !t.contains('/'))
}

fn parts(image: &str) -> Result<Parts<'_>, ImageProblem> {
    if image.is_empty() {
        return Err(ImageProblem::Empty);
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace()) {
        return Err(ImageProblem::Whitespace(c));
    }
    if let Some(c) = image.chars().find(|c| c.is_control()) {
        return Err(ImageProblem::Control(c));
    }
    if let Some(c) = image.chars().find(|c| !c.is_ascii()) {
        return Err(ImageProblem::NotAscii(c));
    }
    // ASCII from here: byte offsets are character offsets. No part but the digest holds '@', and
    // a tag is what follows the last ':' unless a '/' does (then that ':' is a registry's port).
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(ImageProblem::NoRepository);
    }
    check_name(name)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return Err(ImageProblem::Digest(digest.to_owned()));
    }
    Ok(Parts { name, digest })
}

fn check_name(name: &str) -> Result<(), ImageProblem> {
    let components: Vec<&str> = name.split('/').collect();
    if components.iter().any(|c| c.is_empty()) {
        return Err(ImageProblem::EmptyComponent);
    }
    let (first, path) = components.split_first().ok_or(ImageProblem::NoRepository)?;
    let first_ok = is_path_component(first) || (!path.is_empty() && is_host_and_port(first));
    if !first_ok {
        let host_like = first.contains(['.', ':', '[', ']']) || first.bytes().any(|b| b.is_ascii_uppercase());
        if !path.is_empty() && host_like {
            return Err(host_problem(first));
        }
        return Err(path_problem(first));
    }
    match path.iter().find(|c| !is_path_component(c)) {
        Some(c) => Err(path_problem(c)),
        None => Ok(()),
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn path_problem(c: &str) -> ImageProblem {
    if c.bytes().any(|b| b.is_ascii_uppercase()) && is_path_component(&c.to_ascii_lowercase()) {
        ImageProblem::UpperCasePath(c.to_owned())
    } else {
        ImageProblem::PathComponent(c.to_owned())
    }
}

/// `host[:port]`: a DNS name (IPv4 included) or a bracketed IPv6 address, and digits.
fn is_host_and_port(c: &str) -> bool {
    let (host, port) = split_port(c);
    port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) && is_host(host)
}

fn split_port(c: &str) -> (&str, Option<&str>) {
    if c.starts_with('[') {
        return match c.find(']') {
            Some(end) => match c[end + 1..].strip_prefix(':') {
                Some(port) => (&c[..=end], Some(port)),
                None if end + 1 == c.len() => (c, None),
                None => (c, Some("")),
            },
            None => (c, None),
        };
    }
    match c.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (c, None),
    }
}

fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    })
}

fn host_problem(c: &str) -> ImageProblem {
    let (host, port) = split_port(c);
    match port {
        Some(p) if is_host(host) => ImageProblem::Port(p.to_owned()),
        _ => ImageProblem::Host(host.to_owned()),
    }
}

/// `[\w][\w.-]{0,127}`, `\w` being ASCII letters, digits and `_` (as in RE2).
fn check_tag(tag: &str) -> Result<(), ImageProblem> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if tag.is_empty() {
        return Err(ImageProblem::EmptyTag);
    }
    let b = tag.as_bytes();
    if !word(b[0]) || !b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-') {
        return Err(ImageProblem::Tag(tag.to_owned()));
    }
    if tag.len() > IMAGE_TAG_MAX_LENGTH {
        return Err(ImageProblem::TagTooLong(tag.len()));
    }
    Ok(())
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else { return false };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The length of the name as the runtime reads it: a name without a registry host is Docker
/// Hub's (`docker.io/`), and an official image's there (`docker.io/library/`).
fn normalized_name_length(name: &str) -> usize {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" { "docker.io" } else { domain };
    let library = if domain == "docker.io" && !remainder.contains('/') { "library/".len() } else { 0 };
    domain.len() + 1 + library + remainder.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IMAGE_PATTERN;

    const SHA: &str = "3f1b0c8a9d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a";

    fn valid() -> Vec<String> {
        let mut v: Vec<String> = [
            "x",
            "nginx",
            "iis:ltsc2022",
            "mcr.microsoft.com/windows/servercore:ltsc2022",
            "mcr.microsoft.com/dotnet/framework/aspnet:4.8-windowsservercore-ltsc2022",
            "registry.example.com/team/app:1.2-ltsc2022",
            "localhost:5000/x",
            "localhost:5000/x:1",
            "localhost/x",
            "192.168.1.10:5000/team/app:v1",
            "10.0.0.1/app",
            "[::1]:5000/app",
            "[fe80::1]/app:latest",
            "Registry.Example.COM/team/app",
            "Foo/bar",
            "my-registry.io:443/a/b/c/d",
            "a.b_c__d---e/f",
            "app:_tag",
            "app:TAG.with-Dots_1",
            "localhost:5000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.push(format!("app@sha256:{SHA}"));
        v.push(format!("registry.example.com/team/app:1.2@sha256:{SHA}"));
        v.push(format!("localhost:5000/x@sha256:{SHA}"));
        v.push(format!("app@sha512:{SHA}{SHA}"));
        v.push(format!("app@multihash+base58:{}", &SHA[..32]));
        v.push(format!("app:{}", "t".repeat(128)));
        v
    }

    fn invalid() -> Vec<(String, ImageProblem)> {
        use ImageProblem::*;
        let mut v: Vec<(String, ImageProblem)> = vec![
            ("", Empty),
            ("registry.example.com/app :1", Whitespace(' ')),
            (" app", Whitespace(' ')),
            ("app\n", Whitespace('\n')),
            ("app\u{7}", Control('\u{7}')),
            ("appé", NotAscii('é')),
            (":1", NoRepository),
            ("@sha256:x", NoRepository),
            ("registry.example.com//app", EmptyComponent),
            ("/app", EmptyComponent),
            ("app/", EmptyComponent),
            ("registry.example.com/Team/app", UpperCasePath("Team".into())),
            ("App", UpperCasePath("App".into())),
            ("registry.example.com/team/-app", PathComponent("-app".into())),
            ("registry.example.com/a..b", PathComponent("a..b".into())),
            ("registry.example.com/a___b", PathComponent("a___b".into())),
            ("registry.example.com/a._b", PathComponent("a._b".into())),
            ("reg_istry.Example.com/app", Host("reg_istry.Example.com".into())),
            ("-registry.example.com/app", Host("-registry.example.com".into())),
            ("registry..example.com/app", Host("registry..example.com".into())),
            ("localhost:port/app", Port("port".into())),
            ("localhost:/app", Port("".into())),
            ("[::g]:5000/app", Host("[::g]".into())),
            ("app:", EmptyTag),
            ("app:-1", Tag("-1".into())),
            ("app:.1", Tag(".1".into())),
            ("app:1+2", Tag("1+2".into())),
            ("app@sha256", Digest("sha256".into())),
            ("app@sha256:abc", Digest("sha256:abc".into())),
            ("app@:0123456789abcdef0123456789abcdef", Digest(":0123456789abcdef0123456789abcdef".into())),
            ("app@", Digest("".into())),
        ]
        .into_iter()
        .map(|(s, p)| (s.to_owned(), p))
        .collect();
        v.push((format!("app:{}", "t".repeat(129)), TagTooLong(129)));
        v.push((format!("app@sha256:{SHA}@x"), Digest(format!("sha256:{SHA}@x"))));
        v.push((format!("app@1sha:{SHA}"), Digest(format!("1sha:{SHA}"))));
        v
    }

    #[test]
    fn valid_references_pass_and_match_the_pattern() {
        let re = regex::Regex::new(IMAGE_PATTERN).expect("the pattern compiles");
        for s in valid() {
            assert_eq!(grammar(&s), Ok(()), "{s}");
            assert!(re.is_match(&s), "the pattern refuses {s}");
            assert_eq!(check(&s), Ok(()), "{s}");
        }
    }

    #[test]
    fn invalid_references_say_what_is_wrong_and_break_the_pattern() {
        let re = regex::Regex::new(IMAGE_PATTERN).expect("the pattern compiles");
        for (s, problem) in invalid() {
            assert_eq!(grammar(&s), Err(problem.clone()), "{s:?}");
            assert!(!re.is_match(&s), "the pattern accepts {s:?}");
            let message = describe(&problem);
            assert!(message.contains("; ") && message.contains(IMAGE_EXAMPLE), "{message}");
        }
    }

    #[test]
    fn what_the_runtime_refuses_beyond_the_grammar() {
        let long = format!("registry.example.com/{}", "a".repeat(235));
        assert_eq!(grammar(&long), Ok(()));
        assert_eq!(check(&long), Err(ImageProblem::NameTooLong(256)));
        assert_eq!(check(&format!("registry.example.com/{}", "a".repeat(234))), Ok(()));
        // Without a registry host the name is Docker Hub's official image's: docker.io/library/...
        assert_eq!(check(&"a".repeat(237)), Ok(()));
        assert_eq!(check(&"a".repeat(238)), Err(ImageProblem::NameTooLong(256)));
        assert_eq!(check(&SHA[..64]), Err(ImageProblem::ImageId));
        assert_eq!(check(&format!("{}:1", &SHA[..64])), Ok(()), "a repository that looks like an ID, with a tag");
        let short = format!("app@sha256:{}", &SHA[..40]);
        assert_eq!(grammar(&short), Ok(()));
        assert!(matches!(check(&short), Err(ImageProblem::DigestLength { expected: 64, .. })));
        let upper = format!("app@sha256:{}", SHA.to_ascii_uppercase());
        assert_eq!(grammar(&upper), Ok(()));
        assert!(matches!(check(&upper), Err(ImageProblem::DigestLength { .. })));
        assert!(matches!(check(&format!("app@sha512:{SHA}")), Err(ImageProblem::DigestLength { expected: 128, .. })));
    }

    /// The words and the pattern agree on every string made of the characters that matter,
    /// reproducible from a fixed seed.
    #[test]
    fn the_grammar_and_the_pattern_agree_on_generated_strings() {
        let re = regex::Regex::new(IMAGE_PATTERN).expect("the pattern compiles");
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "9",
            "f",
            ".",
            "_",
            "__",
            "-",
            "--",
            "/",
            ":",
            "@",
            "[",
            "]",
            "::1",
            "sha256",
            "+",
            "localhost",
            "5000",
            "example.com",
            " ",
            "é",
            "0123456789abcdef0123456789abcdef",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut seeds = valid();
        seeds.extend(invalid().into_iter().map(|(s, _)| s));
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..60_000 {
            let s = if round % 2 == 0 {
                (0..1 + next(8)).map(|_| PIECES[next(PIECES.len())]).collect::<String>()
            } else {
                let mut s = seeds[next(seeds.len())].clone();
                for _ in 0..1 + next(2) {
                    let at = next(s.len() + 1);
                    let at = (0..=at).rev().find(|a| s.is_char_boundary(*a)).unwrap_or(0);
                    if next(3) == 0 && at < s.len() {
                        let end = (at + 1..=s.len()).find(|e| s.is_char_boundary(*e)).unwrap_or(s.len());
                        s.replace_range(at..end, "");
                    } else {
                        s.insert_str(at, PIECES[next(PIECES.len())]);
                    }
                }
                s
            };
            let words = grammar(&s);
            assert_eq!(words.is_ok(), re.is_match(&s), "{s:?}: the grammar says {words:?}");
            if words.is_ok() { accepted += 1 } else { refused += 1 }
        }
        assert!(accepted > 5_000 && refused > 5_000, "{accepted} accepted, {refused} refused");
    }
}
