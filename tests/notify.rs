//! Notifications (`SHIPSHAPE_NOTIFY`) against real receivers on loopback:
//! an HTTP receiver standing in for every webhook-style service (the fixed
//! public APIs redirected with `SHIPSHAPE_NOTIFY_TEST_BASE`), a small SMTP
//! server, and receivers that are down or never answer.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::jobs::{build_image, post_update, run, Cleanup, JOB_PATIENCE};
use common::{find_container, lab, short, spawn_app_with, unique, Lab, TestApp};
use serde_json::Value;

/// Long enough for an update on a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = JOB_PATIENCE;

// ------------------------------------------------------------ receivers

#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Answers every POST with 200 and keeps what it got.
struct HttpReceiver {
    addr: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl HttpReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&got);
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let got = Arc::clone(&shared);
                std::thread::spawn(move || serve_http(conn, &got));
            }
        });
        Self { addr, got }
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds for what arrived.
    fn wait(&self, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "{what}: not received within {PATIENCE:?}; got {all:#?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn serve_http(conn: TcpStream, got: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if let Ok(mut g) = got.lock() {
        g.push(Received { path, headers, body: String::from_utf8_lossy(&body).into_owned() });
    }
    let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// Speaks just enough SMTP (no TLS, no AUTH) to take mail.
struct SmtpReceiver {
    addr: String,
    got: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let addr = listener.local_addr().expect("addr").to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&got);
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let got = Arc::clone(&shared);
                std::thread::spawn(move || serve_smtp(conn, &got));
            }
        });
        Self { addr, got }
    }

    fn wait(&self, what: &str, pred: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let all = self.got.lock().map(|g| g.clone()).unwrap_or_default();
            if pred(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "{what}: no such mail within {PATIENCE:?}; got {all:#?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn serve_smtp(conn: TcpStream, got: &Mutex<Vec<Mail>>) {
    let Ok(mut out) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    let mut say = |text: &str| out.write_all(text.as_bytes()).is_ok();
    if !say("220 receiver.test ESMTP\r\n") {
        return;
    }
    let mut mail = Mail::default();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let ok = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            say("250-receiver.test\r\n250 8BITMIME\r\n")
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().to_string();
            say("250 OK\r\n")
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().to_string());
            say("250 OK\r\n")
        } else if upper.starts_with("DATA") {
            if !say("354 end with .\r\n") {
                return;
            }
            loop {
                let mut data = String::new();
                if reader.read_line(&mut data).unwrap_or(0) == 0 {
                    return;
                }
                if data == ".\r\n" || data == ".\n" {
                    break;
                }
                mail.data.push_str(&data);
            }
            if let Ok(mut g) = got.lock() {
                g.push(std::mem::take(&mut mail));
            }
            say("250 queued\r\n")
        } else if upper.starts_with("QUIT") {
            let _ = say("221 bye\r\n");
            return;
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            say("250 OK\r\n")
        } else {
            say("502 not implemented\r\n")
        };
        if !ok {
            return;
        }
    }
}

/// Accepts connections and never answers; counts the ones still open.
struct SilentReceiver {
    addr: String,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl SilentReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent");
        let addr = listener.local_addr().expect("addr").to_string();
        let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, o) = (Arc::clone(&accepted), Arc::clone(&open));
        std::thread::spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = Arc::clone(&o);
                std::thread::spawn(move || {
                    // Read and drop until the client gives up.
                    let mut buf = [0u8; 1024];
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { addr, accepted, open }
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Every service at once: the HTTP ones at `http`, mail at `smtp`.
fn all_services(http: &HttpReceiver, smtp: &SmtpReceiver) -> Vec<String> {
    let h = &http.addr;
    vec![
        format!("generic+http://{h}/hook/abcdefgh12345"),
        format!("ntfy://:ntfytoken77@{h}/alerts?scheme=http"),
        format!("gotify://{h}/sub/GOTIFYTOKEN99?disabletls=yes&priority=4"),
        "discord://disctoken55@4242".into(),
        "slack://T1/B2/slacksecret33".into(),
        "slack://xoxb:1-2-bottoken44@C9".into(),
        "telegram://123:tgsecret66@telegram?chats=@chan,77".into(),
        format!("smtp://{}/?from=ship@example.test&to=ops@example.test,dev@example.test&encryption=none", smtp.addr),
    ]
}

const SECRETS: [&str; 7] =
    ["ntfytoken77", "GOTIFYTOKEN99", "disctoken55", "slacksecret33", "bottoken44", "tgsecret66", "deadpass88"];

fn env_for<'a>(urls: &'a str, base: &'a str) -> [(&'static str, &'a str); 2] {
    [("SHIPSHAPE_NOTIFY", urls), ("SHIPSHAPE_NOTIFY_TEST_BASE", base)]
}

fn assert_no_secrets(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows the secret {secret}:\n{text}");
    }
}

