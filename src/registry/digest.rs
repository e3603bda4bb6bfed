//! Content digests as the rest of the service shows and compares them.

use super::reference::{self, ImageRef};

/// Length of a short digest: `sha256:` plus 10 hex characters. The HTTP
/// contract shows digests this long, enough to tell images apart at a glance.
const SHORT_LEN: usize = 17;

/// The first 17 characters of a digest (`sha256:0123456789`), or the input
/// unchanged when it is not longer. Counts characters, not bytes, so odd
/// input can't split a UTF-8 sequence.
pub fn shorten(d: &str) -> String {
    match d.char_indices().nth(SHORT_LEN) {
        Some((end, _)) => d[..end].to_string(),
        None => d.to_string(),
    }
}

/// The digest under which `image`'s repository knows a local image.
///
/// Docker lists one `RepoDigests` entry (`name@sha256:…`) per repository an
/// image was pulled from, with `name` in the familiar (`nginx`) or full
/// (`docker.io/library/nginx`) form. Only the entry for the image's own
/// registry and repository says which manifest the registry would compare
/// against; entries that don't parse are skipped, since Docker's own data is
/// still outside input to us.
pub fn repo_digest_for(repo_digests: &[String], image: &ImageRef) -> Option<String> {
    repo_digests_for(repo_digests, image).next()
}

/// Every digest under which `image`'s repository knows a local image: one
/// image can carry several (pushed as a manifest, later pulled through an index).
pub fn repo_digests_for<'a>(repo_digests: &'a [String], image: &'a ImageRef) -> impl Iterator<Item = String> + 'a {
    repo_digests.iter().filter_map(move |entry| {
        if !entry.contains('@') {
            return None;
        }
        let parsed = reference::parse(entry).ok()?;
        if parsed.registry == image.registry && parsed.repository == image.repository {
            parsed.digest
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn shorten_keeps_algorithm_and_ten_hex() {
        let cases = [
            (A, "sha256:aaaaaaaaaa"),
            ("sha256:0123456789", "sha256:0123456789"),
            ("sha256:0123456789a", "sha256:0123456789"),
            ("sha256:01", "sha256:01"),
            ("", ""),
            ("ééééééééééééééééééé", "ééééééééééééééééé"),
        ];
        for (input, want) in cases {
            assert_eq!(shorten(input), want, "input {input:?}");
        }
    }

    #[test]
    fn repo_digest_matches_the_images_repository() {
        let entries = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (RepoDigests, image reference, expected digest)
        let cases: Vec<(Vec<String>, &str, Option<&str>)> = vec![
            (entries(&[&format!("nginx@{A}")]), "nginx:latest", Some(A)),
            (entries(&[&format!("docker.io/library/nginx@{A}")]), "nginx:1.25", Some(A)),
            (entries(&[&format!("nginx@{A}")]), "docker.io/library/nginx", Some(A)),
            (entries(&[&format!("index.docker.io/library/nginx@{A}")]), "nginx", Some(A)),
            (entries(&[&format!("127.0.0.1:5000/x@{A}")]), "127.0.0.1:5000/x:t", Some(A)),
            (entries(&[&format!("ghcr.io/o/r@{A}"), &format!("o/r@{B}")]), "o/r", Some(B)),
            (entries(&[&format!("ghcr.io/o/r@{A}"), &format!("o/r@{B}")]), "ghcr.io/o/r", Some(A)),
            (entries(&[&format!("localhost:5000/x@{A}")]), "localhost/x", None),
            (entries(&[&format!("user/nginx@{A}")]), "nginx", None),
            (entries(&[&format!("nginx@{A}")]), "127.0.0.1:5000/nginx", None),
            (entries(&["nginx", "nginx:latest"]), "nginx", None),
            (entries(&["nginx@sha256:short", &format!("nginx@{B}")]), "nginx", Some(B)),
            (entries(&["NGINX@bad", "@", ""]), "nginx", None),
            (Vec::new(), "nginx", None),
        ];
        for (digests, image, want) in cases {
            let image = reference::parse(image).expect("valid reference");
            assert_eq!(repo_digest_for(&digests, &image).as_deref(), want, "entries {digests:?}, image {image:?}");
        }
    }
}
