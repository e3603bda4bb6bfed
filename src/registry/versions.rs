//! Image tags read as versions: which newer tags a container could move to, and how far each one jumps.
//!
//! A registry only hands us tag names, and a digest means nothing to a person, so this is where `1.25-alpine`
//! becomes "minor update available: `1.26-alpine`". Tags are a convention, not a grammar: the rules below are
//! the ones Docker Hub images actually follow (nginx, postgres, redis, node, linuxserver, date-stamped builds)
//! and that users of WUD, Diun and Cup already expect. Everything here is pure, so every rule is a table test.
//!
//! Decisions worth knowing:
//! - Only `v`/`V` is accepted as a prefix. linuxserver's `version-1.2.3` tags are not versions: each of them
//!   also exists as `1.2.3-lsN`, and a container on a `version-…` tag is handled like one on `latest`.
//! - Docker tags cannot contain `+`, so there is no build metadata; a suffix starts with `-`, `_`, `.` or,
//!   as in postgres' `17rc1` and python's `3.13.0a1`, directly with a letter.
//! - Numeric parts that do not fit in a `u64` make the tag "not a version" rather than a wrapped number.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Container label choosing how far auto-update may go (`digest|patch|minor|major`).
pub const POLICY_LABEL: &str = "shipshape.update";
/// Container label a user sets when the image's own labels point nowhere useful.
pub const RELEASE_NOTES_LABEL: &str = "shipshape.release-notes";
const OCI_SOURCE_LABEL: &str = "org.opencontainers.image.source";
const OCI_URL_LABEL: &str = "org.opencontainers.image.url";

/// Docker's tag grammar stops at 128 characters; a longer string cannot have come from a registry.
const TAG_LENGTH_MAX: usize = 128;
/// Four parts covers `1.40.0.7998`-style builds; more than that is an address or a build id, not a version.
const PARTS_MAX: usize = 4;
/// Git's shortest abbreviated commit id; shorter hex strings are too often real words (`cafe`) or versions.
const COMMIT_LENGTH_MIN: usize = 7;
/// Links end up in the API and the UI; anything longer is not a link a person would follow.
const URL_LENGTH_MAX: usize = 2048;
/// Label values are echoed in errors; a pasted blob should not flood a log line.
const ECHO_LENGTH_MAX: usize = 64;

/// Words that mark a pre-release, with their rank: a `beta` comes after an `alpha` of the same version,
/// whatever their numbers, which is what semver's lexical order gets right for alpha/beta/rc only.
const PRERELEASE_MARKERS: &[(&str, u8)] = &[
    ("dev", 0),
    ("snapshot", 0),
    ("nightly", 0),
    ("canary", 0),
    ("next", 0),
    ("alpha", 1),
    ("beta", 2),
    ("pre", 3),
    ("preview", 3),
    ("rc", 4),
];
/// Rank of python's `a1`/`b1`, which only count as pre-releases when glued to the number (`3.13.0a1`):
/// after a dash, `-b1` is as likely a build flavour as a beta.
const PYTHON_ALPHA_RANK: u8 = 1;
const PYTHON_BETA_RANK: u8 = 2;

/// GitLab routes that can follow a project path without the `/-/` separator (older links).
const GITLAB_ROUTES: &[&str] = &["tree", "blob", "releases", "tags", "commits", "issues", "merge_requests", "wikis"];

/// One pre-release marker; ordered by rank first so `beta1 < rc1` regardless of the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PreRelease {
    rank: u8,
    number: u64,
}

/// A tag read as a version: optional `v`, 1–4 dot-separated numeric parts, then an optional suffix.
///
/// Two versions are comparable only within one family: same prefix, same number of parts, same suffix once
/// its digits are abstracted and its pre-release markers removed. That is what keeps a `1.25-alpine`
/// container away from `1.26.1` and `1.26-bookworm`: a tag's shape is a promise about what it contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    raw: String,
    v_prefix: bool,
    parts: Vec<u64>,
    pre: Vec<PreRelease>,
    /// The suffix with digit runs as `#`, commit ids as `%` and pre-release markers removed (`-alpine#.#`).
    family: String,
    /// The suffix's digit runs in order, so `-ls46` is newer than `-ls45` and `alpine3.21` than `alpine3.20`.
    suffix_numbers: Vec<u64>,
}

impl Version {
    /// `None` for anything that is not a version (`latest`, `stable`, `sha-abc123`, commit ids, ""), so callers
    /// can treat such tags as "digest only" instead of guessing.
    pub fn parse(tag: &str) -> Option<Version> {
        if tag.is_empty() || tag.len() > TAG_LENGTH_MAX || !tag.bytes().all(is_tag_byte) {
            return None;
        }
        let (v_prefix, rest) = match tag.strip_prefix(['v', 'V']) {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        // A short commit id that happens to start with a digit (`0a1b2c3`) would otherwise read as version 0.
        if is_commit_like(rest) {
            return None;
        }
        let bytes = rest.as_bytes();
        let mut parts = Vec::with_capacity(PARTS_MAX);
        let mut i = 0;
        loop {
            let start = i;
            let mut value: u64 = 0;
            while let Some(&b) = bytes.get(i) {
                if !b.is_ascii_digit() {
                    break;
                }
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                i += 1;
            }
            if i == start {
                return None;
            }
            parts.push(value);
            let another_part = bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !another_part {
                break;
            }
            if parts.len() == PARTS_MAX {
                return None;
            }
            i += 1;
        }
        // Every byte is ASCII (checked above), so `i` is a char boundary.
        let suffix = parse_suffix(&rest[i..])?;
        Some(Version {
            raw: tag.to_owned(),
            v_prefix,
            parts,
            pre: suffix.pre,
            family: suffix.family,
            suffix_numbers: suffix.numbers,
        })
    }

    /// The tag exactly as the registry lists it, which is what a pull needs.
    pub fn tag(&self) -> &str {
        &self.raw
    }

    /// Pre-releases are never offered to a container on a release, so callers need to know which is which.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The numeric parts, for display and for callers that group by major version.
    pub fn parts(&self) -> &[u64] {
        &self.parts
    }

    /// Whether `other` is a tag this one may be updated to at all (prefix, precision and suffix kept).
    pub fn same_family(&self, other: &Version) -> bool {
        self.v_prefix == other.v_prefix && self.parts.len() == other.parts.len() && self.family == other.family
    }

    /// Version order, ignoring how the numbers are written (`01.2.3` equals `1.2.3`). Only meaningful
    /// within a family; across families it is still a total order, used to bound caches.
    pub fn cmp_version(&self, other: &Version) -> Ordering {
        self.parts
            .cmp(&other.parts)
            .then_with(|| cmp_prerelease(&self.pre, &other.pre))
            .then_with(|| self.suffix_numbers.cmp(&other.suffix_numbers))
    }

    /// How far moving from `self` to `to` jumps, or `None` when `to` is not an update for this tag:
    /// another family, not newer, or a pre-release offered to a release.
    pub fn kind_to(&self, to: &Version) -> Option<UpdateKind> {
        if !self.same_family(to) || (to.is_prerelease() && !self.is_prerelease()) {
            return None;
        }
        if self.cmp_version(to) != Ordering::Less {
            return None;
        }
        // Equal numbers but a newer build (`-ls46`) or the release after a pre-release: the smallest kind.
        Some(match self.parts.iter().zip(&to.parts).position(|(a, b)| a != b) {
            Some(0) => UpdateKind::Major,
            Some(1) => UpdateKind::Minor,
            _ => UpdateKind::Patch,
        })
    }
}

/// A release outranks every pre-release of the same numbers; pre-releases compare marker by marker.
fn cmp_prerelease(a: &[PreRelease], b: &[PreRelease]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

/// Version order with a deterministic tie-break, so `01.2.3` vs `1.2.3` always resolves the same way
/// whatever order the registry listed them in: the shorter spelling, then the lexically smaller, wins.
fn cmp_newest(a: &Version, b: &Version) -> Ordering {
    a.cmp_version(b).then_with(|| b.raw.len().cmp(&a.raw.len())).then_with(|| b.raw.cmp(&a.raw))
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'-' | b'_')
}

/// An abbreviated git commit id: hex only, with both digits and letters (so neither `20240501` nor `deadbeef`).
fn is_commit_like(s: &str) -> bool {
    s.len() >= COMMIT_LENGTH_MIN
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Suffix numbers are only ever compared, so a build id too long for a u64 may saturate harmlessly.
fn parse_saturating(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b.wrapping_sub(b'0'))))
}