// ------------------------------------------------------------ tests

#[tokio::test]
async fn a_test_message_reaches_every_service_and_answers_per_target() {
    let lab = lab();
    let (http, smtp) = (HttpReceiver::start(), SmtpReceiver::start());
    let dead = closed_port();
    let mut urls = all_services(&http, &smtp);
    urls.push(format!("ntfy://user:deadpass88@127.0.0.1:{dead}/topic?scheme=http"));
    let list = urls.join(",");
    let base = format!("http://{}", http.addr);
    let app = spawn_app_with(&lab, &env_for(&list, &base));

    let resp = app.client.post(app.url("/api/notify/test")).send().await.expect("POST /api/notify/test");
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("body");
    assert_no_secrets("the answer", &body);
    let answer: Vec<Value> = serde_json::from_str(&body).expect("json array");
    let expected_targets = [
        format!("generic+http://{}/***", http.addr),
        format!("ntfy://***@{}/***", http.addr),
        format!("gotify://{}/***", http.addr),
        "discord://***@4242".into(),
        "slack://***".into(),
        "slack://xoxb:***@C9".into(),
        "telegram://***@telegram?chats=@chan,77".into(),
        format!("smtp://{}/?to=ops@example.test,dev@example.test", smtp.addr),
        format!("ntfy://***@127.0.0.1:{dead}/***"),
    ];
    assert_eq!(answer.len(), expected_targets.len(), "{answer:#?}");
    for (entry, target) in answer.iter().zip(&expected_targets) {
        assert_eq!(entry["target"], target.as_str(), "{answer:#?}");
    }
    for entry in &answer[..8] {
        assert_eq!((&entry["ok"], &entry["error"]), (&Value::Bool(true), &Value::Null), "{entry}");
    }
    assert_eq!(answer[8]["ok"], false, "{answer:#?}");
    assert!(answer[8]["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer:#?}");

    // Other tests' containers share the lab engine: their new versions may
    // be told here too, so only the test messages count.
    let is_test = |r: &Received| r.body.contains("test notification") || r.body.contains("reach this target");
    let got = http.wait("every HTTP service's request", |g| g.iter().filter(|r| is_test(r)).count() >= 8);
    let got: Vec<Received> = got.into_iter().filter(is_test).collect();
    let at = |path: &str| {
        got.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("nothing at {path}: {got:#?}")).clone()
    };
    let generic = at("/hook/abcdefgh12345").json();
    assert_eq!(
        (generic["event"].as_str(), generic["title"].as_str()),
        (Some("test"), Some("shipshape: test notification"))
    );
    assert!(generic["message"].as_str().is_some_and(|m| !m.is_empty()), "{generic}");
    let ntfy = at("/alerts");
    assert_eq!(ntfy.header("authorization"), Some("Bearer ntfytoken77"));
    assert_eq!(ntfy.header("title"), Some("shipshape: test notification"));
    assert!(!ntfy.body.is_empty());
    let gotify = at("/sub/message");
    assert_eq!(gotify.header("x-gotify-key"), Some("GOTIFYTOKEN99"));
    assert_eq!(gotify.json()["priority"], 4);
    assert_eq!(gotify.json()["title"], "shipshape: test notification");
    assert!(at("/api/webhooks/4242/disctoken55").json()["content"]
        .as_str()
        .is_some_and(|c| c.contains("test notification")));
    assert!(at("/services/T1/B2/slacksecret33").json()["text"]
        .as_str()
        .is_some_and(|c| c.contains("test notification")));
    let bot = at("/api/chat.postMessage");
    assert_eq!(bot.header("authorization"), Some("Bearer xoxb-1-2-bottoken44"));
    assert_eq!(bot.json()["channel"], "C9");
    let chats: Vec<Value> = got
        .iter()
        .filter(|r| r.path == "/bot123:tgsecret66/sendMessage")
        .map(|r| r.json()["chat_id"].clone())
        .collect();
    assert_eq!(chats.len(), 2, "{got:#?}");
    assert!(chats.contains(&Value::from("@chan")) && chats.contains(&Value::from("77")), "{chats:?}");

    let test_mail = |m: &Mail| m.data.contains("Subject: shipshape: test notification");
    let mails = smtp.wait("the test mail", |m| m.iter().any(test_mail));
    let mails: Vec<Mail> = mails.into_iter().filter(test_mail).collect();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, vec!["<ops@example.test>", "<dev@example.test>"], "{mails:#?}");
    assert!(mails[0].data.contains("Subject: shipshape: test notification"), "{}", mails[0].data);
    assert_no_secrets("the log", &app.log());
}

