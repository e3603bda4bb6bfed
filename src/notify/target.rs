//! `SHIPSHAPE_NOTIFY` entries in the shoutrrr URL format Watchtower uses, parsed
//! into where and how to send. Pure: no I/O, table-tested below.
//!
//! Every target knows its own secrets (tokens, passwords) so that its name in
//! logs and API answers, and any error text about it, can be scrubbed of them.

use url::Url;

/// Where the services with a fixed public API live. Tests point them at a
/// loopback receiver with `SHIPSHAPE_NOTIFY_TEST_BASE`.
pub const DISCORD_API: &str = "https://discord.com";
pub const SLACK_HOOKS: &str = "https://hooks.slack.com";
pub const SLACK_API: &str = "https://slack.com";
pub const TELEGRAM_API: &str = "https://api.telegram.org";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TargetError {
    TargetError::Invalid(msg.into())
}

/// How an smtp:// target protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text (`encryption=none`): only for a relay on a trusted network.
    None,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// STARTTLS or fail (`encryption=explicittls`).
    StartTls,
    /// TLS from the first byte (`encryption=implicittls`, port 465).
    Implicit,
}

/// One request shape per service; `Smtp` is the only one that is not HTTP.
#[derive(Clone, PartialEq, Eq)]
pub enum Service {
    /// POST the event as JSON to this URL.
    Generic {
        url: Url,
    },
    /// POST the text to `{base}/{topic}`, the title in a header.
    Ntfy {
        base: Url,
        topic: String,
        auth: Option<HttpAuth>,
    },
    /// POST `{title, message, priority}` to `{base}/message`.
    Gotify {
        base: Url,
        token: String,
        priority: i64,
    },
    /// POST `{content}` to `{api}/api/webhooks/{id}/{token}`.
    Discord {
        api: String,
        id: String,
        token: String,
    },
    /// POST `{text}` to `{hooks}/services/{a}/{b}/{c}`.
    SlackWebhook {
        hooks: String,
        path: String,
    },
    /// POST `{channel, text}` to `{api}/api/chat.postMessage` with a bot token.
    SlackBot {
        api: String,
        token: String,
        channel: String,
    },
    /// POST `{chat_id, text}` to `{api}/bot{token}/sendMessage`, once per chat.
    Telegram {
        api: String,
        token: String,
        chats: Vec<String>,
    },
    Smtp(SmtpTarget),
}

#[derive(Clone, PartialEq, Eq)]
pub enum HttpAuth {
    Basic { user: String, password: String },
    Bearer(String),
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    pub security: SmtpSecurity,
}

/// A parsed `SHIPSHAPE_NOTIFY` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub service: Service,
    /// The URL with every secret replaced by `***`: what logs and answers show.
    pub redacted: String,
    secrets: Vec<String>,
}

/// Never prints a secret, even in debug output.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.redacted).finish()
    }
}

impl Target {
    /// `text` with every secret of this target replaced by `***` (for error
    /// messages that might quote a URL or a server's echo of it).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.iter().filter(|s| s.len() >= 3) {
            out = out.replace(secret.as_str(), "***");
        }
        out
    }
}

/// Splits `SHIPSHAPE_NOTIFY` into URLs: spaces always separate, a comma only
/// when a new `scheme://` follows (telegram's chats and smtp's recipients are
/// comma-separated inside one URL).
pub fn split_urls(list: &str) -> Vec<String> {
    let starts_url = |s: &str| {
        s.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        })
    };
    let mut urls: Vec<String> = Vec::new();
    for word in list.split_whitespace() {
        let mut fresh = true;
        for piece in word.split(',') {
            match urls.last_mut() {
                _ if piece.is_empty() => {}
                Some(last) if !fresh && !starts_url(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => urls.push(piece.to_string()),
            }
            fresh = false;
        }
    }
    urls
}

/// Parses `SHIPSHAPE_NOTIFY`; `test_base` replaces the public API hosts of
/// discord, slack and telegram (a testing aid). Errors name the entry by
/// position and service, never by its text, which may hold a secret.
pub fn parse_all(list: &str, test_base: Option<&str>) -> Result<Vec<Target>, TargetError> {
    split_urls(list)
        .iter()
        .map(|s| s.trim())
        .enumerate()
        .map(|(i, s)| {
            parse(s, test_base).map_err(|e| {
                let scheme = s.split_once("://").map_or("?", |(scheme, _)| scheme);
                invalid(format!("SHIPSHAPE_NOTIFY entry {} ({scheme}://…): {e}", i + 1))
            })
        })
        .collect()
}