#[derive(Debug, Default)]
struct Suffix {
    pre: Vec<PreRelease>,
    family: String,
    numbers: Vec<u64>,
}

/// Splits a suffix into words (alphanumeric runs) joined by single separators; a doubled or trailing
/// separator is not a tag shape any image uses, so it makes the whole tag "not a version".
fn parse_suffix(s: &str) -> Option<Suffix> {
    let mut out = Suffix::default();
    if s.is_empty() {
        return Some(out);
    }
    let attached = s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
    let mut words: Vec<(Option<u8>, &str)> = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let sep = match rest.as_bytes().first() {
            Some(&b) if is_separator(b) => {
                rest = &rest[1..];
                Some(b)
            }
            _ => None,
        };
        let end = rest.bytes().position(|b| !b.is_ascii_alphanumeric()).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        words.push((sep, &rest[..end]));
        rest = &rest[end..];
    }
    let mut i = 0;
    while let Some(&(sep, word)) = words.get(i) {
        if let Some((rank, number)) = prerelease_marker(word, attached && i == 0) {
            // `rc.1`, `beta.3`: the number lives in the next word.
            let number = match (number, words.get(i + 1)) {
                (None, Some(&(Some(b'.'), next))) if next.bytes().all(|b| b.is_ascii_digit()) => {
                    i += 1;
                    parse_saturating(next)
                }
                (number, _) => number.unwrap_or(0),
            };
            out.pre.push(PreRelease { rank, number });
        } else {
            if let Some(sep) = sep {
                out.family.push(char::from(sep));
            }
            abstract_word(word, &mut out.family, &mut out.numbers);
        }
        i += 1;
    }
    Some(out)
}

/// `rc`, `rc1`, `RC2`, `beta3`, `alpha`, … (and python's glued `a1`/`b1`) with their rank and number.
fn prerelease_marker(word: &str, python_position: bool) -> Option<(u8, Option<u64>)> {
    let lower = word.to_ascii_lowercase();
    let digits_at = lower.find(|c: char| c.is_ascii_digit()).unwrap_or(lower.len());
    let (name, digits) = lower.split_at(digits_at);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = (!digits.is_empty()).then(|| parse_saturating(digits));
    if let Some(&(_, rank)) = PRERELEASE_MARKERS.iter().find(|(marker, _)| *marker == name) {
        return Some((rank, number));
    }
    match (name, python_position && number.is_some()) {
        ("a", true) => Some((PYTHON_ALPHA_RANK, number)),
        ("b", true) => Some((PYTHON_BETA_RANK, number)),
        _ => None,
    }
}

/// Digits become `#` (and are kept for ordering) so `alpine3.20` and `alpine3.21` are one family; an embedded
/// commit id becomes `%` so linuxserver's `1.40.0.7998-c29d4c0c8-ls237` keeps its family across releases.
fn abstract_word(word: &str, family: &mut String, numbers: &mut Vec<u64>) {
    if is_commit_like(word) {
        family.push('%');
        return;
    }
    let bytes = word.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_digit() {
            let start = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            numbers.push(parse_saturating(&word[start..i]));
            family.push('#');
        } else {
            family.push(char::from(b));
            i += 1;
        }
    }
}

/// How far an update moves a container; ordered so a policy can say "up to minor" as `kind <= Minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    Digest,
    Patch,
    Minor,
    Major,
}

impl UpdateKind {
    /// The API and CLI spelling, identical to the serde one.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Digest => "digest",
            UpdateKind::Patch => "patch",
            UpdateKind::Minor => "minor",
            UpdateKind::Major => "major",
        }
    }
}

/// The newest tag of each kind a container could move to; the API shows it as is, with absent kinds left out
/// so clients can test for a key instead of for `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Newer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<String>,
}

impl Newer {
    pub fn is_empty(&self) -> bool {
        self.patch.is_none() && self.minor.is_none() && self.major.is_none()
    }

    /// The biggest jump on offer, which is what a list shows as the group's update kind.
    pub fn largest(&self) -> Option<UpdateKind> {
        if self.major.is_some() {
            Some(UpdateKind::Major)
        } else if self.minor.is_some() {
            Some(UpdateKind::Minor)
        } else if self.patch.is_some() {
            Some(UpdateKind::Patch)
        } else {
            None
        }
    }

    /// A user may only pick a tag we offered: anything else could be another family or a downgrade.
    pub fn offers(&self, tag: &str) -> bool {
        [&self.patch, &self.minor, &self.major].into_iter().flatten().any(|offered| offered == tag)
    }

    /// The tag auto-update moves to under `policy`: the furthest jump it allows, because each kind's tag is
    /// newer than every tag of a smaller kind, so stopping short would just mean a second update later.
    pub fn for_policy(&self, policy: UpdatePolicy) -> Option<&str> {
        let pick = match policy {
            UpdatePolicy::Digest => None,
            UpdatePolicy::Patch => self.patch.as_ref(),
            UpdatePolicy::Minor => self.minor.as_ref().or(self.patch.as_ref()),
            UpdatePolicy::Major => self.major.as_ref().or(self.minor.as_ref()).or(self.patch.as_ref()),
        };
        pick.map(String::as_str)
    }
}

/// The newest tag of each kind, newer than `current` and of its family. A `current` that is not a version
/// (`latest`) has nothing newer: its updates are digest updates.
pub fn newer(current: &str, tags: &[String]) -> Newer {
    let Some(current) = Version::parse(current) else {
        return Newer::default();
    };
    let candidates: Vec<Version> = tags.iter().filter_map(|tag| Version::parse(tag)).collect();
    newer_in(&current, &candidates)
}