#[tokio::test]
async fn bad_notification_urls_stop_the_start_with_a_clear_error_and_no_secret() {
    let lab = lab();
    for (urls, says) in [
        ("telegram://tgsecret66@telegram", "missing chats"),
        ("irc://deadpass88@h/x", "unknown service"),
        ("smtp://u:deadpass88@h/?from=ship@example.test", "missing to="),
    ] {
        let out = common::run_shipshape(&lab, &[("SHIPSHAPE_NOTIFY", urls)]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{urls}: {text}");
        assert!(text.contains("SHIPSHAPE_NOTIFY entry 1") && text.contains(says), "{urls}: {text}");
        assert_no_secrets("the start error", &text);
    }
}

/// A repository of its own on the lab's open registry.
fn repo(lab: &Lab, what: &str) -> String {
    format!("{}/notify/{}", lab.registry, unique(what))
}

async fn wait_status(app: &TestApp, name: &str, status: &str) {
    app.wait_images(PATIENCE, &format!("{name} {status}"), |i| {
        find_container(i, name).is_some_and(|(_, c)| c["status"] == status)
    })
    .await;
}

/// The generic webhook's events of one kind about `image` (other tests'
/// images on the shared lab engine are told too).
fn events(got: &[Received], kind: &str, image: &str) -> Vec<Value> {
    got.iter()
        .filter(|r| r.path == "/hook/abcdefgh12345")
        .map(Received::json)
        .filter(|v| v["event"] == kind && v["image"] == image)
        .collect()
}

#[tokio::test]
async fn a_new_version_is_told_once_and_an_update_by_every_service() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "told"));
    cleanup.images.push(image.clone());
    let old = build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("notify-told");
    cleanup.containers.push(name.clone());
    let id = run(&lab, &name, &["--network", "none", "--stop-timeout", "1", &image]);

    let (http, smtp) = (HttpReceiver::start(), SmtpReceiver::start());
    let list = all_services(&http, &smtp).join(",");
    let base = format!("http://{}", http.addr);
    let app = spawn_app_with(&lab, &env_for(&list, &base));
    wait_status(&app, &name, "uptodate").await;

    let new = build_image(&lab, &image, r#"CMD ["sleep", "100001"]"#, true);
    app.check_now().await;
    wait_status(&app, &name, "outdated").await;
    let got = http.wait("new version (generic)", |g| !events(g, "new_version", &image).is_empty());
    let told = events(&got, "new_version", &image)[0].clone();
    let display = image.clone();
    assert_eq!(told["image"], display.as_str(), "{told}");
    assert_eq!(told["new_digest"], short(&new).as_str(), "{told}");
    assert_eq!(told["containers"][0]["name"], name.as_str(), "{told}");
    assert_eq!(told["containers"][0]["digest"], short(&old).as_str(), "{told}");
    let message = told["message"].as_str().unwrap_or_default();
    assert!(message.contains(&name) && message.contains(&short(&new)), "{message}");
    // Every other service hears of it too, naming the container.
    let new_version_title = format!("shipshape: new version of {display}");
    http.wait("new version (ntfy)", |g| {
        g.iter().any(|r| r.path == "/alerts" && r.header("title") == Some(new_version_title.as_str()))
    });
    http.wait("new version (discord, slack, telegram, gotify)", |g| {
        [
            "/api/webhooks/4242/disctoken55",
            "/services/T1/B2/slacksecret33",
            "/api/chat.postMessage",
            "/bot123:tgsecret66/sendMessage",
            "/sub/message",
        ]
        .iter()
        .all(|p| g.iter().any(|r| r.path == *p && r.body.contains(&name)))
    });
    smtp.wait("new version (mail)", |m| m.iter().any(|m| m.data.contains("new version of")));

    // The next check finds the same digest: nothing new to tell.
    app.check_now().await;
    post_update(&app, &id[..12]).await;
    let got = http.wait("update (generic)", |g| !events(g, "updated", &image).is_empty());
    let updated = events(&got, "updated", &image)[0].clone();
    assert_eq!(updated["container"], name.as_str(), "{updated}");
    assert_eq!(updated["image"], image.as_str(), "{updated}");
    assert_eq!(updated["old_digest"], short(&old).as_str(), "{updated}");
    assert_eq!(updated["new_digest"], short(&new).as_str(), "{updated}");
    assert_eq!(updated["reason"], Value::Null, "{updated}");
    let updated_title = format!("shipshape: {name} updated");
    http.wait("update (ntfy)", |g| {
        g.iter().any(|r| r.path == "/alerts" && r.header("title") == Some(updated_title.as_str()))
    });
    http.wait("update (discord)", |g| {
        g.iter().any(|r| r.path.starts_with("/api/webhooks/") && r.body.contains(&updated_title))
    });
    smtp.wait("update (mail)", |m| m.iter().any(|m| m.data.contains(&format!("Subject: {updated_title}"))));
    // After a second check and the update, still one new-version message.
    assert_eq!(events(&http.all(), "new_version", &image).len(), 1, "{:#?}", http.all());
    // The up-to-date container is not "new version" material either.
    wait_status(&app, &name, "uptodate").await;
    assert_no_secrets("the log", &app.log());
}

