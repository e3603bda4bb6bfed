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
/// Longest repository path Docker accepts. The registry host does not
/// count: `example.com/` followed by 255 characters is a valid name.
const REPOSITORY_LENGTH_MAX: usize = 255;
/// Longest tag the grammar accepts (`[\w][\w.-]{0,127}`).
const TAG_LENGTH_MAX: usize = 128;

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
/// `registry` keeps the spelling it was written in, as Docker keeps it: the
/// engine stores, shows and looks up credentials by the host as written, and
/// only the exact `docker.io` is Docker Hub (`DOCKER.IO/x` is a registry of
/// its own). `repository` already carries the `library/` prefix for official
/// Docker Hub images.
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

impl ImageRef {
    /// Identifies the repository whatever the tag: tag listings are cached per repository.
    pub fn repository_key(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// `reference` as the user wrote it (host spelling, Hub short form kept),
/// moved to `tag`: a digest pin is dropped with the old tag, since the new
/// tag is what the container should follow from now on.
pub fn with_tag(reference: &str, tag: &str) -> String {
    let name = reference.split_once('@').map_or(reference, |(name, _)| name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    format!("{name}:{tag}")
}

impl fmt::Display for ImageRef {
    /// Shows [`ImageRef::display_name`], the form users recognize.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// Parses and normalizes a reference the way `docker pull` and `docker run`
/// do (distribution/reference's `ParseNormalizedNamed`, then `:latest` when
/// the reference names neither tag nor digest).
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

    let registry = match registry {
        None | Some(LEGACY_DOCKER_HUB) => DOCKER_HUB,
        Some(r) => r,
    };
    let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
        format!("{OFFICIAL_PREFIX}{remainder}")
    } else {
        remainder.to_string()
    };
    if repository.len() > REPOSITORY_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong { len: repository.len() });
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

    Ok(ImageRef { registry: registry.to_string(), repository, tag, digest: digest.map(str::to_string) })
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

/// Docker's rule: the first of several components is a registry if it looks
/// like a host (has a '.' or ':', or is `localhost`) or has an uppercase
/// letter, which no repository path may have (`LOCALDOMAIN/debian`);
/// otherwise the name is on Docker Hub (`user/app`).
///
/// Docker goes one step further for a first component that contains a '.'
/// but is no valid host and is a valid path component (`foo_bar.com/app`):
/// it keeps the whole name as a path with *no* registry, which nothing can
/// pull from. Such a name is refused here, by [`validate_host`], since there
/// is no registry to check it against.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first == "localhost" || first.contains(['.', ':']) || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, where host is a domain name (any case), an IPv4 address
/// (which the domain grammar covers) or an IPv6 address in brackets. Like
/// Docker, the port is any run of digits; a port out of range fails when
/// the registry is contacted.
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

/// `algorithm:hex` with an algorithm Docker can verify: sha256, sha384 or
/// sha512, each with its exact length in lowercase hex (go-digest's rules).
/// Any other algorithm fits the reference grammar but is refused by Docker,
/// so an image pinned to it could never be pulled.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidDigest { digest: digest.to_string(), reason };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(|| bad("must have the form algorithm:hex"))?;
    let (len, reason) = match algorithm {
        "sha256" => (64, "must be sha256: followed by 64 lowercase hex characters"),
        "sha384" => (96, "must be sha384: followed by 96 lowercase hex characters"),
        "sha512" => (128, "must be sha512: followed by 128 lowercase hex characters"),
        _ => return Err(bad("has an unsupported algorithm: only sha256, sha384 and sha512 are valid")),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(reason));
    }
    Ok(())
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

    /// Docker's `Name()` of a named reference: `registry/repository`.
    fn full_name(r: &ImageRef) -> String {
        format!("{}/{}", r.registry, r.repository)
    }