/// [`newer`] over tags parsed once, for callers that check many containers against one cached tag list.
pub fn newer_in(current: &Version, candidates: &[Version]) -> Newer {
    let mut best: [Option<&Version>; 3] = [None, None, None];
    for candidate in candidates {
        let slot = match current.kind_to(candidate) {
            Some(UpdateKind::Patch) => 0,
            Some(UpdateKind::Minor) => 1,
            Some(UpdateKind::Major) => 2,
            Some(UpdateKind::Digest) | None => continue,
        };
        if best[slot].is_none_or(|held| cmp_newest(candidate, held) == Ordering::Greater) {
            best[slot] = Some(candidate);
        }
    }
    let [patch, minor, major] = best.map(|v| v.map(|v| v.raw.clone()));
    Newer { patch, minor, major }
}

/// The kind of change between two tags of one family; `None` if either is not a version, they are of
/// different families, `to` is not newer, or `to` is a pre-release and `from` is not.
pub fn kind_between(from: &str, to: &str) -> Option<UpdateKind> {
    Version::parse(from)?.kind_to(&Version::parse(to)?)
}

/// At most `max` version tags, newest first by version order; non-version tags are dropped. Bounding by version
/// rather than by listing order keeps the tags that can be newer than a running container.
pub fn newest(tags: Vec<String>, max: usize) -> Vec<String> {
    let mut versions: Vec<Version> = tags.iter().filter_map(|tag| Version::parse(tag)).collect();
    versions.sort_by(|a, b| cmp_newest(b, a));
    versions.dedup_by(|a, b| a.raw == b.raw);
    versions.truncate(max);
    versions.into_iter().map(|v| v.raw).collect()
}

/// The few tags worth a manifest HEAD to learn which version a `latest`/`stable` container runs.
///
/// Such tags almost always point at a plain release, so plain tags come before suffixed ones (`1.27.3` before
/// `1.27.3-alpine3.20`, which would otherwise win on its suffix numbers); within each, the most precise first
/// (the answer should be `1.27.3`, not `1`), then the newest. Pre-releases never are `latest`.
pub fn latest_candidates(tags: &[String], max: usize) -> Vec<String> {
    let mut versions: Vec<Version> =
        tags.iter().filter_map(|tag| Version::parse(tag)).filter(|v| !v.is_prerelease()).collect();
    versions.sort_by(|a, b| {
        b.family
            .is_empty()
            .cmp(&a.family.is_empty())
            .then_with(|| b.parts.len().cmp(&a.parts.len()))
            .then_with(|| cmp_newest(b, a))
    });
    versions.dedup_by(|a, b| a.raw == b.raw);
    versions.truncate(max);
    versions.into_iter().map(|v| v.raw).collect()
}

/// How far auto-update may move a container, chosen per container because only its owner knows whether a
/// major upgrade of that image is safe. Digest, the default, never changes the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePolicy {
    #[default]
    Digest,
    Patch,
    Minor,
    Major,
}

impl UpdatePolicy {
    /// A misspelt value is an error, not the default: silently ignoring `shipshape.update=minnor` would leave a
    /// user believing auto-update follows minors.
    pub fn from_labels(labels: &HashMap<String, String>) -> Result<UpdatePolicy, String> {
        let Some(value) = labels.get(POLICY_LABEL) else {
            return Ok(UpdatePolicy::Digest);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "digest" => Ok(UpdatePolicy::Digest),
            "patch" => Ok(UpdatePolicy::Patch),
            "minor" => Ok(UpdatePolicy::Minor),
            "major" => Ok(UpdatePolicy::Major),
            _ => {
                let shown: String = value.chars().take(ECHO_LENGTH_MAX).collect();
                let more = if value.chars().count() > ECHO_LENGTH_MAX { "…" } else { "" };
                Err(format!("label {POLICY_LABEL}={shown:?}{more} is not one of digest, patch, minor, major"))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        self.widest().as_str()
    }

    /// The biggest kind of update the policy lets auto-update apply.
    pub fn widest(self) -> UpdateKind {
        match self {
            UpdatePolicy::Digest => UpdateKind::Digest,
            UpdatePolicy::Patch => UpdateKind::Patch,
            UpdatePolicy::Minor => UpdateKind::Minor,
            UpdatePolicy::Major => UpdateKind::Major,
        }
    }

    pub fn allows(self, kind: UpdateKind) -> bool {
        kind <= self.widest()
    }
}

/// Where a user reads what changed. The container label wins because its owner set it on purpose; a label that
/// is not a safe link is skipped, not fatal. Source repositories on GitHub, GitLab and Codeberg link to their
/// releases page (the changelog, not the code); another source host is linked as is, before the homepage
/// (`.url`), since a repository is closer to "what changed" than a product page.
pub fn release_notes(
    container_labels: &HashMap<String, String>,
    image_labels: &HashMap<String, String>,
) -> Option<String> {
    if let Some(url) = container_labels.get(RELEASE_NOTES_LABEL).and_then(|v| web_url(v)) {
        return Some(url);
    }
    if let Some(url) = image_labels.get(OCI_SOURCE_LABEL).and_then(|v| forge_releases(v).or_else(|| web_url(v))) {
        return Some(url);
    }
    image_labels.get(OCI_URL_LABEL).and_then(|v| web_url(v))
}

fn has_unsafe_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Labels are written by whoever built the image, and the link lands in a browser: only absolute http(s) with a
/// host, no credentials, nothing that could break out of an attribute. Returned normalised (percent-encoded).
fn web_url(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() || s.len() > URL_LENGTH_MAX || has_unsafe_chars(s) {
        return None;
    }
    let url = url::Url::parse(s).ok()?;
    let has_host = url.host_str().is_some_and(|h| !h.is_empty());
    if !matches!(url.scheme(), "http" | "https") || !has_host || !url.username().is_empty() || url.password().is_some()
    {
        return None;
    }
    let out = String::from(url);
    (out.len() <= URL_LENGTH_MAX).then_some(out)
}

/// The releases page of a GitHub, GitLab or Codeberg repository, from any of the ways a source label spells it:
/// `https://github.com/o/r`, `…/r.git`, `…/r/`, `git+https://…`, `git://…`, `ssh://git@…`, `git@github.com:o/r.git`,
/// or a deeper link such as `…/tree/main/dir`. The result is rebuilt from validated parts, so it carries
/// neither credentials nor anything the label added.
fn forge_releases(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.len() > URL_LENGTH_MAX || has_unsafe_chars(s) {
        return None;
    }
    let s = match s.get(..4) {
        Some(head) if head.eq_ignore_ascii_case("git+") => &s[4..],
        _ => s,
    };
    let (host, path) = if s.contains("://") {
        let url = url::Url::parse(s).ok()?;
        if !matches!(url.scheme(), "https" | "http" | "git" | "ssh") {
            return None;
        }
        (url.host_str()?.to_ascii_lowercase(), url.path().to_owned())
    } else {
        // scp-like `git@github.com:owner/repo.git`.
        let (user_host, path) = s.split_once(':')?;
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, host)| host);
        if host.contains('/') {
            return None;
        }
        (host.to_ascii_lowercase(), path.to_owned())
    };
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match host {
        "github.com" | "codeberg.org" => {
            let owner = *segments.first()?;
            let repo = strip_git(segments.get(1)?);
            (is_path_segment(owner) && is_path_segment(repo)).then(|| format!("https://{host}/{owner}/{repo}/releases"))
        }
        "gitlab.com" => {
            let mut project: Vec<&str> = Vec::new();
            for segment in segments {
                if segment == "-" || (project.len() >= 2 && GITLAB_ROUTES.contains(&segment)) {
                    break;
                }
                project.push(segment);
            }
            if let Some(last) = project.last_mut() {
                *last = strip_git(last);
            }
            (project.len() >= 2 && project.iter().all(|s| is_path_segment(s)))
                .then(|| format!("https://gitlab.com/{}/-/releases", project.join("/")))
        }
        _ => None,
    }
}

