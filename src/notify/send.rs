//! Carries a message to one target: HTTP services with reqwest, email with
//! lettre (rustls). Errors are scrubbed of the target's secrets before they
//! leave this module.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::{http_requests, Body, Event};
use super::target::{Service, SmtpSecurity, SmtpTarget, Target};

/// Limit for one attempt at one target.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a refusing server's answer goes into the error.
const ANSWER_SHOWN: usize = 200;

/// How often, and how far apart, a failed send is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    /// Four attempts, 1 s, 2 s and 4 s apart: a receiver that restarts is
    /// reached, a dead one costs a few background tries.
    fn default() -> Self {
        Retry { attempts: 4, first_delay: Duration::from_secs(1) }
    }
}

#[derive(Debug)]
enum Failure {
    /// Worth another try (no answer, 429, 5xx, a transient SMTP reply).
    Transient(String),
    /// The target refused it for good (bad token, unknown chat, bad address).
    Permanent(String),
}

pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("shipshape/", env!("CARGO_PKG_VERSION")))
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        // A redirect could carry a token to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("notification client: {e}"))
}

/// Sends with retries; the error (scrubbed) is the last attempt's.
pub async fn deliver(http: &reqwest::Client, target: &Target, event: &Event, retry: Retry) -> Result<(), String> {
    let mut delay = retry.first_delay;
    let mut attempt = 1;
    loop {
        match send_once(http, target, event).await {
            Ok(()) => return Ok(()),
            Err(Failure::Permanent(e)) => return Err(target.scrub(&e)),
            Err(Failure::Transient(e)) if attempt >= retry.attempts.max(1) => return Err(target.scrub(&e)),
            Err(Failure::Transient(e)) => {
                tracing::debug!(target = %target.redacted, attempt, "notification failed, retrying: {}", target.scrub(&e));
            }
        }
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
        attempt += 1;
    }
}

/// One attempt, no retry (for `POST /api/notify/test`).
pub async fn deliver_once(http: &reqwest::Client, target: &Target, event: &Event) -> Result<(), String> {
    send_once(http, target, event).await.map_err(|f| match f {
        Failure::Transient(e) | Failure::Permanent(e) => target.scrub(&e),
    })
}

async fn send_once(http: &reqwest::Client, target: &Target, event: &Event) -> Result<(), Failure> {
    if let Service::Smtp(smtp) = &target.service {
        return send_mail(smtp, event).await;
    }
    for request in http_requests(&target.service, event).unwrap_or_default() {
        let mut builder = http.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match request.body {
            Body::Json(v) => builder.json(&v),
            Body::Text(t) => builder.header("Content-Type", "text/plain; charset=utf-8").body(t),
        };
        let resp = builder.send().await.map_err(|e| Failure::Transient(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            continue;
        }
        let answer = resp.text().await.unwrap_or_default();
        let answer: String = answer.trim().chars().take(ANSWER_SHOWN).collect();
        let text = if answer.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {answer}") };
        return Err(if status.as_u16() == 429 || status.is_server_error() {
            Failure::Transient(text)
        } else {
            Failure::Permanent(text)
        });
    }
    Ok(())
}

/// reqwest's own text names the URL, which may hold a token: leave it out,
/// keep the causes.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn send_mail(smtp: &SmtpTarget, event: &Event) -> Result<(), Failure> {
    let permanent = |e: String| Failure::Permanent(e);
    let tls = || TlsParameters::new(smtp.host.clone()).map_err(|e| permanent(format!("smtp TLS: {e}")));
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .timeout(Some(ATTEMPT_TIMEOUT));
    builder = match smtp.security {
        SmtpSecurity::None => builder.tls(Tls::None),
        SmtpSecurity::Opportunistic => builder.tls(Tls::Opportunistic(tls()?)),
        SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
        SmtpSecurity::Implicit => builder.tls(Tls::Wrapper(tls()?)),
    };
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let mailer = builder.build();
    let from: Mailbox = smtp.from.parse().map_err(|e| permanent(format!("bad from address: {e}")))?;
    let mut message = lettre::Message::builder().from(from).subject(event.title()).header(ContentType::TEXT_PLAIN);
    for to in &smtp.to {
        message = message.to(to.parse().map_err(|e| permanent(format!("bad to address: {e}")))?);
    }
    let message = message.body(event.text()).map_err(|e| permanent(format!("cannot build the email: {e}")))?;
    match mailer.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Failure::Permanent(format!("smtp: {e}"))),
        Err(e) => Err(Failure::Transient(format!("smtp: {e}"))),
    }
}
