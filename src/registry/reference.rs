//! Docker image references (`nginx`, `ghcr.io/o/r:tag`, `name@sha256:…`).
//!
//! Docker normalizes what a user types into a fully qualified reference
//! (`nginx` → `docker.io/library/nginx:latest`) before it talks to a
//! registry, and shows the short "familiar" form back to users. We have to
//! do exactly the same, or we would check the wrong repository for new
//! digests, or show names that don't match `docker ps`. The grammar is the
//! one of `distribution/reference`; it is small enough to parse by hand,
//! which keeps the regex crate out of the dependency tree.

use std::fmt;

use thiserror::Error;

/// The registry Docker uses when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The legacy Docker Hub name, normalized to [`DOCKER_HUB`] like Docker does.
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The host that actually serves the Docker Hub registry API.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
/// Prefix of official images on Docker Hub (`nginx` is `library/nginx`).
const OFFICIAL_PREFIX: &str = "library/";
/// Tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest `registry/repository` name Docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest tag the grammar accepts (`[\w][\w.-]{0,127}`).
const TAG_LENGTH_MAX: usize = 128;
/// Shortest hex part the grammar accepts for unknown digest algorithms.
const DIGEST_HEX_MIN: usize = 32;

/// Why a string is not a valid image reference. Messages are written for the
/// person who typed the reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("invalid reference format: reference is empty")]
    Empty,
    #[error("invalid reference format: repository name is empty")]
    EmptyName,
    #[error("invalid reference format: repository name must be lowercase")]
    Uppercase,
    #[error("invalid reference format: repository name has an empty path component")]
    EmptyPathComponent,
    #[error("invalid reference format: path component {component:?} {reason}")]
    InvalidPathComponent { component: String, reason: &'static str },
    #[error("invalid reference format: registry host {host:?} {reason}")]
    InvalidHost { host: String, reason: &'static str },
    #[error("invalid reference format: repository name is {len} characters long, the limit is 255")]
    NameTooLong { len: usize },
    #[error("invalid reference format: tag is empty")]
    EmptyTag,
    #[error("invalid reference format: tag is {len} characters long, the limit is 128")]
    TagTooLong { len: usize },
    #[error("invalid reference format: tag {tag:?} {reason}")]
    InvalidTag { tag: String, reason: &'static str },
    #[error("invalid reference format: digest {digest:?} {reason}")]
    InvalidDigest { digest: String, reason: &'static str },
    #[error("invalid reference format: a 64-character hexadecimal string is an image ID, not a repository name")]
    HexIdentifier,
}

/// A normalized, fully qualified image reference.
///
/// `registry` is lowercased (host names are case-insensitive, and one
/// spelling makes comparisons and credential look-ups simple); `repository`
/// already carries the `library/` prefix for official Docker Hub images.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host with optional port: `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path inside the registry: `library/nginx`, `o/r`.
    pub repository: String,
    /// Tag; `latest` when the reference had neither tag nor digest.
    pub tag: Option<String>,
    /// Content digest such as `sha256:…`, when the reference pins one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// The form users know from `docker ps`: Docker Hub's `docker.io/` and
    /// `library/` stripped, `:latest` added when nothing else names a version.
    pub fn display_name(&self) -> String {
        let mut out = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                // `library/a/b` keeps its prefix: stripping it would turn it
                // into the user repository `a/b`.
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        };
        match (&self.tag, &self.digest) {
            (None, None) => {
                out.push(':');
                out.push_str(DEFAULT_TAG);
            }
            (tag, digest) => {
                if let Some(tag) = tag {
                    out.push(':');
                    out.push_str(tag);
                }
                if let Some(digest) = digest {
                    out.push('@');
                    out.push_str(digest);
                }
            }
        }
        out
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// The host to send registry API requests to. Docker Hub's name
    /// (`docker.io`) is not the host that serves its API.
    pub fn registry_endpoint(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_ENDPOINT
        } else {
            &self.registry
        }
    }

    /// Whether the reference names one exact image, so there is nothing
    /// newer to look for.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// What goes after `/manifests/` in a registry request: the digest when
    /// pinned (it wins over a tag, as in Docker), the tag otherwise.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest,
            (None, Some(tag)) => tag,
            (None, None) => DEFAULT_TAG,
        }
    }
}

