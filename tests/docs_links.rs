//! Every relative link in README.md and docs/*.md leads somewhere: the file
//! exists, and a `#fragment` names a heading of that file (GitHub's slugs).
//! No network: links with a scheme are not followed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// GitHub's heading anchor: lower case, punctuation dropped (but `-` and
/// `_`), spaces as `-`; a repeated heading gets `-1`, `-2`, ….
fn slug(heading: &str) -> String {
    let text = strip_inline_links(heading);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `[text](target)` → `text`, as the rendered heading shows it.
fn strip_inline_links(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| m + open) else { break };
        let Some(close) = rest[mid..].find(')').map(|c| c + mid) else { break };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The lines of a Markdown file outside fenced code blocks, with inline
/// code spans blanked (a link in code is an example, not a link).
fn prose_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => {
                let mut clean = String::new();
                for (i, part) in line.split('`').enumerate() {
                    if i % 2 == 0 {
                        clean.push_str(part);
                    }
                }
                out.push(clean);
            }
            _ => {}
        }
    }
    out
}

/// The anchors a Markdown file's headings make.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose_lines_keeping_code(text) {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading.trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    // Explicit anchors: <a name="x"> / <a id="x">.
    for attr in ["name=\"", "id=\""] {
        for (at, _) in text.match_indices(attr) {
            let rest = &text[at + attr.len()..];
            if let Some(end) = rest.find('"') {
                seen.insert(rest[..end].to_string());
            }
        }
    }
    seen
}

/// Headings keep their code spans (`## The \`backup\` command` slugs with
/// the word), so this variant only drops fenced blocks.
fn prose_lines_keeping_code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push(line.to_string()),
            _ => {}
        }
    }
    out
}

/// Link targets: `[text](target "title")`, `![alt](target)`,
/// `[ref]: target` and HTML `href="…"` / `src="…"`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let target = if let Some(inner) = rest.strip_prefix('<') {
                inner.split('>').next().unwrap_or_default()
            } else {
                // Balanced parentheses inside a target are allowed.
                let mut depth = 0;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| match c {
                        '(' => {
                            depth += 1;
                            false
                        }
                        ')' if depth == 0 => true,
                        ')' => {
                            depth -= 1;
                            false
                        }
                        _ => false,
                    })
                    .map_or(rest.len(), |(i, _)| i);
                rest[..end].split_whitespace().next().unwrap_or_default()
            };
            out.push(target.to_string());
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some((label, target)) = trimmed.split_once("]:") {
                if !label.contains("](") {
                    out.push(target.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        }
        for attr in ["href=\"", "src=\""] {
            for (at, _) in line.match_indices(attr) {
                let rest = &line[at + attr.len()..];
                out.push(rest.split('"').next().unwrap_or_default().to_string());
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    let scheme_end = target.find(':');
    let path_start = target.find(['/', '#', '?']);
    match (scheme_end, path_start) {
        (Some(c), Some(p)) => c < p,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Every broken relative link of `file`, as `file: target (why)`.
fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dir = file.parent().expect("a file has a directory");
    let mut broken = Vec::new();
    for target in links(&text) {
        if target.is_empty() || is_external(&target) {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target.as_str(), None),
        };
        let path = path.split('?').next().unwrap_or_default();
        let resolved: PathBuf = if path.is_empty() {
            file.to_path_buf()
        } else if let Some(from_root) = path.strip_prefix('/') {
            Path::new(ROOT).join(from_root)
        } else {
            dir.join(path)
        };
        let show = format!("{}: {target}", file.strip_prefix(ROOT).unwrap_or(file).display());
        if !resolved.exists() {
            broken.push(format!("{show} (no such file)"));
            continue;
        }
        let Some(fragment) = fragment.filter(|f| !f.is_empty()) else { continue };
        if resolved.extension().is_some_and(|e| e == "md") {
            let heading_text = std::fs::read_to_string(&resolved).unwrap_or_default();
            if !anchors(&heading_text).contains(fragment) {
                broken.push(format!("{show} (no heading #{fragment} there)"));
            }
        }
    }
    broken
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_relative_link_resolves() {
    let files = doc_files();
    assert!(files.len() >= 4, "README and docs found: {files:?}");
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        checked += links(&text).iter().filter(|t| !t.is_empty() && !is_external(t)).count();
        broken.extend(broken_links(file));
    }
    assert!(checked >= 10, "too few relative links found ({checked}): is the extractor broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn slugs_follow_github() {
    let cases = [
        ("Update jobs", "update-jobs"),
        ("Backup and restore", "backup-and-restore"),
        ("`shipshape backup`", "shipshape-backup"),
        ("Registry 401 / 429", "registry-401--429"),
        ("What's different?", "whats-different"),
        ("Coming from [Watchtower](https://x)", "coming-from-watchtower"),
        ("TLS (CAs)", "tls-cas"),
        ("snake_case stays", "snake_case-stays"),
    ];
    for (heading, expected) in cases {
        assert_eq!(slug(heading), expected, "{heading}");
    }
    let repeated = anchors("# A\n## Notes\n```\n# not a heading\n```\n## Notes\n#nospace\n");
    let expected: BTreeSet<String> = ["a", "notes", "notes-1"].into_iter().map(String::from).collect();
    assert_eq!(repeated, expected);
}

#[test]
fn links_are_found_and_code_is_not_a_link() {
    let text = "See [a](a.md#x) and ![shot](docs/s.png \"title\") and [ext](https://e.org/x).\n\
                `[not](code.md)`\n```\n[nor](fenced.md)\n```\n[ref]: ref.md\n<img src=\"img.png\" width=\"10\">\n\
                [wrapped](<with space.md>) [paren](f(1).md)\n";
    let found = links(text);
    assert_eq!(
        found,
        ["a.md#x", "docs/s.png", "https://e.org/x", "ref.md", "img.png", "with space.md", "f(1).md"],
        "{found:?}"
    );
    assert!(is_external("https://e.org") && is_external("mailto:x@y") && !is_external("a.md#b:c"));
}

#[test]
fn a_broken_link_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("other.md"), "# Real heading\n").expect("write");
    let page = dir.path().join("page.md");
    std::fs::write(
        &page,
        "# Top\n[ok](other.md#real-heading) [self](#top) [gone](missing.md) [bad](other.md#nope) [bad2](#nowhere)\n",
    )
    .expect("write");
    let broken = broken_links(&page);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("missing.md (no such file)"), "{broken:?}");
    assert!(broken[1].contains("#nope"), "{broken:?}");
    assert!(broken[2].contains("#nowhere"), "{broken:?}");
}