    /// Docker's `String()` of the reference: full name, tag and digest.
    fn full_string(r: &ImageRef) -> String {
        let mut out = full_name(r);
        if let Some(tag) = &r.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &r.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    #[test]
    fn with_tag_keeps_the_spelling() {
        let cases = [
            ("nginx", "1.27", "nginx:1.27"),
            ("nginx:latest", "1.27", "nginx:1.27"),
            ("127.0.0.1:5000/app:1.0.0", "1.1.0", "127.0.0.1:5000/app:1.1.0"),
            ("127.0.0.1:5000/app", "2", "127.0.0.1:5000/app:2"),
            ("Registry.Example:443/o/r:1@sha256:abc", "2", "Registry.Example:443/o/r:2"),
            ("[::1]:5000/x/y", "v1", "[::1]:5000/x/y:v1"),
        ];
        for (reference, tag, expected) in cases {
            assert_eq!(with_tag(reference, tag), expected, "{reference}");
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
            // A registry host keeps the case it was written in.
            ("GHCR.io/o/r".into(), image("GHCR.io", "o/r", Some("latest"), None)),
            (
                "my-Registry.Example.COM:443/team/app".into(),
                image("my-Registry.Example.COM:443", "team/app", Some("latest"), None),
            ),
            // An uppercase first component is a registry host.
            ("LOCALDOMAIN/debian".into(), image("LOCALDOMAIN", "debian", Some("latest"), None)),
            ("Foo/bar:1".into(), image("Foo", "bar", Some("1"), None)),
            // Only the exact lowercase names mean Docker Hub.
            ("DOCKER.IO/foo".into(), image("DOCKER.IO", "foo", Some("latest"), None)),
            ("Docker.io/library/foo".into(), image("Docker.io", "library/foo", Some("latest"), None)),
            ("INDEX.DOCKER.IO/foo".into(), image("INDEX.DOCKER.IO", "foo", Some("latest"), None)),
            (format!("nginx@{sha}"), image("docker.io", "library/nginx", None, Some(&sha))),
            (format!("nginx:1@{sha}"), image("docker.io", "library/nginx", Some("1"), Some(&sha))),
            (format!("ghcr.io/o/r@{sha}"), image("ghcr.io", "o/r", None, Some(&sha))),
            ("a/b.c_d__e-f---g:_T.a-g".into(), image("docker.io", "a/b.c_d__e-f---g", Some("_T.a-g"), None)),
            (format!("x:{}", "a".repeat(128)), image("docker.io", "library/x", Some(&"a".repeat(128)), None)),
            (
                format!("x@sha384:{}", "a".repeat(96)),
                image("docker.io", "library/x", None, Some(&format!("sha384:{}", "a".repeat(96)))),
            ),
            (
                format!("x@sha512:{}", "a".repeat(128)),
                image("docker.io", "library/x", None, Some(&format!("sha512:{}", "a".repeat(128)))),
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
            ("user/App".into(), ReferenceError::Uppercase),
            ("ghcr.io/Owner/r".into(), ReferenceError::Uppercase),
            ("Foo/Bar".into(), ReferenceError::Uppercase),
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
        let cases: Vec<(String, &str)> = vec![
            ("NGINX".into(), "repository name must be lowercase"),
            ("nginx@sha256:abc".into(), "64 lowercase hex"),
            (format!("nginx@sha256:{}", HEX.to_uppercase()), "64 lowercase hex"),
            (format!("nginx@sha256:{HEX}0"), "64 lowercase hex"),
            (format!("nginx@sha384:{HEX}"), "96 lowercase hex"),
            (format!("nginx@sha512:{HEX}"), "128 lowercase hex"),
            ("nginx@".into(), "algorithm:hex"),
            ("nginx@md5:0123456789abcdef0123456789abcdef".into(), "unsupported algorithm"),
            (format!("nginx@SHA256:{HEX}"), "unsupported algorithm"),
            (format!("nginx@1sha:{HEX}"), "unsupported algorithm"),
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
            ("Host_Name/x".into(), "not allowed in a host name"),
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
            (format!("ghcr.io/{}", "a".repeat(256)), "limit is 255"),
        ];
        for (input, want) in cases {
            match parse(&input) {
                Ok(r) => panic!("input {input:?} parsed as {r:?}"),
                Err(e) => assert!(e.to_string().contains(want), "input {input:?}: message {e:?} lacks {want:?}"),
            }
        }
    }

    #[test]
    fn name_length_limit_counts_the_repository_path_only() {
        // The normalized path of a Docker Hub name includes "library/": 8 + 247 = 255.
        assert!(parse(&"a".repeat(247)).is_ok());
        assert_eq!(parse(&"a".repeat(248)), Err(ReferenceError::NameTooLong { len: 256 }));
        // The host does not count, however long.
        let host = format!("{}.example.com", "h".repeat(60));
        assert!(parse(&format!("{host}/{}", "a".repeat(255))).is_ok());
        assert_eq!(parse(&format!("{host}/{}", "a".repeat(256))), Err(ReferenceError::NameTooLong { len: 256 }));
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
            ("GHCR.io/o/r:tag".into(), "GHCR.io/o/r:tag".into()),
            ("[::1]:5000/x".into(), "[::1]:5000/x:latest".into()),
            ("LOCALDOMAIN/debian".into(), "LOCALDOMAIN/debian:latest".into()),
            ("DOCKER.IO/library/nginx".into(), "DOCKER.IO/library/nginx:latest".into()),
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
        // (input, endpoint, Docker Hub, pinned, manifest reference)
        let cases: Vec<(String, &str, bool, bool, String)> = vec![
            ("nginx".into(), "registry-1.docker.io", true, false, "latest".into()),
            ("user/app:2".into(), "registry-1.docker.io", true, false, "2".into()),
            ("index.docker.io/user/app".into(), "registry-1.docker.io", true, false, "latest".into()),
            ("DOCKER.IO/user/app".into(), "DOCKER.IO", false, false, "latest".into()),
            ("ghcr.io/o/r:t".into(), "ghcr.io", false, false, "t".into()),
            ("127.0.0.1:5000/x".into(), "127.0.0.1:5000", false, false, "latest".into()),
            (format!("nginx:1@{sha}"), "registry-1.docker.io", true, true, sha.clone()),
            (format!("ghcr.io/o/r@{sha}"), "ghcr.io", false, true, sha.clone()),
        ];
        for (input, endpoint, hub, pinned, manifest) in cases {
            let r = parse(&input).expect("valid reference");
            assert_eq!(r.registry_endpoint(), endpoint, "input {input:?}");
            assert_eq!(r.is_docker_hub(), hub, "input {input:?}");
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

    #[test]
    fn digests_docker_can_verify() {
        let hex = |n: usize| "0123456789abcdef".repeat(8)[..n].to_string();
        let cases: Vec<(String, bool)> = vec![
            (format!("sha256:{}", hex(64)), true),
            (format!("sha384:{}", hex(96)), true),
            (format!("sha512:{}", hex(128)), true),
            (format!("sha256:{}", hex(63)), false),
            (format!("sha256:{}", hex(65)), false),
            (format!("sha256:{}", hex(34)), false),
            (format!("sha384:{}", hex(64)), false),
            (format!("sha512:{}", hex(64)), false),
            (format!("sha512:{}", hex(96)), false),
            (format!("sha256:{}", hex(64).to_uppercase()), false),
            (format!("sha256:{}g", hex(63)), false),
            (format!("SHA256:{}", hex(64)), false),
            (format!("Sha512:{}", hex(128)), false),
            (format!("md5:{}", hex(32)), false),
            (format!("sha1:{}", hex(40)), false),
            (format!("blake3:{}", hex(64)), false),
            (format!("sha256+b64:{}", hex(64)), false),
            (format!("multihash+base58:{}", hex(64)), false),
            (format!("invaliddigest:{}", hex(64)), false),
            ("sha256:".into(), false),
            (hex(64), false),
        ];
        for (digest, want) in cases {
            assert_eq!(validate_digest(&digest).is_ok(), want, "digest {digest:?}");
            assert_eq!(parse(&format!("busybox@{digest}")).is_ok(), want, "digest {digest:?}");
        }
    }

    // The tables below are ported from distribution/reference, the library
    // the Docker CLI and engine parse references with (normalize_test.go,
    // reference_test.go, regexp_test.go). `parse` behaves as its
    // `ParseNormalizedNamed` plus `TagNameOnly`, which `docker pull` and
    // `docker run` use, so cases written there against the non-normalizing
    // `Parse` are given here with their normalized registry and path.

    /// normalize_test.go: TestValidateReferenceName and TestValidateRemoteName.
    #[test]
    fn docker_valid_and_invalid_names() {
        let hex64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "localhost/library/debian",
            "localhost/debian",
            "LOCALDOMAIN/library/debian",
            "LOCALDOMAIN/debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            &format!("docker.io/{hex64}"),
            "Docker/docker",
            "DOCKER/docker",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for name in valid {
            assert!(parse(name).is_ok(), "{name:?} should be valid: {:?}", parse(name));
        }
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            hex64,
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
        ];
        for name in invalid {
            assert!(parse(name).is_err(), "{name:?} should be invalid: {:?}", parse(name));
        }
    }

    /// normalize_test.go: TestParseRepositoryInfo. Every familiar, full and
    /// ambiguous spelling gives the same registry, path, familiar and full
    /// name (the familiar form with the `:latest` that `parse` adds).
    #[test]
    fn docker_repository_info() {
        // (path, familiar, full, ambiguous, registry)
        let cases = [
            ("fooo", "localhost/fooo", "localhost/fooo", "localhost/fooo", "localhost"),
            ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost"),
            ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN"),
            ("fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN"),
            ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
            ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
            ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
            ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
            (
                "private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "",
                "127.0.0.1:8000",
            ),
            ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
            ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
            ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
            (
                "private/moonbase",
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
                "",
                "example.com:8000",
            ),
            ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "", "example.com:8000"),
            (
                "library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io",
            ),
            ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
            ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
            ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
            ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
            ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
            // Not in the library's table: Docker Hub only by its exact lowercase names.
            ("foo", "DOCKER.IO/foo", "DOCKER.IO/foo", "", "DOCKER.IO"),
            ("library/foo", "Index.Docker.io/library/foo", "Index.Docker.io/library/foo", "", "Index.Docker.io"),
        ];
        for (path, familiar, full, ambiguous, registry) in cases {
            for input in [familiar, full, ambiguous].into_iter().filter(|s| !s.is_empty()) {
                let r = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(r.registry, registry, "registry of {input:?}");
                assert_eq!(r.repository, path, "path of {input:?}");
                assert_eq!(full_name(&r), full, "full name of {input:?}");
                assert_eq!(r.display_name(), format!("{familiar}:latest"), "familiar name of {input:?}");
            }
        }
    }

    /// normalize_test.go: TestParseReferenceWithTagAndDigest.
    #[test]
    fn docker_tag_and_digest_together() {
        let short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
        let r = parse(short).expect("valid reference");
        assert_eq!(full_string(&r), format!("docker.io/library/{short}"));
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(r.is_pinned());
        assert_eq!(r.display_name(), short);
    }

    /// normalize_test.go: TestNormalizedSplitHostname, and the inputs of
    /// reference_test.go's TestDomainAndPath and TestParseNamed normalized.
    #[test]
    fn docker_split_registry_and_path() {
        let cases = [
            ("test.com/foo", "test.com", "foo"),
            ("test_com/foo", "docker.io", "test_com/foo"),
            ("docker/migrator", "docker.io", "docker/migrator"),
            ("test.com:8080/foo", "test.com:8080", "foo"),
            ("test-com:8080/foo", "test-com:8080", "foo"),
            ("test:8080/foo", "test:8080", "foo"),
            ("foo", "docker.io", "library/foo"),
            ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
            ("docker.io/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo", "docker.io", "library/foo"),
            ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
            ("library/foo", "docker.io", "library/foo"),
            ("test.com", "docker.io", "library/test.com"),
        ];
        for (input, registry, path) in cases {
            let r = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!((r.registry.as_str(), r.repository.as_str()), (registry, path), "input {input:?}");
        }
    }

    /// reference_test.go: TestReferenceParse, TestWithNameFailure and
    /// TestSerialization, normalized: (input, registry, path, tag, digest),
    /// `None` when the reference is invalid.
    #[test]
    fn docker_reference_parse() {
        let f64 = format!("sha256:{}", "f".repeat(64));
        let f128 = format!("sha512:{}", "f".repeat(128));
        type Want<'a> = Option<(&'a str, String, Option<&'a str>, Option<&'a str>)>;
        let ok = |registry, path: &str, tag, digest| Some((registry, path.to_string(), tag, digest));
        let a255 = "a".repeat(255);
        let deep = format!("{}a", "a/".repeat(127));
        let cases: Vec<(String, Want)> = vec![
            ("test_com".into(), ok("docker.io", "library/test_com", Some("latest"), None)),
            ("test.com:tag".into(), ok("docker.io", "library/test.com", Some("tag"), None)),
            ("test.com:5000".into(), ok("docker.io", "library/test.com", Some("5000"), None)),
            ("test.com/repo:tag".into(), ok("test.com", "repo", Some("tag"), None)),
            ("test:5000/repo".into(), ok("test:5000", "repo", Some("latest"), None)),
            ("test:5000/repo:tag".into(), ok("test:5000", "repo", Some("tag"), None)),
            (format!("test:5000/repo@{f64}"), ok("test:5000", "repo", None, Some(&f64))),
            (format!("test:5000/repo:tag@{f64}"), ok("test:5000", "repo", Some("tag"), Some(&f64))),
            ("".into(), None),
            (":justtag".into(), None),
            (format!("@{f64}"), None),
            (format!("repo@sha256:{}", "f".repeat(34)), None),
            (format!("validname@invaliddigest:{}", "f".repeat(64)), None),
            // The library's test binary registers no sha512; Docker does.
            (format!("validname@sha512:{}", "f".repeat(128)), ok("docker.io", "library/validname", None, Some(&f128))),
            ("Uppercase:tag".into(), None),
            // The library's FIXME: an uppercase first component is a registry.
            ("Uppercase/lowercase:tag".into(), ok("Uppercase", "lowercase", Some("tag"), None)),
            ("test:5000/Uppercase/lowercase:tag".into(), None),
            ("lowercase:Uppercase".into(), ok("docker.io", "library/lowercase", Some("Uppercase"), None)),
            (format!("domain/{}:tag", "a".repeat(256)), None),
            (format!("{deep}:tag-puts-this-over-max"), ok("docker.io", &deep, Some("tag-puts-this-over-max"), None)),
            ("aa/asdf$$^/aa".into(), None),
            ("sub-dom1.foo.com/bar/baz/quux".into(), ok("sub-dom1.foo.com", "bar/baz/quux", Some("latest"), None)),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
                ok("sub-dom1.foo.com", "bar/baz/quux", Some("some-long-tag"), None),
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com".into(),
                ok("b.gcr.io", "test.example.com/my-app", Some("test.example.com"), None),
            ),
            ("xn--n3h.com/myimage:xn--n3h.com".into(), ok("xn--n3h.com", "myimage", Some("xn--n3h.com"), None)),
            (
                format!("xn--7o8h.com/myimage:xn--7o8h.com@{f64}"),
                ok("xn--7o8h.com", "myimage", Some("xn--7o8h.com"), Some(&f64)),
            ),
            ("foo_bar.com:8080".into(), ok("docker.io", "library/foo_bar.com", Some("8080"), None)),
            ("foo/foo_bar.com:8080".into(), ok("docker.io", "foo/foo_bar.com", Some("8080"), None)),
            ("192.168.1.1".into(), ok("docker.io", "library/192.168.1.1", Some("latest"), None)),
            ("192.168.1.1:tag".into(), ok("docker.io", "library/192.168.1.1", Some("tag"), None)),
            ("192.168.1.1:5000".into(), ok("docker.io", "library/192.168.1.1", Some("5000"), None)),
            ("192.168.1.1/repo".into(), ok("192.168.1.1", "repo", Some("latest"), None)),
            ("192.168.1.1:5000/repo".into(), ok("192.168.1.1:5000", "repo", Some("latest"), None)),
            ("192.168.1.1:5000/repo:5050".into(), ok("192.168.1.1:5000", "repo", Some("5050"), None)),
            ("[2001:db8::1]".into(), None),
            ("[2001:db8::1]:5000".into(), None),
            ("[2001:db8::1]:tag".into(), None),
            ("[2001:db8::1]/repo".into(), ok("[2001:db8::1]", "repo", Some("latest"), None)),
            ("[2001:db8:1:2:3:4:5:6]/repo:tag".into(), ok("[2001:db8:1:2:3:4:5:6]", "repo", Some("tag"), None)),
            ("[2001:db8::1]:5000/repo".into(), ok("[2001:db8::1]:5000", "repo", Some("latest"), None)),
            ("[2001:db8::1]:5000/repo:tag".into(), ok("[2001:db8::1]:5000", "repo", Some("tag"), None)),
            (format!("[2001:db8::1]:5000/repo@{f64}"), ok("[2001:db8::1]:5000", "repo", None, Some(&f64))),
            (format!("[2001:db8::1]:5000/repo:tag@{f64}"), ok("[2001:db8::1]:5000", "repo", Some("tag"), Some(&f64))),
            ("[2001:db8::]:5000/repo".into(), ok("[2001:db8::]:5000", "repo", Some("latest"), None)),
            ("[::1]:5000/repo".into(), ok("[::1]:5000", "repo", Some("latest"), None)),
            ("[fe80::1%eth0]:5000/repo".into(), None),
            ("[fe80::1%@invalidzone]:5000/repo".into(), None),
            (format!("example.com/{a255}:tag"), ok("example.com", &a255, Some("tag"), None)),
            (format!("example.com/{}", "a".repeat(256)), None),
            ("example.com:8000/named".into(), ok("example.com:8000", "named", Some("latest"), None)),
            ("example.com:8000/named:tagged".into(), ok("example.com:8000", "named", Some("tagged"), None)),
            (
                "other.com/named@sha256:1234567890098765432112345667890098765432112345667890098765432112".into(),
                ok(
                    "other.com",
                    "named",
                    None,
                    Some("sha256:1234567890098765432112345667890098765432112345667890098765432112"),
                ),
            ),
            ("test.com:8000/foo:TAG5".into(), ok("test.com:8000", "foo", Some("TAG5"), None)),
        ];
        for (input, want) in cases {
            let got =
                parse(&input).ok().map(|r| (r.registry.clone(), r.repository.clone(), r.tag.clone(), r.digest.clone()));
            let want = want.map(|(registry, path, tag, digest)| {
                (registry.to_string(), path, tag.map(str::to_string), digest.map(str::to_string))
            });
            assert_eq!(got, want, "input {input:?}");
        }
    }

    /// normalize_test.go: TestParseAnyReference (the named cases; a bare
    /// 64-hex ID is an image ID there and no name here) and
    /// TestParseDockerRef. The full form is what `docker pull` fetches: the
    /// digest when there is one (it wins over the tag), else the tag.
    #[test]
    fn docker_full_forms() {
        let redis = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
        let busybox = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
        let cases: Vec<(String, String)> = vec![
            ("redis".into(), "docker.io/library/redis:latest".into()),
            ("redis:latest".into(), "docker.io/library/redis:latest".into()),
            ("docker.io/library/redis:latest".into(), "docker.io/library/redis:latest".into()),
            (format!("redis@{redis}"), format!("docker.io/library/redis@{redis}")),
            (format!("docker.io/library/redis@{redis}"), format!("docker.io/library/redis@{redis}")),
            ("dmcgowan/myapp".into(), "docker.io/dmcgowan/myapp:latest".into()),
            ("dmcgowan/myapp:latest".into(), "docker.io/dmcgowan/myapp:latest".into()),
            ("docker.io/mcgowan/myapp:latest".into(), "docker.io/mcgowan/myapp:latest".into()),
            (format!("dmcgowan/myapp@{redis}"), format!("docker.io/dmcgowan/myapp@{redis}")),
            (format!("docker.io/dmcgowan/myapp@{redis}"), format!("docker.io/dmcgowan/myapp@{redis}")),
            (
                "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9".into(),
                "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest".into(),
            ),
            ("dbcc1".into(), "docker.io/library/dbcc1:latest".into()),
            ("busybox".into(), "docker.io/library/busybox:latest".into()),
            ("busybox:latest".into(), "docker.io/library/busybox:latest".into()),
            (format!("busybox@{busybox}"), format!("docker.io/library/busybox@{busybox}")),
            ("library/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("docker.io/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("docker.io/library/busybox".into(), "docker.io/library/busybox:latest".into()),
            ("docker.io/busybox:latest".into(), "docker.io/library/busybox:latest".into()),
            ("library/busybox:latest".into(), "docker.io/library/busybox:latest".into()),
            ("gcr.io/library/busybox".into(), "gcr.io/library/busybox:latest".into()),
            (format!("gcr.io/library/busybox:latest@{busybox}"), format!("gcr.io/library/busybox@{busybox}")),
        ];
        for (input, want) in cases {
            let r = parse(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let pulled = match &r.digest {
                Some(digest) => format!("{}@{digest}", full_name(&r)),
                None => format!("{}:{}", full_name(&r), r.manifest_reference()),
            };
            assert_eq!(pulled, want, "input {input:?}");
            // The full form reads back as the same reference.
            assert_eq!(parse(&full_string(&r)).as_ref(), Ok(&r), "input {input:?}");
        }
        assert_eq!(parse(redis.trim_start_matches("sha256:")), Err(ReferenceError::HexIdentifier));
    }

    /// regexp_test.go: TestIdentifierRegexp. Only a lowercase 64-hex string
    /// is an image ID; anything else is read as a name.
    #[test]
    fn docker_identifiers() {
        let id = "da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821";
        assert_eq!(parse(id), Err(ReferenceError::HexIdentifier));
        assert_eq!(parse(&id.to_uppercase()), Err(ReferenceError::Uppercase));
        let short = &id[..60];
        assert_eq!(parse(short).map(|r| r.repository), Ok(format!("library/{short}")));
        let long = format!("{id}8482");
        assert_eq!(parse(&long).map(|r| r.repository), Ok(format!("library/{long}")));
        // Normalized parsing reads "sha256:<hex>" as the image `sha256` with a tag.
        assert_eq!(parse(&format!("sha256:{id}")), Ok(image("docker.io", "library/sha256", Some(id), None)));
    }

    /// regexp_test.go: TestDomainRegexp.
    #[test]
    fn docker_registry_host_grammar() {
        let cases = [
            ("test.com", true),
            ("test.com:10304", true),
            ("test.com:http", false),
            ("localhost", true),
            ("localhost:8080", true),
            ("a", true),
            ("a.b", true),
            ("ab.cd.com", true),
            ("a-b.com", true),
            ("-ab.com", false),
            ("ab-.com", false),
            ("ab.c-om", true),
            ("ab.-com", false),
            ("ab.com-", false),
            ("0101.com", true),
            ("001a.com", true),
            ("b.gbc.io:443", true),
            ("b.gbc.io", true),
            ("xn--n3h.com", true),
            ("Asdf.com", true),
            ("192.168.1.1:75050", true),
            ("192.168.1.1:750050", true),
            ("[fd00:1:2::3]:75050", true),
            ("[fd00:1:2::3]75050", false),
            ("[fd00:1:2::3]::75050", false),
            ("[fd00:1:2::3%eth0]:75050", false),
            ("[fd00123123123]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", true),
            ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", true),
            ("fd00:1:2::3:75050", false),
        ];
        for (host, want) in cases {
            assert_eq!(validate_host(host).is_ok(), want, "host {host:?}");
        }
    }

    /// regexp_test.go: TestFullNameRegexp, normalized: (name, registry,
    /// path), registry `""` when the name is invalid.
    #[test]
    fn docker_name_grammar() {
        let deep = format!("{}a", "a/".repeat(128));
        let cases: Vec<(&str, &str, &str)> = vec![
            ("", "", ""),
            ("short", "docker.io", "library/short"),
            ("simple/name", "docker.io", "simple/name"),
            ("library/ubuntu", "docker.io", "library/ubuntu"),
            ("docker/stevvooe/app", "docker.io", "docker/stevvooe/app"),
            (
                "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
                "docker.io",
                "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
            ),
            ("aa/aa/bb/bb/bb", "docker.io", "aa/aa/bb/bb/bb"),
            ("a/a/a/a", "docker.io", "a/a/a/a"),
            ("a/a/a/a/", "", ""),
            ("a//a/a", "", ""),
            ("a", "docker.io", "library/a"),
            ("a/aa", "docker.io", "a/aa"),
            ("a/aa/a", "docker.io", "a/aa/a"),
            ("foo.com", "docker.io", "library/foo.com"),
            ("foo.com/", "", ""),
            ("foo.com:8080/bar", "foo.com:8080", "bar"),
            ("foo.com:http/bar", "", ""),
            ("foo.com/bar", "foo.com", "bar"),
            ("foo.com/bar/baz", "foo.com", "bar/baz"),
            ("localhost:8080/bar", "localhost:8080", "bar"),
            ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux"),
            ("blog.foo.com/bar/baz", "blog.foo.com", "bar/baz"),
            ("a^a", "", ""),
            ("aa/asdf$$^/aa", "", ""),
            ("asdf$$^/aa", "", ""),
            ("aa-a/a", "docker.io", "aa-a/a"),
            // The library's `Parse` takes the first `a` as a host; normalized,
            // it is part of a 257-character Docker Hub path, over the limit.
            (&deep, "", ""),
            ("a-/a/a/a", "", ""),
            ("foo.com/a-/a/a", "", ""),
            ("-foo/bar", "", ""),
            ("foo/bar-", "", ""),
            ("foo-/bar", "", ""),
            ("foo/-bar", "", ""),
            ("_foo/bar", "", ""),
            ("foo_bar", "docker.io", "library/foo_bar"),
            ("foo_bar.com", "docker.io", "library/foo_bar.com"),
            // As a whole reference, "foo_bar.com:8080" is foo_bar.com:8080
            // the tag (docker_reference_parse); as a host it is invalid.
            ("foo_bar.com:8080/app", "", ""),
            ("foo.com/foo_bar", "foo.com", "foo_bar"),
            ("____/____", "", ""),
            ("_docker/_docker", "", ""),
            ("docker_/docker_", "", ""),
            ("b.gcr.io/test.example.com/my-app", "b.gcr.io", "test.example.com/my-app"),
            ("xn--n3h.com/myimage", "xn--n3h.com", "myimage"),
            ("xn--7o8h.com/myimage", "xn--7o8h.com", "myimage"),
            ("example.com/xn--7o8h.com/myimage", "example.com", "xn--7o8h.com/myimage"),
            ("example.com/some_separator__underscore/myimage", "example.com", "some_separator__underscore/myimage"),
            ("example.com/__underscore/myimage", "", ""),
            ("example.com/..dots/myimage", "", ""),
            ("example.com/.dots/myimage", "", ""),
            ("example.com/nodouble..dots/myimage", "", ""),
            ("docker./docker", "", ""),
            (".docker/docker", "", ""),
            ("docker-/docker", "", ""),
            ("-docker/docker", "", ""),
            ("do..cker/docker", "", ""),
            ("do__cker:8080/docker", "", ""),
            ("do__cker/docker", "docker.io", "do__cker/docker"),
            (
                "registry.io/foo/project--id.module--name.ver---sion--name",
                "registry.io",
                "foo/project--id.module--name.ver---sion--name",
            ),
            ("Asdf.com/foo/bar", "Asdf.com", "foo/bar"),
            ("Foo/FarB", "", ""),
            // Docker keeps this name with no registry at all (the first
            // component is no host, but a valid path component); nothing can
            // be pulled from it, so it is refused here.
            ("foo_bar.com/app", "", ""),
        ];
        for (input, registry, path) in cases {
            let got = parse(input).map(|r| (r.registry, r.repository)).unwrap_or_default();
            assert_eq!(got, (registry.to_string(), path.to_string()), "input {input:?}");
        }
    }

    /// regexp_test.go: TestReferenceRegexp, normalized.
    #[test]
    fn docker_reference_grammar() {
        let sha = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912";
        let cases: Vec<(String, Option<ImageRef>)> = vec![
            ("registry.com:8080/myapp:tag".into(), Some(image("registry.com:8080", "myapp", Some("tag"), None))),
            (format!("registry.com:8080/myapp@{sha}"), Some(image("registry.com:8080", "myapp", None, Some(sha)))),
            (
                format!("registry.com:8080/myapp:tag2@{sha}"),
                Some(image("registry.com:8080", "myapp", Some("tag2"), Some(sha))),
            ),
            ("registry.com:8080/myapp@sha256:badbadbadbad".into(), None),
            ("registry.com:8080/myapp:invalid~tag".into(), None),
            ("bad_hostname.com:8080/myapp:tag".into(), None),
            (format!("localhost:8080@{sha}"), Some(image("docker.io", "library/localhost", Some("8080"), Some(sha)))),
            (format!("localhost:8080/name@{sha}"), Some(image("localhost:8080", "name", None, Some(sha)))),
            (format!("localhost:http/name@{sha}"), None),
            (format!("localhost@{sha}"), Some(image("docker.io", "library/localhost", None, Some(sha)))),
            ("registry.com:8080/myapp@bad".into(), None),
            ("registry.com:8080/myapp@2bad".into(), None),
        ];
        for (input, want) in cases {
            assert_eq!(parse(&input).ok(), want, "input {input:?}");
        }
    }
}