impl fmt::Display for ImageRef {
    /// Shows [`ImageRef::display_name`], the form users recognize.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Parses and normalizes a reference the way `docker pull` does.
pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if is_hex_identifier(s) {
        return Err(ReferenceError::HexIdentifier);
    }

    let (name_tag, digest) = match s.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest)),
        None => (s, None),
    };
    let (name, tag) = split_tag(name_tag);
    if name.is_empty() {
        return Err(ReferenceError::EmptyName);
    }

    let (registry, remainder) = split_registry(name);
    if let Some(host) = registry {
        validate_host(host)?;
    }
    validate_path(remainder)?;

    let registry = match registry.map(str::to_ascii_lowercase) {
        None => DOCKER_HUB.to_string(),
        Some(r) if r == LEGACY_DOCKER_HUB => DOCKER_HUB.to_string(),
        Some(r) => r,
    };
    let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
        format!("{OFFICIAL_PREFIX}{remainder}")
    } else {
        remainder.to_string()
    };
    let len = registry.len() + 1 + repository.len();
    if len > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong { len });
    }

    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }
    let tag = match (tag, digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (tag, _) => tag.map(str::to_string),
    };

    Ok(ImageRef { registry, repository, tag, digest: digest.map(str::to_string) })
}

/// Docker refuses bare image IDs as names so they can't be mistaken for
/// repositories.
fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Splits `name[:tag]`. The tag separator is a ':' after the last '/', since
/// a ':' before it belongs to a registry port (`localhost:5000/x`).
fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_tag[..at], Some(&name_tag[at + 1..]))
        }
        None => (name_tag, None),
    }
}

/// Docker's rule: the first component is a registry only if it looks like a
/// host (has a '.' or ':' or is `localhost`); `user/app` is on Docker Hub.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, where host is a domain name, an IPv4 address (which the
/// domain grammar covers) or an IPv6 address in brackets.
fn validate_host(domain: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidHost { host: domain.to_string(), reason };
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let (addr, after) = inner.split_once(']').ok_or_else(|| bad("has an unclosed '['"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("is not a valid IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| bad("has characters after ']' that are not a port"))?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("has a port that is not a number"));
        }
    }
    if let Some(host) = host {
        if host.is_empty() {
            return Err(bad("is empty"));
        }
        for label in host.split('.') {
            let bytes = label.as_bytes();
            let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
                return Err(bad("has an empty label"));
            };
            if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
                return Err(bad("has a label that starts or ends with a non-alphanumeric character"));
            }
            if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
                return Err(bad("contains a character not allowed in a host name"));
            }
        }
    }
    Ok(())
}