pub fn parse(raw: &str, test_base: Option<&str>) -> Result<Target, TargetError> {
    let (scheme, _) = raw.split_once("://").ok_or_else(|| invalid("not a URL (expected service://…)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if let Some(inner) = scheme.strip_prefix("generic+") {
        if inner != "http" && inner != "https" {
            return Err(invalid("generic+ needs http or https"));
        }
        let url = Url::parse(&raw["generic+".len()..]).map_err(|e| invalid(format!("bad URL: {e}")))?;
        return generic(url, &format!("generic+{inner}"));
    }
    // A scheme the url crate does not know: parse it as opaque-host URL.
    let url = Url::parse(raw).map_err(|e| invalid(format!("bad URL: {e}")))?;
    let base = |default: &str| test_base.unwrap_or(default).trim_end_matches('/').to_string();
    match scheme.as_str() {
        "generic" => {
            let tls = !query_flag(&url, &["disabletls"]);
            let mut target = url.clone();
            strip_query(&mut target, &["disabletls", "template", "titlekey", "messagekey"]);
            let rebuilt =
                format!("{}://{}", if tls { "https" } else { "http" }, &target.as_str()["generic://".len()..]);
            let url = Url::parse(&rebuilt).map_err(|e| invalid(format!("bad URL: {e}")))?;
            generic(url, "generic")
        }
        "ntfy" => ntfy(&url),
        "gotify" => gotify(&url),
        "discord" => {
            let token = decode(url.username());
            let id = host(&url)?;
            if token.is_empty() {
                return Err(invalid("missing token (discord://token@webhook-id)"));
            }
            let redacted = format!("discord://***@{id}");
            Ok(Target {
                service: Service::Discord { api: base(DISCORD_API), id, token: token.clone() },
                redacted,
                secrets: vec![token],
            })
        }
        "slack" => slack(&url, test_base),
        "telegram" => {
            let token = match url.password() {
                Some(p) => format!("{}:{}", decode(url.username()), decode(p)),
                None => decode(url.username()),
            };
            if token.is_empty() {
                return Err(invalid("missing bot token (telegram://token@telegram?chats=…)"));
            }
            let chats = query_list(&url, &["chats", "channels"]);
            if chats.is_empty() {
                return Err(invalid("missing chats (telegram://token@telegram?chats=@channel,12345)"));
            }
            let redacted = format!("telegram://***@telegram?chats={}", chats.join(","));
            let service = Service::Telegram { api: base(TELEGRAM_API), token: token.clone(), chats };
            Ok(Target { service, redacted, secrets: vec![token] })
        }
        "smtp" => smtp(&url),
        other => Err(invalid(format!(
            "unknown service {other:?} (supported: generic+https, generic+http, generic, ntfy, gotify, discord, slack, \
             telegram, smtp)"
        ))),
    }
}

fn generic(url: Url, shown_scheme: &str) -> Result<Target, TargetError> {
    let host = host(&url)?;
    let mut secrets = Vec::new();
    let mut redacted = format!("{shown_scheme}://");
    if !url.username().is_empty() || url.password().is_some() {
        redacted.push_str("***@");
        secrets.extend([decode(url.username()), url.password().map(decode).unwrap_or_default()]);
    }
    redacted.push_str(&host_port(&host, url.port()));
    // Webhook paths and queries often are the secret.
    let path = url.path().trim_matches('/');
    if !path.is_empty() || url.query().is_some() {
        redacted.push_str("/***");
        secrets.extend(path.split('/').filter(|s| s.len() >= 8).map(decode));
        secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()).filter(|v| v.len() >= 8));
    }
    Ok(Target { service: Service::Generic { url }, redacted, secrets })
}

fn ntfy(url: &Url) -> Result<Target, TargetError> {
    let host = host(url)?;
    let topic = url.path().trim_matches('/').to_string();
    if topic.is_empty() || topic.contains('/') {
        return Err(invalid("expected ntfy://[user:password@]host/topic"));
    }
    let scheme = query_value(url, &["scheme"]).unwrap_or_else(|| "https".into()).to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("scheme must be http or https"));
    }
    let (user, password) = (decode(url.username()), url.password().map(decode));
    let auth = match (user.is_empty(), password) {
        (true, Some(token)) => Some(HttpAuth::Bearer(token)),
        (false, Some(password)) => Some(HttpAuth::Basic { user, password }),
        (false, None) => Some(HttpAuth::Basic { user, password: String::new() }),
        (true, None) => None,
    };
    let base = Url::parse(&format!("{scheme}://{}/", host_port(&host, url.port())))
        .map_err(|e| invalid(format!("bad host: {e}")))?;
    let mut secrets = vec![topic.clone()];
    let shown_auth = match &auth {
        Some(HttpAuth::Basic { user, password }) => {
            secrets.extend([user.clone(), password.clone()]);
            "***@"
        }
        Some(HttpAuth::Bearer(token)) => {
            secrets.push(token.clone());
            "***@"
        }
        None => "",
    };
    let redacted = format!("ntfy://{shown_auth}{}/***", host_port(&host, url.port()));
    Ok(Target { service: Service::Ntfy { base, topic, auth }, redacted, secrets })
}

