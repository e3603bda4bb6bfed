//! `WWW-Authenticate` challenges from registries, and the token URL they
//! point to.
//!
//! A registry answers an anonymous request with 401 and a challenge that
//! says where to get a token (Bearer, the token flow of the distribution
//! spec) or that it wants a password (Basic). The header syntax (RFC 7235)
//! allows quoted strings with escapes and commas inside them, as in
//! `scope="repository:a/b:pull,push"`, so a split on ',' is not enough.

use thiserror::Error;

/// What the registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm`, passing `service` and `scope` along.
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
    /// Send username and password with every request.
    Basic { realm: Option<String> },
}

/// Why a header value gives no usable challenge.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChallengeError {
    #[error("WWW-Authenticate header is empty")]
    Empty,
    #[error("WWW-Authenticate header is malformed: {0}")]
    Malformed(&'static str),
    #[error("WWW-Authenticate Bearer challenge has no realm")]
    MissingRealm,
    #[error("WWW-Authenticate header offers no Bearer or Basic challenge (got {0})")]
    UnsupportedScheme(String),
}

/// Parses a `WWW-Authenticate` value. When it carries several challenges,
/// Bearer wins over Basic (a token can be had without a password, and is
/// what registries that offer both prefer); other schemes are skipped.
pub fn parse(header: &str) -> Result<Challenge, ChallengeError> {
    let challenges = split_challenges(header)?;
    if challenges.is_empty() {
        return Err(ChallengeError::Empty);
    }
    let find = |scheme: &str| challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case(scheme));
    if let Some(bearer) = find("bearer") {
        let realm = bearer.param("realm").filter(|r| !r.is_empty()).ok_or(ChallengeError::MissingRealm)?;
        return Ok(Challenge::Bearer {
            realm: realm.to_string(),
            service: bearer.param("service").map(str::to_string),
            scope: bearer.param("scope").map(str::to_string),
        });
    }
    if let Some(basic) = find("basic") {
        return Ok(Challenge::Basic { realm: basic.param("realm").map(str::to_string) });
    }
    let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
    Err(ChallengeError::UnsupportedScheme(schemes.join(", ")))
}

/// The URL to ask for a token: `realm?service=…&scope=…`, each value
/// percent-encoded (the scope's ':' and '/' must not reach the token server
/// as syntax). A realm that already has a query gets the values appended.
pub fn token_url(realm: &str, service: Option<&str>, scope: Option<&str>) -> String {
    let mut url = realm.to_string();
    let mut sep = if !realm.contains('?') {
        "?"
    } else if realm.ends_with('?') || realm.ends_with('&') {
        ""
    } else {
        "&"
    };
    for (key, value) in [("service", service), ("scope", scope)] {
        if let Some(value) = value {
            url.push_str(sep);
            url.push_str(key);
            url.push('=');
            url.push_str(&percent_encode(value));
            sep = "&";
        }
    }
    url
}