#[tokio::test]
async fn a_receiver_that_never_answers_slows_no_check() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "silent"));
    cleanup.images.push(image.clone());
    build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("notify-silent");
    cleanup.containers.push(name.clone());
    run(&lab, &name, &["--network", "none", "--stop-timeout", "1", &image]);

    let silent = SilentReceiver::start();
    let dead = closed_port();
    let list = format!("generic+http://{}/hook,ntfy://user:deadpass88@127.0.0.1:{dead}/t?scheme=http", silent.addr);
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_NOTIFY", list.as_str())]);
    wait_status(&app, &name, "uptodate").await;
    build_image(&lab, &image, r#"CMD ["sleep", "100001"]"#, true);
    app.check_now().await;
    wait_status(&app, &name, "outdated").await;

    // The new version's message is on its way to a receiver that never answers...
    let deadline = Instant::now() + PATIENCE;
    while silent.accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the silent receiver was never called:\n{}", app.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // ...and checks go on meanwhile: this one ends while that request still hangs.
    let images = app.check_now().await;
    let still_hanging = silent.open.load(Ordering::SeqCst);
    assert!(find_container(&images, &name).is_some_and(|(_, c)| c["status"] == "outdated"), "{images:#?}");
    assert!(still_hanging >= 1, "the check waited for the notification to give up");

    // The dead one is given up on after its retries, logged without its password.
    let deadline = Instant::now() + PATIENCE;
    let wanted = format!("ntfy://***@127.0.0.1:{dead}/***");
    loop {
        let log = app.log();
        if log.lines().any(|l| l.contains("notification not sent") && l.contains(&wanted)) {
            assert_no_secrets("the log", &log);
            break;
        }
        assert!(Instant::now() < deadline, "no failure logged for {wanted}:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rolled_back_update_is_told_with_its_reason() {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let image = format!("{}:v1", repo(&lab, "rollback"));
    cleanup.images.push(image.clone());
    let old = build_image(&lab, &image, r#"CMD ["sleep", "100000"]"#, false);
    let name = unique("notify-rollback");
    cleanup.containers.push(name.clone());
    let id = run(&lab, &name, &["--network", "none", "--stop-timeout", "1", &image]);
    let http = HttpReceiver::start();
    let list = format!("generic+http://{}/hook/abcdefgh12345", http.addr);
    let app = spawn_app_with(&lab, &[("SHIPSHAPE_NOTIFY", list.as_str())]);
    wait_status(&app, &name, "uptodate").await;

    let new = build_image(&lab, &image, r#"CMD ["sh", "-c", "exit 3"]"#, true);
    app.check_now().await;
    post_update(&app, &id[..12]).await;
    let got = http.wait("rolled back (generic)", |g| !events(g, "rolled_back", &image).is_empty());
    let told = events(&got, "rolled_back", &image)[0].clone();
    assert_eq!(told["container"], name.as_str(), "{told}");
    assert_eq!(told["old_digest"], short(&old).as_str(), "{told}");
    assert_eq!(told["new_digest"], short(&new).as_str(), "{told}");
    let reason = told["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{told}");
    assert!(told["message"].as_str().is_some_and(|m| m.contains("rolled back") && m.contains(reason)), "{told}");
    assert_eq!(told["title"], format!("shipshape: {name} update rolled back").as_str(), "{told}");
}