fn gotify(url: &Url) -> Result<Target, TargetError> {
    let host = host(url)?;
    let mut segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let token = segments.pop().map(decode).ok_or_else(|| invalid("expected gotify://host[:port][/path]/token"))?;
    let scheme = if query_flag(url, &["disabletls"]) { "http" } else { "https" };
    let subpath: String = segments.iter().map(|s| format!("{s}/")).collect();
    let base = Url::parse(&format!("{scheme}://{}/{subpath}", host_port(&host, url.port())))
        .map_err(|e| invalid(format!("bad host: {e}")))?;
    let priority = match query_value(url, &["priority"]) {
        Some(p) => p.parse().map_err(|_| invalid("priority must be a number"))?,
        None => 0,
    };
    let redacted = format!("gotify://{}/***", host_port(&host, url.port()));
    Ok(Target { service: Service::Gotify { base, token: token.clone(), priority }, redacted, secrets: vec![token] })
}

/// `slack://[botname@]A/B/C` (webhook, the old form), `slack://hook:A-B-C@webhook`
/// (webhook) and `slack://xoxb:TOKEN@CHANNEL` (bot API).
fn slack(url: &Url, test_base: Option<&str>) -> Result<Target, TargetError> {
    let base = |default: &str| test_base.unwrap_or(default).trim_end_matches('/').to_string();
    let user = decode(url.username());
    let password = url.password().map(decode);
    match (user.as_str(), password) {
        ("hook", Some(token)) => {
            let parts: Vec<&str> = token.split(['-', '/']).filter(|s| !s.is_empty()).collect();
            if parts.len() != 3 {
                return Err(invalid("expected slack://hook:T000-B000-XXXX@webhook"));
            }
            let secrets = vec![token.clone(), parts[2].to_string()];
            let service = Service::SlackWebhook { hooks: base(SLACK_HOOKS), path: parts.join("/") };
            Ok(Target { service, redacted: "slack://hook:***@webhook".into(), secrets })
        }
        (kind @ ("xoxb" | "xoxp"), Some(token)) => {
            let channel = host(url)?;
            let token = format!("{kind}-{token}");
            let redacted = format!("slack://{kind}:***@{channel}");
            let service = Service::SlackBot { api: base(SLACK_API), token: token.clone(), channel };
            let bare = token[5..].to_string();
            Ok(Target { service, redacted, secrets: vec![token, bare] })
        }
        (_, Some(_)) => Err(invalid("expected slack://hook:…@webhook or slack://xoxb:…@channel")),
        (_, None) => {
            let first = host(url)?;
            let rest: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
            if rest.len() != 2 {
                return Err(invalid("expected slack://T000/B000/XXXX (the webhook URL's last three parts)"));
            }
            let path = format!("{}/{}/{}", first, rest[0], rest[1]);
            let secrets = vec![rest[1].to_string(), path.clone()];
            let service = Service::SlackWebhook { hooks: base(SLACK_HOOKS), path };
            Ok(Target { service, redacted: "slack://***".into(), secrets })
        }
    }
}

fn smtp(url: &Url) -> Result<Target, TargetError> {
    let host = host(url)?;
    let port = url.port().unwrap_or(25);
    let user = decode(url.username());
    let credentials = (!user.is_empty()).then(|| (user, url.password().map(decode).unwrap_or_default()));
    let from = query_value(url, &["from", "fromaddress"]).ok_or_else(|| invalid("missing from= (sender address)"))?;
    let to = query_list(url, &["to", "toaddresses"]);
    if to.is_empty() {
        return Err(invalid("missing to= (recipient addresses)"));
    }
    for address in std::iter::once(&from).chain(&to) {
        address.parse::<lettre::message::Mailbox>().map_err(|e| invalid(format!("bad address {address:?}: {e}")))?;
    }
    let security = match query_value(url, &["encryption"]).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("none") => SmtpSecurity::None,
        Some("explicittls" | "starttls") => SmtpSecurity::StartTls,
        Some("implicittls" | "tls") => SmtpSecurity::Implicit,
        Some("auto") | None if port == 465 => SmtpSecurity::Implicit,
        // Credentials never cross the network unencrypted unless asked to.
        Some("auto") | None if credentials.is_some() => SmtpSecurity::StartTls,
        Some("auto") | None => SmtpSecurity::Opportunistic,
        Some(other) => {
            return Err(invalid(format!("unknown encryption {other:?} (none, explicittls, implicittls, auto)")))
        }
    };
    let mut secrets = Vec::new();
    let shown_auth = match &credentials {
        Some((user, password)) => {
            secrets.extend([user.clone(), password.clone()]);
            "***@"
        }
        None => "",
    };
    let redacted = format!("smtp://{shown_auth}{}/?to={}", host_port(&host, Some(port)), to.join(","));
    let service = Service::Smtp(SmtpTarget { host, port, credentials, from, to, security });
    Ok(Target { service, redacted, secrets })
}