/// Encodes everything but RFC 3986's unreserved characters, so the result
/// is safe in any query value.
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// One challenge: a scheme and its `name=value` parameters in order.
#[derive(Debug)]
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    /// First value of a parameter; names are case-insensitive.
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Splits a header into its challenges. A challenge ends where a token is
/// not followed by '=' (that token is the next scheme).
fn split_challenges(header: &str) -> Result<Vec<RawChallenge>, ChallengeError> {
    let mut p = Cursor { s: header.as_bytes(), i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_while(|b| b == b',' || is_space(b));
        if p.at_end() {
            return Ok(out);
        }
        let scheme = p.token();
        if scheme.is_empty() {
            return Err(ChallengeError::Malformed("expected an authentication scheme"));
        }
        let mut challenge = RawChallenge { scheme, params: Vec::new() };
        loop {
            let before = p.i;
            p.skip_while(|b| b == b',' || is_space(b));
            let name = p.token();
            p.skip_while(is_space);
            if name.is_empty() || p.peek() != Some(b'=') {
                if name.is_empty() && !p.at_end() && p.peek() != Some(b',') {
                    return Err(ChallengeError::Malformed("expected a parameter name"));
                }
                p.i = before;
                break;
            }
            p.i += 1; // '='
            p.skip_while(is_space);
            let value = if p.peek() == Some(b'"') {
                p.quoted()?
            } else {
                // Lenient: realms are sometimes sent unquoted, and ':' or '/'
                // are not token characters; take everything up to a delimiter.
                p.take_while(|b| b != b',' && !is_space(b))
            };
            challenge.params.push((name, value));
        }
        out.push(challenge);
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte position in the header. Only ASCII delimiters are looked at, so
/// slicing at those positions never splits a UTF-8 character.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.i;
        self.skip_while(f);
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn token(&mut self) -> String {
        self.take_while(is_tchar)
    }

    /// A quoted string starting at '"'; `\x` stands for `x`.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::Malformed("unterminated quoted string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let escaped = self
                        .s
                        .get(self.i + 1)
                        .copied()
                        .ok_or(ChallengeError::Malformed("unterminated quoted string"))?;
                    out.push(escaped);
                    self.i += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer { realm: realm.into(), service: service.map(Into::into), scope: scope.map(Into::into) }
    }

    #[test]
    fn parses_challenges() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/nginx:pull"),
                ),
            ),
            (
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#,
                bearer("https://ghcr.io/token", Some("ghcr.io"), Some("repository:a/b:pull,push")),
            ),
            (r#"bearer REALM="https://r/t" , Service = "s" ,scope="x""#, bearer("https://r/t", Some("s"), Some("x"))),
            (r#"BEARER realm=https://r/token,service=reg"#, bearer("https://r/token", Some("reg"), None)),
            (
                r#"Bearer realm="https://r/t",error="invalid_token",error_description="expired""#,
                bearer("https://r/t", None, None),
            ),
            (
                r#"Bearer realm="https://r/t?a=\"q\"",service="a\\b""#,
                bearer(r#"https://r/t?a="q""#, Some(r"a\b"), None),
            ),
            (r#"Bearer realm="https://r/t""#, bearer("https://r/t", None, None)),
            (r#"Bearer realm="https://first",realm="https://second""#, bearer("https://first", None, None)),
            (r#"Basic realm="Registry Realm""#, Challenge::Basic { realm: Some("Registry Realm".into()) }),
            ("basic", Challenge::Basic { realm: None }),
            (r#"Basic realm="x", Bearer realm="https://r/t",service="s""#, bearer("https://r/t", Some("s"), None)),
            (r#"Negotiate abc==, Basic realm="r""#, Challenge::Basic { realm: Some("r".into()) }),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_unusable_headers() {
        let cases = [
            ("", ChallengeError::Empty),
            ("  , ", ChallengeError::Empty),
            ("Bearer", ChallengeError::MissingRealm),
            (r#"Bearer service="s""#, ChallengeError::MissingRealm),
            (r#"Bearer realm="""#, ChallengeError::MissingRealm),
            (r#"Bearer realm="https://r/t"#, ChallengeError::Malformed("unterminated quoted string")),
            (r#"Bearer realm="abc\"#, ChallengeError::Malformed("unterminated quoted string")),
            (r#"Digest realm="r",nonce="n""#, ChallengeError::UnsupportedScheme("Digest".into())),
            (r#"="x""#, ChallengeError::Malformed("expected an authentication scheme")),
            (r#"Bearer realm="r" @"#, ChallengeError::Malformed("expected a parameter name")),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn builds_token_urls() {
        let cases = [
            (
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/nginx:pull"),
                "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fnginx%3Apull",
            ),
            (
                "https://r/token",
                None,
                Some("repository:a/b:pull,push"),
                "https://r/token?scope=repository%3Aa%2Fb%3Apull%2Cpush",
            ),
            ("https://r/token", Some("s"), None, "https://r/token?service=s"),
            ("https://r/token", None, None, "https://r/token"),
            ("https://r/token?x=1", Some("a b&c=d"), None, "https://r/token?x=1&service=a%20b%26c%3Dd"),
            ("https://r/token?", Some("s"), None, "https://r/token?service=s"),
            ("https://r/token?x=1&", Some("s"), None, "https://r/token?x=1&service=s"),
            ("https://r/t", Some("A-z_0.9~é+"), None, "https://r/t?service=A-z_0.9~%C3%A9%2B"),
        ];
        for (realm, service, scope, want) in cases {
            assert_eq!(token_url(realm, service, scope), want, "realm {realm:?}");
        }
    }
}