fn strip_git(segment: &str) -> &str {
    segment.strip_suffix(".git").unwrap_or(segment)
}

/// Owner, group and repository names on the three forges; anything else (percent-escapes, `..`) is not a
/// repository we can vouch for.
fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs<'a> = &'a [(&'a str, &'a str)];
    /// What a parse should find: v prefix, parts, pre-release, family, suffix numbers.
    type Parsed<'a> = (bool, &'a [u64], bool, &'a str, &'a [u64]);

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn newer_of(patch: Option<&str>, minor: Option<&str>, major: Option<&str>) -> Newer {
        Newer { patch: patch.map(Into::into), minor: minor.map(Into::into), major: major.map(Into::into) }
    }

    #[test]
    fn parses_version_tags_and_refuses_the_rest() {
        let table: &[(&str, Option<Parsed>)] = &[
            ("1.27.3", Some((false, &[1, 27, 3], false, "", &[]))),
            ("1.27", Some((false, &[1, 27], false, "", &[]))),
            ("1", Some((false, &[1], false, "", &[]))),
            ("16", Some((false, &[16], false, "", &[]))),
            ("v1.2.3", Some((true, &[1, 2, 3], false, "", &[]))),
            ("V1.2", Some((true, &[1, 2], false, "", &[]))),
            ("1.40.0.7998", Some((false, &[1, 40, 0, 7998], false, "", &[]))),
            ("2024.05.01", Some((false, &[2024, 5, 1], false, "", &[]))),
            ("20240501", Some((false, &[20240501], false, "", &[]))),
            ("01.2.3", Some((false, &[1, 2, 3], false, "", &[]))),
            ("1.27.3-alpine", Some((false, &[1, 27, 3], false, "-alpine", &[]))),
            ("1.27.3-alpine3.20", Some((false, &[1, 27, 3], false, "-alpine#.#", &[3, 20]))),
            ("1.26.2-bookworm", Some((false, &[1, 26, 2], false, "-bookworm", &[]))),
            ("20-bookworm-slim", Some((false, &[20], false, "-bookworm-slim", &[]))),
            ("20.11.1-alpine3.19", Some((false, &[20, 11, 1], false, "-alpine#.#", &[3, 19]))),
            ("1.2.3-ls45", Some((false, &[1, 2, 3], false, "-ls#", &[45]))),
            ("1.2.3-1", Some((false, &[1, 2, 3], false, "-#", &[1]))),
            ("1.40.0.7998-c29d4c0c8-ls237", Some((false, &[1, 40, 0, 7998], false, "-%-ls#", &[237]))),
            ("2.0.0.RELEASE", Some((false, &[2, 0, 0], false, ".RELEASE", &[]))),
            ("3.9-windowsservercore-1809", Some((false, &[3, 9], false, "-windowsservercore-#", &[1809]))),
            // Pre-releases: markers leave the family, so the final release is of the same family.
            ("2.0.0-rc1", Some((false, &[2, 0, 0], true, "", &[]))),
            ("2.0.0-rc.1", Some((false, &[2, 0, 0], true, "", &[]))),
            ("2.0.0-RC2", Some((false, &[2, 0, 0], true, "", &[]))),
            ("7.4-rc2", Some((false, &[7, 4], true, "", &[]))),
            ("17rc1", Some((false, &[17], true, "", &[]))),
            ("17beta3", Some((false, &[17], true, "", &[]))),
            ("17-beta3", Some((false, &[17], true, "", &[]))),
            ("17beta3-bookworm", Some((false, &[17], true, "-bookworm", &[]))),
            ("2.0.0-rc1-alpine", Some((false, &[2, 0, 0], true, "-alpine", &[]))),
            ("1.0.0-beta.3", Some((false, &[1, 0, 0], true, "", &[]))),
            ("1.0.0-alpha", Some((false, &[1, 0, 0], true, "", &[]))),
            ("3.13.0a1", Some((false, &[3, 13, 0], true, "", &[]))),
            ("3.13.0b2-slim", Some((false, &[3, 13, 0], true, "-slim", &[]))),
            ("3.13.0rc1", Some((false, &[3, 13, 0], true, "", &[]))),
            ("1.0-dev", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-snapshot", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-nightly", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-canary", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-next", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-pre", Some((false, &[1, 0], true, "", &[]))),
            ("1.0-preview2", Some((false, &[1, 0], true, "", &[]))),
            // `b1` after a dash is a flavour, `develop` is not `dev`.
            ("1.0.0-b1", Some((false, &[1, 0, 0], false, "-b#", &[1]))),
            ("1.0-develop", Some((false, &[1, 0], false, "-develop", &[]))),
            ("18446744073709551615.1", Some((false, &[u64::MAX, 1], false, "", &[]))),
            ("1.2.3-99999999999999999999999", Some((false, &[1, 2, 3], false, "-#", &[u64::MAX]))),
            // Not versions.
            ("", None),
            ("latest", None),
            ("stable", None),
            ("mainline", None),
            ("sha-abc123", None),
            ("version-1.2.3", None),
            ("0a1b2c3", None),
            ("1234abcd5678", None),
            ("c29d4c0c8", None),
            ("v", None),
            ("v.1", None),
            (".1", None),
            ("1.2.3.4.5", None),
            ("1.2.3-", None),
            ("1.2.3--alpine", None),
            ("1..2", None),
            ("1.2+build5", None),
            ("1.2 3", None),
            ("99999999999999999999.1", None),
            ("1.99999999999999999999", None),
        ];
        for (tag, expected) in table {
            let got = Version::parse(tag);
            match (expected, &got) {
                (None, None) => {}
                (Some((v_prefix, parts, pre, family, numbers)), Some(version)) => {
                    assert_eq!(version.tag(), *tag);
                    assert_eq!(version.v_prefix, *v_prefix, "{tag}");
                    assert_eq!(version.parts(), *parts, "{tag}");
                    assert_eq!(version.is_prerelease(), *pre, "{tag}");
                    assert_eq!(version.family, *family, "{tag}");
                    assert_eq!(version.suffix_numbers, *numbers, "{tag}");
                }
                _ => panic!("{tag:?}: expected {expected:?}, got {got:?}"),
            }
        }
        let too_long = format!("1.{}", "0".repeat(TAG_LENGTH_MAX));
        assert_eq!(Version::parse(&too_long), None);
    }

    #[test]
    fn kind_between_follows_family_and_order() {
        use UpdateKind::*;
        let table: &[(&str, &str, Option<UpdateKind>)] = &[
            ("1.0.0", "1.0.1", Some(Patch)),
            ("1.0.0", "1.1.0", Some(Minor)),
            ("1.0.0", "2.0.0", Some(Major)),
            ("1.0.0", "1.0.0", None),
            ("1.0.1", "1.0.0", None),
            ("1.2.3", "01.2.3", None),
            ("1.2.3.4", "1.2.3.5", Some(Patch)),
            ("1.2.3.4", "1.2.4.0", Some(Patch)),
            ("1.25", "1.26", Some(Minor)),
            ("1.25", "2.0", Some(Major)),
            ("16", "17", Some(Major)),
            // Precision, prefix and suffix family are kept.
            ("1.25-alpine", "1.26-alpine", Some(Minor)),
            ("1.25-alpine", "1.26.1-alpine", None),
            ("1.25-alpine", "1.26", None),
            ("1.25", "1.26-alpine", None),
            ("1.2.3", "v1.2.4", None),
            ("v1.2.3", "v1.2.4", Some(Patch)),
            ("v1.2.3", "V1.2.4", Some(Patch)),
            ("1.26.2-bookworm", "1.27.4-bookworm", Some(Minor)),
            ("1.26.2-bookworm", "1.27.4-bookworm-slim", None),
            ("1.27.3-alpine3.20", "1.27.4-alpine3.21", Some(Patch)),
            ("1.27.3-alpine3.20", "1.27.3-alpine3.21", Some(Patch)),
            ("1.27.3-alpine3.21", "1.27.3-alpine3.20", None),
            ("1.27.3-alpine", "1.27.4-alpine3.21", None),
            // linuxserver: a newer build of the same version is a patch.
            ("1.2.3-ls45", "1.2.4-ls50", Some(Patch)),
            ("1.2.3-ls45", "1.2.3-ls46", Some(Patch)),
            ("1.2.3-ls45", "1.2.3-ls44", None),
            ("1.40.0.7998-c29d4c0c8-ls237", "1.40.1.8227-c0dd5a73e-ls240", Some(Patch)),
            // Dates.
            ("2024.05.01", "2024.05.03", Some(Patch)),
            ("2024.05.01", "2024.11.20", Some(Minor)),
            ("2024.05.01", "2025.01.02", Some(Major)),
            // Pre-releases: never to a release, semver-ordered from a pre-release.
            ("1.0.0", "2.0.0-rc1", None),
            ("16", "17rc1", None),
            ("2.0.0-rc1", "2.0.0-rc2", Some(Patch)),
            ("2.0.0-rc2", "2.0.0-rc1", None),
            ("2.0.0-rc1", "2.0.0", Some(Patch)),
            ("2.0.0", "2.0.0-rc1", None),
            ("2.0.0-beta3", "2.0.0-rc1", Some(Patch)),
            ("2.0.0-rc1", "2.0.0-beta9", None),
            ("2.0.0-alpha", "2.0.0-alpha2", Some(Patch)),
            ("2.0.0-rc.1", "2.0.0-rc.2", Some(Patch)),
            ("2.0.0-rc1", "3.0.0-beta1", Some(Major)),
            ("17-beta3", "17rc1", Some(Patch)),
            ("17beta3", "17", Some(Patch)),
            ("17beta3-bookworm", "17-bookworm", Some(Patch)),
            ("17beta3-bookworm", "17", None),
            ("3.13.0a1", "3.13.0b1", Some(Patch)),
            ("3.13.0b1", "3.13.0rc1", Some(Patch)),
            ("3.13.0rc1", "3.13.0", Some(Patch)),
            ("2.0.0-rc1-alpine", "2.0.0-alpine", Some(Patch)),
            ("2.0.0-rc1-alpine", "2.0.0", None),
            // Not versions.
            ("latest", "1.0.0", None),
            ("1.0.0", "latest", None),
            ("", "", None),
        ];
        for (from, to, expected) in table {
            assert_eq!(kind_between(from, to), *expected, "{from} -> {to}");
        }
    }

    /// Real tag sets; `current` gets exactly `expected` (patch, minor, major).
    #[test]
    fn newer_over_real_tag_sets() {
        let lab = tags(&["1.0.0", "1.0.1", "1.1.0", "2.0.0", "1.0.1-alpine", "2.0.0-rc1", "latest"]);
        let nginx = tags(&[
            "1.25.5",
            "1.26.0",
            "1.26.1",
            "1.26.2",
            "1.26",
            "1.27.0",
            "1.27.3",
            "1.27.4",
            "1.27",
            "1",
            "1.26.2-bookworm",
            "1.27.4-bookworm",
            "1.27.3-alpine",
            "1.27.4-alpine",
            "1.27.3-alpine3.20",
            "1.27.4-alpine3.21",
            "1.27.4-perl",
            "1.27-alpine",
            "1.26-alpine",
            "mainline",
            "stable",
            "latest",
            "alpine",
        ]);
        let postgres = tags(&[
            "15",
            "15.8",
            "16",
            "16.3",
            "16.4",
            "17",
            "17.0",
            "17.2",
            "16.4-bookworm",
            "17.0-bookworm",
            "17rc1",
            "17-beta3",
            "18beta1",
            "latest",
            "bookworm",
        ]);
        let redis = tags(&[
            "7.2.4",
            "7.2.5",
            "7.2.6",
            "7.4.0",
            "7.4.1",
            "7.4-rc2",
            "7.4-rc1",
            "7.4",
            "7.4.0-alpine",
            "8.0-m01",
        ]);
        let node = tags(&[
            "20-bookworm-slim",
            "22-bookworm-slim",
            "22.1.0-bookworm-slim",
            "20.11.1-alpine3.19",
            "20.11.1-alpine3.20",
            "20.12.0-alpine3.19",
            "20.12.2-alpine3.20",
            "22.1.0-alpine3.19",
            "lts-alpine",
            "current-bookworm-slim",
        ]);
        let linuxserver = tags(&[
            "1.2.3-ls45",
            "1.2.3-ls46",
            "1.2.4-ls50",
            "1.3.0-ls51",
            "2.0.0-ls60",
            "version-1.2.4",
            "latest",
            "1.40.0.7998-c29d4c0c8-ls237",
            "1.40.1.8227-c0dd5a73e-ls240",
            "1.41.0.8911-0a1b2c3d4-ls250",
        ]);
        let dates = tags(&["2024.05.01", "2024.05.03", "2024.11.20", "2025.01.02", "2024.5.3"]);
        let prefixed = tags(&["v1.2.3", "v1.2.4", "1.2.5", "v1.3.0", "V2.0.0", "v2.0.0"]);

        let table: &[(&str, &[String], Newer)] = &[
            // The issue's lab set: never the rc, never the alpine variant.
            ("1.0.0", &lab, newer_of(Some("1.0.1"), Some("1.1.0"), Some("2.0.0"))),
            ("1.0.1", &lab, newer_of(None, Some("1.1.0"), Some("2.0.0"))),
            ("1.1.0", &lab, newer_of(None, None, Some("2.0.0"))),
            ("2.0.0", &lab, Newer::default()),
            ("1.0.1-alpine", &lab, Newer::default()),
            ("2.0.0-rc1", &lab, newer_of(Some("2.0.0"), None, None)),
            ("latest", &lab, Newer::default()),
            // nginx
            ("1.27.3", &nginx, newer_of(Some("1.27.4"), None, None)),
            ("1.25.5", &nginx, newer_of(None, Some("1.27.4"), None)),
            ("1.26.0", &nginx, newer_of(Some("1.26.2"), Some("1.27.4"), None)),
            ("1.26", &nginx, newer_of(None, Some("1.27"), None)),
            ("1", &nginx, Newer::default()),
            ("1.26-alpine", &nginx, newer_of(None, Some("1.27-alpine"), None)),
            ("1.27.3-alpine", &nginx, newer_of(Some("1.27.4-alpine"), None, None)),
            ("1.27.3-alpine3.20", &nginx, newer_of(Some("1.27.4-alpine3.21"), None, None)),
            ("1.26.2-bookworm", &nginx, newer_of(None, Some("1.27.4-bookworm"), None)),
            ("1.27.4-perl", &nginx, Newer::default()),
            ("mainline", &nginx, Newer::default()),
            // postgres
            ("16", &postgres, newer_of(None, None, Some("17"))),
            // Two parts only have minor and major (postgres' own "minor" release is our minor too).
            ("16.3", &postgres, newer_of(None, Some("16.4"), Some("17.2"))),
            ("16.4-bookworm", &postgres, newer_of(None, None, Some("17.0-bookworm"))),
            ("17-beta3", &postgres, newer_of(Some("17"), None, Some("18beta1"))),
            ("17rc1", &postgres, newer_of(Some("17"), None, Some("18beta1"))),
            // redis
            ("7.2.5", &redis, newer_of(Some("7.2.6"), Some("7.4.1"), None)),
            ("7.4-rc1", &redis, newer_of(Some("7.4"), None, None)),
            ("7.4.0-alpine", &redis, Newer::default()),
            // node
            ("20-bookworm-slim", &node, newer_of(None, None, Some("22-bookworm-slim"))),
            (
                "20.11.1-alpine3.19",
                &node,
                newer_of(Some("20.11.1-alpine3.20"), Some("20.12.2-alpine3.20"), Some("22.1.0-alpine3.19")),
            ),
            // linuxserver
            ("1.2.3-ls45", &linuxserver, newer_of(Some("1.2.4-ls50"), Some("1.3.0-ls51"), Some("2.0.0-ls60"))),
            ("1.2.4-ls50", &linuxserver, newer_of(None, Some("1.3.0-ls51"), Some("2.0.0-ls60"))),
            (
                "1.40.0.7998-c29d4c0c8-ls237",
                &linuxserver,
                newer_of(Some("1.40.1.8227-c0dd5a73e-ls240"), Some("1.41.0.8911-0a1b2c3d4-ls250"), None),
            ),
            ("version-1.2.3", &linuxserver, Newer::default()),
            // dates; `2024.5.3` equals `2024.05.03` and loses the tie to the shorter spelling.
            ("2024.05.01", &dates, newer_of(Some("2024.5.3"), Some("2024.11.20"), Some("2025.01.02"))),
            // v prefix kept (either case).
            ("v1.2.3", &prefixed, newer_of(Some("v1.2.4"), Some("v1.3.0"), Some("V2.0.0"))),
        ];
        for (current, set, expected) in table {
            let got = newer(current, set);
            assert_eq!(&got, expected, "{current}");
            // Listing order must not matter.
            let mut reversed = set.to_vec();
            reversed.reverse();
            assert_eq!(&newer(current, &reversed), expected, "{current} (reversed listing)");
        }
    }

    #[test]
    fn equal_versions_resolve_the_same_whatever_the_listing_order() {
        let a = tags(&["1.2.3", "01.2.3", "1.02.3", "1.2.03"]);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(newer("1.2.2", &a).patch.as_deref(), Some("1.2.3"));
        assert_eq!(newer("1.2.2", &b).patch.as_deref(), Some("1.2.3"));
        let c = tags(&["01.2.3", "1.02.3"]);
        let mut d = c.clone();
        d.reverse();
        assert_eq!(newer("1.2.2", &c), newer("1.2.2", &d));
        assert_eq!(newer("1.2.2", &c).patch.as_deref(), Some("01.2.3"));
    }

    #[test]
    fn newer_methods() {
        use UpdateKind::*;
        let all = newer_of(Some("1.0.1"), Some("1.1.0"), Some("2.0.0"));
        let patch_only = newer_of(Some("1.0.1"), None, None);
        let minor_only = newer_of(None, Some("1.1.0"), None);
        let major_only = newer_of(None, None, Some("2.0.0"));
        let none = Newer::default();

        assert!(none.is_empty());
        assert!(!patch_only.is_empty() && !major_only.is_empty());
        let largest: &[(&Newer, Option<UpdateKind>)] = &[
            (&all, Some(Major)),
            (&patch_only, Some(Patch)),
            (&minor_only, Some(Minor)),
            (&major_only, Some(Major)),
            (&none, None),
        ];
        for (n, kind) in largest {
            assert_eq!(n.largest(), *kind, "{n:?}");
        }

        assert!(all.offers("1.0.1") && all.offers("1.1.0") && all.offers("2.0.0"));
        assert!(!all.offers("2.0.0-rc1") && !all.offers("") && !none.offers("1.0.1"));
        assert!(!patch_only.offers("1.1.0"));

        use UpdatePolicy as P;
        let policy: &[(&Newer, UpdatePolicy, Option<&str>)] = &[
            (&all, P::Digest, None),
            (&all, P::Patch, Some("1.0.1")),
            (&all, P::Minor, Some("1.1.0")),
            (&all, P::Major, Some("2.0.0")),
            (&patch_only, P::Major, Some("1.0.1")),
            (&patch_only, P::Minor, Some("1.0.1")),
            (&minor_only, P::Patch, None),
            (&minor_only, P::Major, Some("1.1.0")),
            (&major_only, P::Minor, None),
            (&none, P::Major, None),
        ];
        for (n, p, expected) in policy {
            assert_eq!(n.for_policy(*p), *expected, "{n:?} {p:?}");
        }

        assert_eq!(
            serde_json::to_string(&all).ok().as_deref(),
            Some(r#"{"patch":"1.0.1","minor":"1.1.0","major":"2.0.0"}"#)
        );
        assert_eq!(serde_json::to_string(&minor_only).ok().as_deref(), Some(r#"{"minor":"1.1.0"}"#));
        assert_eq!(serde_json::to_string(&none).ok().as_deref(), Some("{}"));
    }

    #[test]
    fn update_kind_order_and_spelling() {
        use UpdateKind::*;
        assert!(Digest < Patch && Patch < Minor && Minor < Major);
        for kind in [Digest, Patch, Minor, Major] {
            let json = serde_json::to_string(&kind).ok();
            assert_eq!(json, Some(format!("\"{}\"", kind.as_str())));
            let back: Option<UpdateKind> = json.and_then(|j| serde_json::from_str(&j).ok());
            assert_eq!(back, Some(kind));
        }
    }

    #[test]
    fn policy_from_labels() {
        use UpdatePolicy as P;
        let table: &[(Pairs, Result<UpdatePolicy, &str>)] = &[
            (&[], Ok(P::Digest)),
            (&[("other", "major")], Ok(P::Digest)),
            (&[(POLICY_LABEL, "digest")], Ok(P::Digest)),
            (&[(POLICY_LABEL, "patch")], Ok(P::Patch)),
            (&[(POLICY_LABEL, "minor")], Ok(P::Minor)),
            (&[(POLICY_LABEL, "major")], Ok(P::Major)),
            (&[(POLICY_LABEL, " Minor ")], Ok(P::Minor)),
            (&[(POLICY_LABEL, "MAJOR")], Ok(P::Major)),
            (&[(POLICY_LABEL, "minnor")], Err("\"minnor\"")),
            (&[(POLICY_LABEL, "")], Err("\"\"")),
            (&[(POLICY_LABEL, "latest")], Err("not one of digest, patch, minor, major")),
        ];
        for (pairs, expected) in table {
            let got = UpdatePolicy::from_labels(&labels(pairs));
            match (expected, &got) {
                (Ok(p), Ok(g)) => assert_eq!(p, g),
                (Err(needle), Err(reason)) => {
                    assert!(reason.contains(needle) && reason.contains(POLICY_LABEL), "{reason}")
                }
                _ => panic!("{pairs:?}: expected {expected:?}, got {got:?}"),
            }
        }
        let long = "x".repeat(10_000);
        let reason = UpdatePolicy::from_labels(&labels(&[(POLICY_LABEL, &long)])).err().unwrap_or_default();
        assert!(reason.len() < 200, "{reason}");

        assert!(P::Patch.allows(UpdateKind::Patch) && !P::Patch.allows(UpdateKind::Minor));
        assert!(P::Digest.allows(UpdateKind::Digest) && !P::Digest.allows(UpdateKind::Patch));
        assert!(P::Major.allows(UpdateKind::Major));
        assert_eq!(P::Minor.as_str(), "minor");
    }

    #[test]
    fn newest_bounds_by_version_order() {
        let all = tags(&["latest", "1.0.0", "2.0.0-rc1", "1.1.0", "2.0.0", "1.0.1", "stable", "1.0.1-alpine", "2.0.0"]);
        assert_eq!(newest(all.clone(), 3), tags(&["2.0.0", "2.0.0-rc1", "1.1.0"]));
        assert_eq!(newest(all.clone(), 100), tags(&["2.0.0", "2.0.0-rc1", "1.1.0", "1.0.1", "1.0.1-alpine", "1.0.0"]));
        assert_eq!(newest(all, 0), Vec::<String>::new());
        assert_eq!(newest(tags(&["latest", "main"]), 10), Vec::<String>::new());
        // Whatever the bound, the newest of each kind for a current tag survives when it is among the newest.
        let many: Vec<String> =
            (0..50).flat_map(|minor| (0..30).map(move |patch| format!("1.{minor}.{patch}"))).collect();
        let kept = newest(many.clone(), 100);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept.first().map(String::as_str), Some("1.49.29"));
        assert_eq!(newer("1.48.0", &kept), newer("1.48.0", &many));
    }

    #[test]
    fn latest_candidates_prefer_plain_precise_and_new() {
        let nginx = tags(&[
            "1",
            "1.26",
            "1.26.2",
            "1.27",
            "1.27.3",
            "1.27.4",
            "1.27.4-alpine3.21",
            "1.27.4-perl",
            "1.28.0-rc1",
            "mainline",
            "latest",
            "stable",
        ]);
        assert_eq!(latest_candidates(&nginx, 3), tags(&["1.27.4", "1.27.3", "1.26.2"]));
        assert_eq!(
            latest_candidates(&nginx, 100),
            tags(&["1.27.4", "1.27.3", "1.26.2", "1.27", "1.26", "1", "1.27.4-alpine3.21", "1.27.4-perl"])
        );
        let linuxserver = tags(&["1.2.3-ls45", "1.2.4-ls50", "version-1.2.4", "latest"]);
        assert_eq!(latest_candidates(&linuxserver, 5), tags(&["1.2.4-ls50", "1.2.3-ls45"]));
        assert!(latest_candidates(&tags(&["latest", "2.0.0-rc1"]), 5).is_empty());
        assert!(latest_candidates(&nginx, 0).is_empty());
    }

    #[test]
    fn release_notes_links() {
        let src = OCI_SOURCE_LABEL;
        let url = OCI_URL_LABEL;
        let own = RELEASE_NOTES_LABEL;
        let table: &[(Pairs, Pairs, Option<&str>)] = &[
            (&[], &[], None),
            // Forges link to their releases page, however the source is spelled.
            (&[], &[(src, "https://github.com/nginx/nginx")], Some("https://github.com/nginx/nginx/releases")),
            (&[], &[(src, "https://github.com/o/r.git")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "https://github.com/o/r/")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "git+https://github.com/o/r.git")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "http://www.GitHub.com/o/r")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "git@github.com:o/r.git")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "ssh://git@github.com/o/r.git")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "git://github.com/o/r")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "https://github.com/o/r/tree/main/images/x")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, "https://user:tok@github.com/o/r")], Some("https://github.com/o/r/releases")),
            (&[], &[(src, " https://github.com/o/r ")], Some("https://github.com/o/r/releases")),
            (
                &[],
                &[(src, "https://codeberg.org/forgejo/forgejo")],
                Some("https://codeberg.org/forgejo/forgejo/releases"),
            ),
            (&[], &[(src, "https://gitlab.com/g/sub/proj")], Some("https://gitlab.com/g/sub/proj/-/releases")),
            (&[], &[(src, "https://gitlab.com/g/proj.git")], Some("https://gitlab.com/g/proj/-/releases")),
            (&[], &[(src, "https://gitlab.com/g/proj/-/tree/main")], Some("https://gitlab.com/g/proj/-/releases")),
            (&[], &[(src, "https://gitlab.com/g/proj/tree/main")], Some("https://gitlab.com/g/proj/-/releases")),
            // Another host is linked as is; a forge URL that names no repository too.
            (&[], &[(src, "https://git.example.com/o/r")], Some("https://git.example.com/o/r")),
            (&[], &[(src, "https://github.com/o")], Some("https://github.com/o")),
            // The source wins over the homepage, unless it is no usable link.
            (
                &[],
                &[(src, "https://github.com/o/r"), (url, "https://example.com/")],
                Some("https://github.com/o/r/releases"),
            ),
            (&[], &[(src, "git@git.example.com:o/r.git"), (url, "https://example.com/")], Some("https://example.com/")),
            (&[], &[(url, "https://example.com/docs")], Some("https://example.com/docs")),
            // The container label wins; an unsafe one is skipped.
            (
                &[(own, "https://example.com/changelog")],
                &[(src, "https://github.com/o/r")],
                Some("https://example.com/changelog"),
            ),
            (
                &[(own, "javascript:alert(1)")],
                &[(src, "https://github.com/o/r")],
                Some("https://github.com/o/r/releases"),
            ),
            // Only safe absolute http(s) links.
            (&[(own, "javascript:alert(1)")], &[], None),
            (&[(own, "JavaScript:alert(1)")], &[], None),
            (&[(own, "data:text/html,hi")], &[], None),
            (&[(own, "/relative/path")], &[], None),
            (&[(own, "//example.com/x")], &[], None),
            (&[(own, "ftp://example.com/x")], &[], None),
            (&[(own, "https://exa mple.com/")], &[], None),
            (&[(own, "https://example.com/\u{7}")], &[], None),
            (&[(own, "https://example.com/\nx")], &[], None),
            (&[(own, "https://user:pw@example.com/")], &[], None),
            (&[(own, "https://")], &[], None),
            (&[(own, "")], &[], None),
            (&[(own, "https://example.com/a\"><script>")], &[], Some("https://example.com/a%22%3E%3Cscript%3E")),
            // A repository name we cannot vouch for is not turned into a releases link.
            (&[], &[(src, "git@github.com:o/..")], None),
            (&[], &[(src, "https://github.com/o/r%20x")], Some("https://github.com/o/r%20x")),
        ];
        for (container, image, expected) in table {
            let got = release_notes(&labels(container), &labels(image));
            assert_eq!(got.as_deref(), *expected, "{container:?} {image:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(URL_LENGTH_MAX));
        assert_eq!(release_notes(&labels(&[(own, &long)]), &HashMap::new()), None);
    }

    /// A small deterministic generator, so a failure reproduces.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
        }
    }

    /// Mostly version-shaped tags with small numbers (so families and orders collide), sometimes garbage.
    fn random_tag(rng: &mut XorShift, theme: (bool, usize, usize)) -> String {
        const CHAOS: &[&str] = &[
            "0",
            "9",
            "01",
            "99999999999999999999",
            "18446744073709551615",
            ".",
            "-",
            "_",
            "v",
            "rc",
            "beta",
            "a",
            "b",
            "alpine",
            "latest",
            "+",
            " ",
            "é",
            "\u{0}",
            "c29d4c0c8",
            "dev",
            "..",
            "--",
        ];
        const SUFFIXES: &[&str] = &[
            "",
            "",
            "",
            "-alpine",
            "-alpine3.20",
            "-alpine3.21",
            "-rc1",
            "-rc2",
            "rc1",
            "-beta.2",
            "-ls45",
            "-ls46",
            "-bookworm-slim",
            "a1",
            "-rc1-alpine",
            "_1",
        ];
        let mut s = String::new();
        if rng.below(5) == 0 {
            for _ in 0..rng.below(8) {
                if rng.below(5) == 0 {
                    let bytes: Vec<u8> = (0..rng.below(4)).map(|_| (rng.next() & 0xff) as u8).collect();
                    s.push_str(&String::from_utf8_lossy(&bytes));
                } else {
                    s.push_str(CHAOS[rng.below(CHAOS.len())]);
                }
            }
            return s;
        }
        // Most tags share the set's shape, so most sets have real candidates to order.
        let (v_prefix, parts, suffix) =
            if rng.below(3) != 0 { theme } else { (rng.below(4) == 0, 1 + rng.below(4), rng.below(SUFFIXES.len())) };
        if v_prefix {
            s.push('v');
        }
        for i in 0..parts {
            if i > 0 {
                s.push('.');
            }
            s.push_str(&rng.below(3).to_string());
        }
        s.push_str(SUFFIXES[suffix % SUFFIXES.len()]);
        if rng.below(10) == 0 {
            s.push_str(CHAOS[rng.below(CHAOS.len())]);
        }
        s
    }

    /// Nothing panics on any input, and the functions agree with each other: everything `newer` offers is an
    /// update of the kind it is filed under, and no candidate of a kind is newer than the one offered.
    #[test]
    fn fuzz_never_panics_and_stays_consistent() {
        let mut rng = XorShift(0x5eed_1234_abcd_0001);
        let mut offers_seen = 0;
        for _ in 0..2000 {
            let theme = (rng.below(4) == 0, 1 + rng.below(4), rng.below(64));
            let set: Vec<String> = (0..rng.below(25)).map(|_| random_tag(&mut rng, theme)).collect();
            let current = if set.is_empty() || rng.below(3) == 0 {
                random_tag(&mut rng, theme)
            } else {
                set[rng.below(set.len())].clone()
            };
            if let Some(v) = Version::parse(&current) {
                assert_eq!(v.tag(), current);
            }
            let offered = newer(&current, &set);
            for (kind, tag) in [
                (UpdateKind::Patch, &offered.patch),
                (UpdateKind::Minor, &offered.minor),
                (UpdateKind::Major, &offered.major),
            ] {
                let Some(tag) = tag else { continue };
                offers_seen += 1;
                assert!(set.contains(tag), "{current:?} offered {tag:?} not in {set:?}");
                assert_eq!(kind_between(&current, tag), Some(kind), "{current:?} -> {tag:?}");
                let Some(best) = Version::parse(tag) else { panic!("{tag:?} offered but not a version") };
                for other in &set {
                    if kind_between(&current, other) == Some(kind) {
                        let Some(other) = Version::parse(other) else { continue };
                        assert_ne!(
                            cmp_newest(&other, &best),
                            Ordering::Greater,
                            "{other:?} beats {tag:?} for {current:?}"
                        );
                    }
                }
            }
            let bounded = newest(set.clone(), 5);
            assert!(bounded.len() <= 5 && bounded.iter().all(|t| Version::parse(t).is_some()));
            let candidates = latest_candidates(&set, 4);
            assert!(candidates.len() <= 4 && candidates.iter().all(|t| set.contains(t)));
            let image = labels(&[(OCI_SOURCE_LABEL, current.as_str()), (OCI_URL_LABEL, current.as_str())]);
            let container = labels(&[(RELEASE_NOTES_LABEL, current.as_str()), (POLICY_LABEL, current.as_str())]);
            if let Some(link) = release_notes(&container, &image) {
                assert!(link.starts_with("http://") || link.starts_with("https://"), "{link}");
            }
            let _ = UpdatePolicy::from_labels(&container);
        }
        // The generator must reach the interesting paths, or the consistency checks above check nothing.
        assert!(offers_seen > 500, "only {offers_seen} offers in the fuzz run");
    }
}