fn host(url: &Url) -> Result<String, TargetError> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => Err(invalid("missing host")),
    }
}

fn host_port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
}

/// Query keys are case-insensitive, as shoutrrr reads them.
fn query_value(url: &Url, keys: &[&str]) -> Option<String> {
    url.query_pairs().find(|(k, _)| keys.iter().any(|key| k.eq_ignore_ascii_case(key))).map(|(_, v)| v.into_owned())
}

fn query_list(url: &Url, keys: &[&str]) -> Vec<String> {
    query_value(url, keys)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn query_flag(url: &Url, keys: &[&str]) -> bool {
    query_value(url, keys).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"))
}

fn strip_query(url: &mut Url, keys: &[&str]) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !keys.iter().any(|key| k.eq_ignore_ascii_case(key)))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Target {
        parse(raw, None).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn services_and_their_redacted_names() {
        let cases: &[(&str, &str)] = &[
            ("generic+https://hooks.example.com/api/v1/postStuff", "generic+https://hooks.example.com/***"),
            ("generic+http://127.0.0.1:9000/", "generic+http://127.0.0.1:9000"),
            ("generic+https://u:pw@h.example/x", "generic+https://***@h.example/***"),
            ("generic://ha.local:8123/api/webhook/abc?template=json&disabletls=yes", "generic://ha.local:8123/***"),
            ("ntfy://ntfy.sh/my-topic", "ntfy://ntfy.sh/***"),
            ("ntfy://user:pass@ntfy.example:8080/alerts?scheme=http", "ntfy://***@ntfy.example:8080/***"),
            ("gotify://gotify.example.com:443/AzyoeNS.D4iJLVa/?title=x&priority=1", "gotify://gotify.example.com:443/***"),
            ("discord://tok3n@123456789", "discord://***@123456789"),
            ("slack://T000/B000/XXXXXXXX", "slack://***"),
            ("slack://hook:T000-B000-XXXXXXXX@webhook", "slack://hook:***@webhook"),
            ("slack://xoxb:1234-5678-abcd@C001CH4NN3L", "slack://xoxb:***@C001CH4NN3L"),
            ("telegram://110201543:AAHdqTcv@telegram?chats=@mychannel,42", "telegram://***@telegram?chats=@mychannel,42"),
            (
                "smtp://user:secret@smtp.example.com:587/?fromAddress=a@example.com&toAddresses=b@example.com,c@example.com",
                "smtp://***@smtp.example.com:587/?to=b@example.com,c@example.com",
            ),
            ("smtp://127.0.0.1:2525/?from=a@x.test&to=b@x.test&encryption=none", "smtp://127.0.0.1:2525/?to=b@x.test"),
        ];
        for (raw, redacted) in cases {
            assert_eq!(ok(raw).redacted, *redacted, "{raw}");
        }
    }

    #[test]
    fn request_shapes() {
        let Service::Generic { url } = ok("generic+https://h.example/a/b?x=1").service else { panic!("generic") };
        assert_eq!(url.as_str(), "https://h.example/a/b?x=1");
        let Service::Generic { url } = ok("generic://h.example/a?disabletls=yes&template=json&k=v").service else {
            panic!("generic")
        };
        assert_eq!(url.as_str(), "http://h.example/a?k=v");
        let Service::Ntfy { base, topic, auth } = ok("ntfy://:tk@h.example/t1?scheme=http").service else {
            panic!("ntfy")
        };
        assert_eq!((base.as_str(), topic.as_str()), ("http://h.example/", "t1"));
        assert!(matches!(auth, Some(HttpAuth::Bearer(t)) if t == "tk"));
        let Service::Gotify { base, token, priority } =
            ok("gotify://h.example:81/sub/path/TOKEN?disabletls=yes&priority=5").service
        else {
            panic!("gotify")
        };
        assert_eq!((base.as_str(), token.as_str(), priority), ("http://h.example:81/sub/path/", "TOKEN", 5));
        let Service::Discord { api, id, token } = ok("discord://tok@42").service else { panic!("discord") };
        assert_eq!((api.as_str(), id.as_str(), token.as_str()), (DISCORD_API, "42", "tok"));
        let Service::SlackWebhook { path, .. } = ok("slack://bot@T000/B000/XXXX").service else { panic!("slack") };
        assert_eq!(path, "T000/B000/XXXX");
        let Service::SlackBot { token, channel, .. } = ok("slack://xoxb:1-2-abc@C1").service else { panic!("bot") };
        assert_eq!((token.as_str(), channel.as_str()), ("xoxb-1-2-abc", "C1"));
        let Service::Telegram { token, chats, .. } = ok("telegram://1:AB@telegram?channels=@c").service else {
            panic!("telegram")
        };
        assert_eq!((token.as_str(), chats), ("1:AB", vec!["@c".to_string()]));
        let Service::Smtp(s) = ok("smtp://u:p@mail.example/?from=a@x&to=b@x").service else { panic!("smtp") };
        assert_eq!((s.port, s.security, s.credentials), (25, SmtpSecurity::StartTls, Some(("u".into(), "p".into()))));
        let Service::Smtp(s) = ok("smtp://mail.example:465/?from=a@x&to=b@x").service else { panic!("smtp") };
        assert_eq!(s.security, SmtpSecurity::Implicit);
        let Service::Smtp(s) = ok("smtp://mail.example/?from=a@x&to=b@x").service else { panic!("smtp") };
        assert_eq!(s.security, SmtpSecurity::Opportunistic);
    }

    #[test]
    fn the_test_base_replaces_fixed_api_hosts_only() {
        let base = Some("http://127.0.0.1:5555/");
        let Service::Discord { api, .. } = parse("discord://t@1", base).expect("discord").service else { panic!() };
        assert_eq!(api, "http://127.0.0.1:5555");
        let Service::Telegram { api, .. } = parse("telegram://t@telegram?chats=1", base).expect("tg").service else {
            panic!()
        };
        assert_eq!(api, "http://127.0.0.1:5555");
        let Service::Ntfy { base: ntfy, .. } = parse("ntfy://h.example/t", base).expect("ntfy").service else {
            panic!()
        };
        assert_eq!(ntfy.as_str(), "https://h.example/");
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_them() {
        for raw in [
            "nonsense",
            "irc://x/y",
            "generic+ftp://h/x",
            "ntfy://h.example/",
            "gotify://h.example/",
            "discord://@42",
            "slack://T000/B000",
            "telegram://tok@telegram",
            "smtp://u:supersecret@h/?to=b@x",
            "smtp://h/?from=a@x",
            "smtp://h/?from=a@x&to=b@x&encryption=rot13",
            "smtp://h/?from=not-an-address&to=b@x",
        ] {
            let err = parse_all(raw, None).expect_err(raw).to_string();
            assert!(err.starts_with("SHIPSHAPE_NOTIFY entry 1 ("), "{raw}: {err}");
            assert!(!err.contains("supersecret"), "{err}");
        }
        assert_eq!(parse_all(" , ", None).map(|v| v.len()), Ok(0));
    }

    #[test]
    fn lists_split_between_urls_not_inside_them() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("ntfy://h/t", &["ntfy://h/t"]),
            (
                "telegram://t@telegram?chats=1,2,generic+https://h/x",
                &["telegram://t@telegram?chats=1,2", "generic+https://h/x"],
            ),
            ("smtp://h/?from=a@x&to=b@x,c@x ntfy://h/t", &["smtp://h/?from=a@x&to=b@x,c@x", "ntfy://h/t"]),
            (" discord://a@1 ,  slack://A/B/C ", &["discord://a@1", "slack://A/B/C"]),
        ];
        for (list, expected) in cases {
            assert_eq!(split_urls(list), *expected, "{list}");
        }
    }

    #[test]
    fn scrubbing_and_debug_hide_secrets() {
        let t = ok("telegram://110201543:AAHdqTcvCH1vGWJx@telegram?chats=1");
        let text = "error sending request for url (https://api.telegram.org/bot110201543:AAHdqTcvCH1vGWJx/sendMessage)";
        assert!(!t.scrub(text).contains("AAHdqTcv"), "{}", t.scrub(text));
        assert!(!format!("{t:?}").contains("AAHdq"));
        let s = ok("smtp://mailer:hunter22@h/?from=a@x&to=b@x");
        assert_eq!(s.scrub("535 auth failed for hunter22"), "535 auth failed for ***");
    }
}
