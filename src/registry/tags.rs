//! The tag listing's wire format (`GET /v2/<name>/tags/list`): where the
//! first page is, where the next one is (`Link`), and what a page holds.

use serde::Deserialize;

/// Tags asked for per page: distribution's default cap is 1000 (Docker Hub
/// and GHCR accept it too), so a repository of a few hundred tags is one request.
pub const PAGE_SIZE: usize = 1000;

pub fn first_page(repository: &str) -> String {
    format!("/v2/{repository}/tags/list?n={PAGE_SIZE}")
}

/// The next page's path from a `Link: </v2/<name>/tags/list?n=..&last=..>; rel="next"`
/// header. Only a link to the same repository's listing is followed,
/// whether written as a path or as an absolute URL (its host is dropped: the
/// request goes to the registry already being asked, with its credentials).
pub fn next_page(link: &str, repository: &str) -> Option<String> {
    let expected = format!("/v2/{repository}/tags/list");
    link.split(',').find_map(|entry| {
        let (target, params) = entry.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if !is_next {
            return None;
        }
        let path = match target.find("://") {
            Some(i) => &target[i + 3..][target[i + 3..].find('/')?..],
            None => target,
        };
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let safe = query.bytes().all(|b| b.is_ascii_alphanumeric() || b"=&%._-~+:".contains(&b));
        (route == expected && safe).then(|| path.to_string())
    })
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The tags of one page; `null` tags (an empty repository) are none.
pub fn parse_page(body: &[u8]) -> Result<Vec<String>, &'static str> {
    let page: Page = serde_json::from_slice(body).map_err(|_| "tag list is not valid JSON")?;
    Ok(page.tags.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_table() {
        let repo = "o/app";
        let cases = [
            (r#"</v2/o/app/tags/list?last=1.0.1&n=1000>; rel="next""#, Some("/v2/o/app/tags/list?last=1.0.1&n=1000")),
            (
                r#"<https://r.example/v2/o/app/tags/list?n=2&last=b>; rel="next""#,
                Some("/v2/o/app/tags/list?n=2&last=b"),
            ),
            (r#"</v2/o/app/tags/list?n=2&last=b>; rel=next"#, Some("/v2/o/app/tags/list?n=2&last=b")),
            (r#"</v2/o/app/tags/list?n=2&last=b>; rel="prev""#, None),
            (r#"</v2/other/tags/list?n=2&last=b>; rel="next""#, None),
            (r#"</v2/o/app/manifests/x>; rel="next""#, None),
            (r#"</v2/o/app/tags/list?n=2&last=b c>; rel="next""#, None),
            (r#"<>; rel="next""#, None),
            ("garbage", None),
            ("", None),
            (r#"</x>; rel="first", </v2/o/app/tags/list?last=z>; rel="next""#, Some("/v2/o/app/tags/list?last=z")),
        ];
        for (link, expected) in cases {
            assert_eq!(next_page(link, repo).as_deref(), expected, "{link}");
        }
    }

    #[test]
    fn pages() {
        assert_eq!(parse_page(br#"{"name":"a","tags":["1","2"]}"#), Ok(vec!["1".to_string(), "2".to_string()]));
        assert_eq!(parse_page(br#"{"name":"a","tags":null}"#), Ok(vec![]));
        assert!(parse_page(b"<html>").is_err());
    }
}