/// `path-component ['/' path-component]*`; uppercase is reported on its own
/// because it is by far the most common mistake.
fn validate_path(path: &str) -> Result<(), ReferenceError> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase);
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyPathComponent);
        }
        if let Err(reason) = check_path_component(component) {
            return Err(ReferenceError::InvalidPathComponent { component: component.to_string(), reason });
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`, returning why it doesn't match.
fn check_path_component(c: &str) -> Result<(), &'static str> {
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(if start == 0 {
                "must start with a lowercase letter or digit"
            } else if i == b.len() {
                "must end with a lowercase letter or digit"
            } else {
                "has a separator ('.', '_', '__' or '-') in a place it is not allowed"
            });
        }
        if i == b.len() {
            return Ok(());
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err("may contain only lowercase letters, digits, '.', '_' and '-'"),
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidTag { tag: tag.to_string(), reason };
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    let Some(&first) = b.first() else {
        return Err(ReferenceError::EmptyTag);
    };
    if !is_word(first) {
        return Err(bad("must start with a letter, digit or '_'"));
    }
    if !b.iter().all(|&c| is_word(c) || c == b'.' || c == b'-') {
        return Err(bad("may contain only letters, digits, '_', '.' and '-'"));
    }
    if b.len() > TAG_LENGTH_MAX {
        return Err(ReferenceError::TagTooLong { len: b.len() });
    }
    Ok(())
}

/// `algorithm:hex`. Algorithms Docker knows get their exact length in
/// lowercase hex (as go-digest checks); others follow the bare grammar.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidDigest { digest: digest.to_string(), reason };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(|| bad("must have the form algorithm:hex"))?;
    if !is_digest_algorithm(algorithm) {
        return Err(bad("has an invalid algorithm name"));
    }
    let is_lower_hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    let known_len = match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    match known_len {
        Some(len) => {
            if hex.len() != len || !hex.bytes().all(is_lower_hex) {
                return Err(bad(match algorithm {
                    "sha256" => "must be sha256: followed by 64 lowercase hex characters",
                    "sha384" => "must be sha384: followed by 96 lowercase hex characters",
                    _ => "must be sha512: followed by 128 lowercase hex characters",
                }));
            }
        }
        None => {
            if hex.len() < DIGEST_HEX_MIN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("must have at least 32 hex characters after the algorithm"));
            }
        }
    }
    Ok(())
}

/// `[A-Za-z][A-Za-z0-9]*` components joined by one of `+ . - _`.
fn is_digest_algorithm(a: &str) -> bool {
    !a.is_empty()
        && a.split(['+', '.', '-', '_']).all(|c| {
            let mut bytes = c.bytes();
            bytes.next().is_some_and(|b| b.is_ascii_alphabetic()) && bytes.all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn image(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
        ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn parses_valid_references() {
        let sha = format!("sha256:{HEX}");
        let cases: Vec<(String, ImageRef)> = vec![
            ("nginx".into(), image("docker.io", "library/nginx", Some("latest"), None)),
            ("nginx:1.25".into(), image("docker.io", "library/nginx", Some("1.25"), None)),
            ("library/nginx".into(), image("docker.io", "library/nginx", Some("latest"), None)),
            ("docker.io/library/nginx".into(), image("docker.io", "library/nginx", Some("latest"), None)),
            ("docker.io/nginx".into(), image("docker.io", "library/nginx", Some("latest"), None)),
            ("index.docker.io/nginx".into(), image("docker.io", "library/nginx", Some("latest"), None)),
            ("user/app".into(), image("docker.io", "user/app", Some("latest"), None)),
            ("user/app:1.2".into(), image("docker.io", "user/app", Some("1.2"), None)),
            ("localhost/x".into(), image("localhost", "x", Some("latest"), None)),
            ("localhost".into(), image("docker.io", "library/localhost", Some("latest"), None)),
            ("localhost:5000".into(), image("docker.io", "library/localhost", Some("5000"), None)),
            ("localhost:5000/x:1".into(), image("localhost:5000", "x", Some("1"), None)),
            ("127.0.0.1:5000/a/b/c:t".into(), image("127.0.0.1:5000", "a/b/c", Some("t"), None)),
            ("[::1]:5000/x".into(), image("[::1]:5000", "x", Some("latest"), None)),
            ("[fe80::1]/x:2".into(), image("[fe80::1]", "x", Some("2"), None)),
            ("ghcr.io/o/r".into(), image("ghcr.io", "o/r", Some("latest"), None)),
            ("ghcr.io/o/r:tag".into(), image("ghcr.io", "o/r", Some("tag"), None)),
            ("GHCR.io/o/r".into(), image("ghcr.io", "o/r", Some("latest"), None)),
            (
                "my-Registry.Example.COM:443/team/app".into(),
                image("my-registry.example.com:443", "team/app", Some("latest"), None),
            ),
            (format!("nginx@{sha}"), image("docker.io", "library/nginx", None, Some(&sha))),
            (format!("nginx:1@{sha}"), image("docker.io", "library/nginx", Some("1"), Some(&sha))),
            (format!("ghcr.io/o/r@{sha}"), image("ghcr.io", "o/r", None, Some(&sha))),
            ("a/b.c_d__e-f---g:_T.a-g".into(), image("docker.io", "a/b.c_d__e-f---g", Some("_T.a-g"), None)),
            (format!("x:{}", "a".repeat(128)), image("docker.io", "library/x", Some(&"a".repeat(128)), None)),
            (
                format!("x@sha512:{}", "a".repeat(128)),
                image("docker.io", "library/x", None, Some(&format!("sha512:{}", "a".repeat(128)))),
            ),
            (
                format!("x@multihash+base58:{}", "A".repeat(32)),
                image("docker.io", "library/x", None, Some(&format!("multihash+base58:{}", "A".repeat(32)))),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(&input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_invalid_references_with_a_reason() {
        let cases: Vec<(String, ReferenceError)> = vec![
            ("".into(), ReferenceError::Empty),
            ("NGINX".into(), ReferenceError::Uppercase),
            ("User/app".into(), ReferenceError::Uppercase),
            ("ghcr.io/Owner/r".into(), ReferenceError::Uppercase),
            ("nginx:".into(), ReferenceError::EmptyTag),
            (":tag".into(), ReferenceError::EmptyName),
            ("a//b".into(), ReferenceError::EmptyPathComponent),
            ("a/".into(), ReferenceError::EmptyPathComponent),
            ("ghcr.io/".into(), ReferenceError::EmptyPathComponent),
            (HEX.into(), ReferenceError::HexIdentifier),
            (format!("x:{}", "a".repeat(129)), ReferenceError::TagTooLong { len: 129 }),
        ];
        for (input, want) in cases {
            assert_eq!(parse(&input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_parts() {
        // (input, expected substring of the message)
        let long_name = format!("ghcr.io/{}", "a".repeat(250));
        let cases: Vec<(String, &str)> = vec![
            ("NGINX".into(), "repository name must be lowercase"),
            ("nginx@sha256:abc".into(), "64 lowercase hex"),
            (format!("nginx@sha256:{}", HEX.to_uppercase()), "64 lowercase hex"),
            (format!("nginx@sha256:{HEX}0"), "64 lowercase hex"),
            ("nginx@".into(), "algorithm:hex"),
            ("nginx@md5:abc".into(), "at least 32 hex"),
            (format!("nginx@1sha:{HEX}"), "invalid algorithm"),
            (format!("nginx@@sha256:{HEX}"), "algorithm"),
            ("-a".into(), "must start with a lowercase letter or digit"),
            ("a-".into(), "must end with a lowercase letter or digit"),
            ("a._b".into(), "separator"),
            ("a___b".into(), "separator"),
            ("a/.b".into(), "must start"),
            ("nginx:tag with space".into(), "may contain only letters"),
            ("nginx:.tag".into(), "must start with a letter"),
            ("nginx:-tag".into(), "must start with a letter"),
            ("nginx:ta:g".into(), "may contain only lowercase letters"),
            ("ngi$nx".into(), "may contain only lowercase letters"),
            (" nginx".into(), "must start with a lowercase letter or digit"),
            ("host_name.io/x".into(), "not allowed in a host name"),
            ("-host.io/x".into(), "starts or ends"),
            ("host..io/x".into(), "empty label"),
            ("host.io:/x".into(), "port that is not a number"),
            ("host.io:5x/x".into(), "port that is not a number"),
            (":5000/x".into(), "is empty"),
            ("[::1/x".into(), "unclosed"),
            ("[]:5000/x".into(), "IPv6"),
            ("[::g]/x".into(), "IPv6"),
            ("[::1]x/y".into(), "not a port"),
            ("[::1]".into(), "must start"),
            (format!("x:{}", "a".repeat(129)), "limit is 128"),
            (long_name, "limit is 255"),
        ];
        for (input, want) in cases {
            match parse(&input) {
                Ok(r) => panic!("input {input:?} parsed as {r:?}"),
                Err(e) => assert!(e.to_string().contains(want), "input {input:?}: message {e:?} lacks {want:?}"),
            }
        }
    }

    #[test]
    fn name_length_limit_counts_the_normalized_name() {
        // "docker.io/" + "library/" + 237 = 255 characters.
        let ok = "a".repeat(237);
        assert!(parse(&ok).is_ok());
        let too_long = "a".repeat(238);
        assert_eq!(parse(&too_long), Err(ReferenceError::NameTooLong { len: 256 }));
    }

    #[test]
    fn display_name_is_the_familiar_form() {
        let sha = format!("sha256:{HEX}");
        let cases: Vec<(String, String)> = vec![
            ("nginx".into(), "nginx:latest".into()),
            ("docker.io/library/nginx:1.25".into(), "nginx:1.25".into()),
            ("index.docker.io/user/app:1.2".into(), "user/app:1.2".into()),
            ("docker.io/library/a/b".into(), "library/a/b:latest".into()),
            ("127.0.0.1:5000/x".into(), "127.0.0.1:5000/x:latest".into()),
            ("ghcr.io/o/r:tag".into(), "ghcr.io/o/r:tag".into()),
            ("[::1]:5000/x".into(), "[::1]:5000/x:latest".into()),
            (format!("nginx@{sha}"), format!("nginx@{sha}")),
            (format!("docker.io/library/nginx:1.2@{sha}"), format!("nginx:1.2@{sha}")),
        ];
        for (input, want) in cases {
            let r = parse(&input).expect("valid reference");
            assert_eq!(r.display_name(), want, "input {input:?}");
            assert_eq!(r.to_string(), want, "input {input:?}");
        }
        // Fields are public, so a hand-built reference without tag or digest
        // still shows as :latest.
        assert_eq!(image("docker.io", "library/x", None, None).display_name(), "x:latest");
    }

    #[test]
    fn endpoint_pinning_and_manifest_reference() {
        let sha = format!("sha256:{HEX}");
        // (input, endpoint, pinned, manifest reference)
        let cases: Vec<(String, &str, bool, String)> = vec![
            ("nginx".into(), "registry-1.docker.io", false, "latest".into()),
            ("user/app:2".into(), "registry-1.docker.io", false, "2".into()),
            ("ghcr.io/o/r:t".into(), "ghcr.io", false, "t".into()),
            ("127.0.0.1:5000/x".into(), "127.0.0.1:5000", false, "latest".into()),
            (format!("nginx:1@{sha}"), "registry-1.docker.io", true, sha.clone()),
            (format!("ghcr.io/o/r@{sha}"), "ghcr.io", true, sha.clone()),
        ];
        for (input, endpoint, pinned, manifest) in cases {
            let r = parse(&input).expect("valid reference");
            assert_eq!(r.registry_endpoint(), endpoint, "input {input:?}");
            assert_eq!(r.is_pinned(), pinned, "input {input:?}");
            assert_eq!(r.manifest_reference(), manifest, "input {input:?}");
        }
        assert_eq!(image("docker.io", "library/x", None, None).manifest_reference(), "latest");
    }

    #[test]
    fn path_component_grammar() {
        let cases = [
            ("a", true),
            ("a0", true),
            ("a.b", true),
            ("a_b", true),
            ("a__b", true),
            ("a-b", true),
            ("a---b", true),
            ("a.b.c-d_e", true),
            ("a..b", false),
            ("a___b", false),
            ("a_.b", false),
            ("a-.b", false),
            ("_a", false),
            ("a_", false),
            ("a b", false),
            ("é", false),
        ];
        for (input, want) in cases {
            assert_eq!(check_path_component(input).is_ok(), want, "input {input:?}");
        }
    }
}
