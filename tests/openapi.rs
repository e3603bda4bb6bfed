//! docs/openapi.yaml against the running service, so the description cannot
//! drift from the code: every documented path and method is called, every
//! documented answer is provoked (a short, explained list aside) and every
//! real answer is validated against the schema the file gives for its status
//! and content type. Every route of the router (src/http/routes.rs and the
//! embedded web files) must be described, and every described path routed.
//!
//! The schema walker below knows the keywords the file uses and refuses any
//! other, so a schema it cannot check fails instead of passing; it is also
//! stricter than JSON Schema in one way: a JSON object may not carry a field
//! the file does not describe.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PASSWORD: &str = "openapi-test-password";
const PATIENCE: Duration = Duration::from_secs(180);
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Documented answers no test here can provoke, and why.
const SWARM: &str = "needs a swarm manager engine and a service (tests/swarm.rs)";
const NOT_PROVOKED: [(&str, &str, &str, &str); 10] = [
    ("/api/ws", "get", "engine", "the engine message needs a daemon restart (tests/daemon_restart.rs)"),
    ("/api/ws", "get", "hosts", "the hosts message needs several engines (tests/hosts.rs)"),
    ("/api/images/{id}/auto-update", "post", "409", "an ambiguous id needs several engines (tests/hosts.rs)"),
    ("/api/images/{id}/progress", "get", "409", "an ambiguous id needs several engines (tests/hosts.rs)"),
    ("/api/ws", "get", "services", SWARM),
    ("/api/ws", "get", "service_progress", SWARM),
    ("/api/services/{id}/update", "post", "200", SWARM),
    ("/api/services/{id}/update", "post", "409", SWARM),
    ("/api/services/{id}/auto-update", "post", "200", SWARM),
    ("/api/services/{id}/progress", "get", "200", SWARM),
];

fn spec() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/openapi.yaml")).expect("docs/openapi.yaml");
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// Follows `$ref`s within the file.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("only local refs: {r}"));
                v = doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}"));
            }
            None => return v,
        }
    }
    panic!("$ref loop at {v}")
}

const KNOWN_KEYWORDS: [&str; 20] = [
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "items",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "additionalProperties",
    "description",
    "format",
    "default",
    "example",
    "title",
    "examples",
    "deprecated",
];

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unknown type {other}"),
    }
}

/// JSON Schema validation for the keywords in KNOWN_KEYWORDS; errors name
/// where in the value they are.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let Some(obj) = schema.as_object() else { panic!("schema at {at} is not an object: {schema}") };
    for key in obj.keys() {
        assert!(KNOWN_KEYWORDS.contains(&key.as_str()), "schema keyword {key} (at {at}) is not checked by this test");
    }
    let mut fail = |msg: String| errors.push(format!("{at}: {msg}"));
    if let Some(c) = obj.get("const") {
        if v != c {
            fail(format!("{v} is not {c}"));
        }
    }
    if let Some(options) = obj.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            fail(format!("{v} is not one of {options:?}"));
        }
    }
    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type at {at}"),
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            fail(format!("{v} is not of type {types:?}"));
            return;
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if obj.get("minLength").and_then(Value::as_u64).is_some_and(|min| len < min) {
            fail(format!("{s:?} is shorter than minLength"));
        }
        if obj.get("maxLength").and_then(Value::as_u64).is_some_and(|max| len > max) {
            fail(format!("{s:?} is longer than maxLength"));
        }
        if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
            let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern:?} at {at}: {e}"));
            if !re.is_match(s) {
                fail(format!("{s:?} does not match {pattern:?}"));
            }
        }
    }
    if let Some(n) = v.as_f64() {
        if obj.get("minimum").and_then(Value::as_f64).is_some_and(|min| n < min) {
            fail(format!("{n} is below the minimum"));
        }
        if obj.get("maximum").and_then(Value::as_f64).is_some_and(|max| n > max) {
            fail(format!("{n} is above the maximum"));
        }
    }
    if let (Some(items), Some(array)) = (obj.get("items"), v.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(map) = v.as_object() {
        let properties = obj.get("properties").and_then(Value::as_object);
        for name in obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errors.push(format!("{at}: required field {name} missing"));
            }
        }
        for (key, value) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => validate(doc, s, value, &format!("{at}.{key}"), errors),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(true)) => {}
                    Some(s @ Value::Object(_)) => validate(doc, s, value, &format!("{at}.{key}"), errors),
                    _ => errors.push(format!("{at}: field {key} is not described")),
                },
            }
        }
    }
}

fn check(doc: &Value, schema: &Value, v: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    validate(doc, schema, v, "$", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[test]
fn the_walker_can_fail() {
    let doc = json!({"components": {"schemas": {
        "Item": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "minLength": 2}, "n": {"type": ["integer", "null"], "minimum": 0}}}
    }}});
    let list = json!({"type": "array", "items": {"$ref": "#/components/schemas/Item"}});
    let cases = [
        (list.clone(), json!([{"id": "ab"}, {"id": "cd", "n": null}, {"id": "ef", "n": 3}]), true),
        (list.clone(), json!([{"id": "a"}]), false),
        (list.clone(), json!([{"n": 1}]), false),
        (list.clone(), json!([{"id": "ab", "n": -1}]), false),
        (list.clone(), json!([{"id": "ab", "n": 1.5}]), false),
        (list.clone(), json!([{"id": "ab", "extra": 1}]), false),
        (list, json!({"id": "ab"}), false),
        (json!({"type": "string", "enum": ["a\n"]}), json!("a\n"), true),
        (json!({"type": "string", "enum": ["a\n"]}), json!("a"), false),
        (json!({"const": "ok"}), json!("okay"), false),
        (json!({"type": "string", "pattern": "^x[0-9]+$"}), json!("x12"), true),
        (json!({"type": "string", "pattern": "^x[0-9]+$"}), json!("x1y"), false),
        (json!({"type": "integer", "maximum": 100}), json!(101), false),
    ];
    for (schema, value, ok) in cases {
        assert_eq!(check(&doc, &schema, &value).is_ok(), ok, "{schema} {value}");
    }
}

/// A spec path with sample values for its parameters.
fn sample(template: &str) -> String {
    template
        .replace("{id}", "0123456789ab")
        .replace("{image}", "nginx:latest")
        .replace("{file}", "app.css")
        .replace("{module}", "main.js")
}

/// The router's paths: the literals of src/http/routes.rs, those inside the
/// `/api` scope prefixed with it, and one per embedded web file.
fn router_paths() -> Vec<String> {
    let source = std::fs::read_to_string(Path::new(ROOT).join("src/http/routes.rs")).expect("routes.rs");
    let body = source.split("pub fn configure").nth(1).expect("configure in routes.rs");
    let body = &body[..body.find("\n}\n").expect("end of configure")];
    let scope_at = body.find("web::scope(\"/api\")").expect("the /api scope");
    // The scope's extent: from the `(` that encloses it to the matching `)`.
    let bytes = body.as_bytes();
    let mut depth = 0i32;
    let mut open = scope_at;
    while open > 0 {
        open -= 1;
        match bytes[open] {
            b')' => depth += 1,
            b'(' if depth == 0 => break,
            b'(' => depth -= 1,
            _ => {}
        }
    }
    let mut close = open;
    let mut depth = 0i32;
    for (i, b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    close = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    for (at, _) in body.match_indices("resource(\"") {
        let literal = &body[at + "resource(\"".len()..];
        let literal = &literal[..literal.find('"').expect("end of literal")];
        let inside = at > open && at < close;
        paths.push(if inside { format!("/api{literal}") } else { literal.to_string() });
    }
    assert!(paths.len() >= 8, "found too few routes in routes.rs: {paths:?}");
    paths.push("/".into());
    for file in web_files(&Path::new(ROOT).join("web"), "") {
        paths.push(format!("/{file}"));
    }
    paths
}

fn web_files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("web dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let path = format!("{prefix}{name}");
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(web_files(&entry.path(), &format!("{path}/")));
        } else {
            out.push(path);
        }
    }
    out
}

/// An actix route pattern as a regex: `{name}` one segment, `{name:re}` re.
fn route_regex(pattern: &str) -> regex::Regex {
    let mut re = String::from("^");
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        re.push_str(&regex::escape(&rest[..start]));
        let end = rest[start..].find('}').expect("closing brace") + start;
        let param = &rest[start + 1..end];
        match param.split_once(':') {
            Some((_, custom)) => re.push_str(&format!("({custom})")),
            None => re.push_str("([^/]+)"),
        }
        rest = &rest[end + 1..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    regex::Regex::new(&re).expect("route regex")
}

#[test]
fn every_route_is_described_and_every_description_routed() {
    let doc = spec();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"), "info.version follows Cargo.toml");
    let templates: Vec<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    let routes = router_paths();
    let route_res: Vec<(String, regex::Regex)> = routes.iter().map(|r| (r.clone(), route_regex(r))).collect();
    for template in &templates {
        let concrete = sample(template);
        assert!(
            route_res.iter().any(|(_, re)| re.is_match(&concrete)),
            "{template} is described but no route serves {concrete}: {routes:?}"
        );
    }
    // A router path with parameters is described when a described path
    // (with its parameters filled in) reaches it; a literal one, when a
    // template matches it.
    let template_res: Vec<regex::Regex> = templates.iter().map(|t| route_regex(t)).collect();
    for (route, re) in &route_res {
        let described = if route.contains('{') {
            templates.iter().any(|t| re.is_match(&sample(t)))
        } else {
            template_res.iter().any(|t| t.is_match(route))
        };
        assert!(described, "the router serves {route}, which docs/openapi.yaml does not describe");
    }
}

/// One request, its answer checked against the file and counted.
struct Checker {
    doc: Value,
    app: common::TestApp,
    client: reqwest::Client,
    covered: BTreeSet<(String, String, String)>,
}

struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct Req<'a> {
    cookie: Option<&'a str>,
    body: Option<String>,
    content_type: Option<&'a str>,
    headers: Vec<(&'a str, String)>,
    /// Validate as the answer of this method of the path (a 405 for a
    /// method nobody described is described on the ones that exist).
    described_as: Option<&'a str>,
}

impl Checker {
    async fn call(&mut self, method: &str, template: &str, path: &str, req: Req<'_>) -> Answer {
        let mut builder = self
            .client
            .request(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method"), self.app.url(path));
        if let Some(cookie) = req.cookie {
            builder = builder.header("cookie", cookie);
        }
        if let Some(body) = req.body {
            builder = builder.header("content-type", req.content_type.unwrap_or("application/json")).body(body);
        }
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        let resp = builder.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("body");
        let answer = Answer { status, body, headers };
        self.validate(req.described_as.unwrap_or(method), template, path, &answer);
        answer
    }

    fn validate(&mut self, method: &str, template: &str, path: &str, answer: &Answer) {
        let doc = &self.doc;
        let what = format!("{} {path} (as {template}) → {}", method.to_ascii_uppercase(), answer.status);
        let operation =
            doc["paths"][template].get(method).unwrap_or_else(|| panic!("{what}: the method is not described"));
        let response = operation["responses"]
            .get(answer.status.to_string())
            .map(|r| resolve(doc, r))
            .unwrap_or_else(|| panic!("{what}: status not described; body {:?}", answer.body));
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
        match response.get("content") {
            None => assert!(answer.body.is_empty(), "{what}: described without a body, got {:?}", answer.body),
            Some(content) => {
                let media = content_type.unwrap_or_else(|| panic!("{what}: no content type"));
                let schema = &content
                    .get(&media)
                    .unwrap_or_else(|| panic!("{what}: content type {media} not described"))["schema"];
                let value =
                    if media == "application/json" { answer.json() } else { Value::String(answer.body.clone()) };
                if let Err(errors) = check(doc, schema, &value) {
                    panic!("{what}: the answer does not match docs/openapi.yaml:\n{}\n{value:#}", errors.join("\n"));
                }
            }
        }
        self.covered.insert((template.to_string(), method.to_string(), answer.status.to_string()));
    }

    async fn expect(&mut self, method: &str, template: &str, path: &str, req: Req<'_>, status: u16) -> Answer {
        let answer = self.call(method, template, path, req).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer
    }

    /// Every described (path, method) and its non-public status.
    fn operations(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for (template, item) in self.doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let public = op.get("security").and_then(Value::as_array).is_some_and(|s| s.is_empty());
                    out.push((template.clone(), method.to_string(), public));
                }
            }
        }
        out
    }
}

fn json_body(v: Value) -> Req<'static> {
    Req { body: Some(v.to_string()), ..Req::default() }
}

#[tokio::test]
async fn the_service_answers_as_described() {
    let lab = common::lab();
    lab.ensure_base_image();
    // A notification target on a loopback port nobody listens on: the test
    // message fails, and says so in a described shape.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let notify = format!("generic+http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);
    let app = common::spawn_app_with(
        &lab,
        &[("SHIPSHAPE_AUTH", "on"), ("SHIPSHAPE_AUTH_PASSWORD", PASSWORD), ("SHIPSHAPE_NOTIFY", &notify)],
    );
    let mut c = Checker { doc: spec(), app, client: common::http_client(), covered: BTreeSet::new() };

    // Containers for every kind of item: one that can be updated (its image is
    // the registry's, so the update ends `unchanged`), a monitor-only one on a
    // tag of its own, and one its label leaves out.
    let plain = lab.run(&common::unique("openapi-plain"), &lab.base_image, &[]);
    let monitored_image = format!("openapi-monitored:{}", common::unique("t").replace('-', ""));
    lab.docker(&["tag", &lab.base_image, &monitored_image]);
    let _untag = scopeguard(&lab, &monitored_image);
    let monitored =
        lab.run(&common::unique("openapi-monitored"), &monitored_image, &["--label", "shipshape.monitor-only=true"]);
    let _excluded =
        lab.run(&common::unique("openapi-excluded"), &lab.base_image, &["--label", "shipshape.enable=false"]);

    // Public endpoints and login.
    c.expect("get", "/health", "/health", Req::default(), 200).await;
    c.expect("get", "/api/auth/status", "/api/auth/status", Req::default(), 200).await;
    c.expect("post", "/api/login", "/api/login", json_body(json!({"user": "admin", "pass": "wrong-password"})), 401)
        .await;
    let bad_json = Req { body: Some("{\"user\":".into()), ..Req::default() };
    c.expect("post", "/api/login", "/api/login", bad_json, 400).await;
    let too_big = json_body(json!({"user": "admin", "pass": "x".repeat(20 * 1024)}));
    c.expect("post", "/api/login", "/api/login", too_big, 413).await;
    let login =
        c.expect("post", "/api/login", "/api/login", json_body(json!({"user": "admin", "pass": PASSWORD})), 200).await;
    let set_cookie = login.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("Set-Cookie").to_string();
    let cookie = set_cookie.split(';').next().expect("cookie").to_string();
    fn with(cookie: &str) -> Req<'_> {
        Req { cookie: Some(cookie), ..Req::default() }
    }

    // The edge, for every described operation: a foreign Host (421), a
    // foreign Origin on what changes state (403), no session (401), a
    // method nobody described (405).
    for (template, method, public) in c.operations() {
        let path = sample(&template);
        let host = Req { cookie: Some(&cookie), headers: vec![("host", "evil.example".into())], ..Req::default() };
        c.expect(&method, &template, &path, host, 421).await;
        if method != "get" || template == "/api/ws" {
            let mut origin = Req {
                cookie: Some(&cookie),
                headers: vec![("origin", "http://evil.example".into())],
                ..Req::default()
            };
            if template == "/api/ws" {
                origin.headers.extend([("connection", "Upgrade".into()), ("upgrade", "websocket".into())]);
            }
            c.expect(&method, &template, &path, origin, 403).await;
        }
        if !public {
            c.expect(&method, &template, &path, Req::default(), 401).await;
        }
        let other = if method == "get" { "put" } else { "delete" };
        let wrong_method = Req { cookie: Some(&cookie), described_as: Some(&method), ..Req::default() };
        c.expect(other, &template, &path, wrong_method, 405).await;
    }

    // The view: every container the labels let in, and with ?all=1 the rest.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let images = c.expect("get", "/api/images", "/api/images?all=1", with(&cookie), 200).await.json();
        let names: Vec<&str> = images
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["containers"].as_array().into_iter().flatten())
            .filter_map(|c| c["container_name"].as_str())
            .collect();
        if names.contains(&plain.name.as_str())
            && names.contains(&monitored.name.as_str())
            && names.contains(&_excluded.name.as_str())
        {
            break;
        }
        assert!(Instant::now() < deadline, "containers never listed: {images:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.expect("get", "/api/images", "/api/images", with(&cookie), 200).await;
    c.expect("get", "/api/images", "/api/images?all=1&all=0", with(&cookie), 400).await;
    c.expect("post", "/api/check", "/api/check", with(&cookie), 200).await;
    c.expect("get", "/api/engine", "/api/engine", with(&cookie), 200).await;
    c.expect("get", "/api/hosts", "/api/hosts", with(&cookie), 200).await;
    c.expect("get", "/api/settings", "/api/settings", with(&cookie), 200).await;
    let served = c.expect("get", "/api/openapi.yaml", "/api/openapi.yaml", with(&cookie), 200).await;
    let file = std::fs::read_to_string(Path::new(ROOT).join("docs/openapi.yaml")).expect("docs/openapi.yaml");
    assert!(served.body == file, "GET /api/openapi.yaml serves docs/openapi.yaml as built");
    c.expect("get", "/metrics", "/metrics", with(&cookie), 200).await;
    let sent = c.expect("post", "/api/notify/test", "/api/notify/test", with(&cookie), 200).await.json();
    assert_eq!(sent.as_array().map(Vec::len), Some(1), "one result per target: {sent}");
    c.expect("get", "/api/history", "/api/history?limit=5", with(&cookie), 200).await;
    c.expect("get", "/api/history", "/api/history?limit=many", with(&cookie), 400).await;

    // Container actions and their errors.
    let id = plain.short_id().to_string();
    let toggle = format!("/api/images/{id}/auto-update");
    for _ in 0..2 {
        c.expect("post", "/api/images/{id}/auto-update", &toggle, with(&cookie), 200).await;
    }
    let progress = format!("/api/images/{id}/progress");
    c.expect("get", "/api/images/{id}/progress", &progress, with(&cookie), 404).await;
    let nobody = "/api/images/fedcba987654";
    c.expect("get", "/api/images/{id}/progress", &format!("{nobody}/progress"), with(&cookie), 404).await;
    c.expect("post", "/api/images/{id}/update", &format!("{nobody}/update"), with(&cookie), 404).await;
    c.expect("post", "/api/images/{id}/auto-update", &format!("{nobody}/auto-update"), with(&cookie), 404).await;
    c.expect("post", "/api/images/{id}/update", "/api/images/a/b/update", with(&cookie), 400).await;
    c.expect("post", "/api/images/{id}/update", &format!("/api/images/{id}/upgrade"), with(&cookie), 400).await;
    c.expect("post", "/api/images/{id}/auto-update", "/api/images/a/b/auto-update", with(&cookie), 400).await;
    c.expect("get", "/api/images/{id}/progress", "/api/images/a/b/progress", with(&cookie), 400).await;
    let monitored_update = format!("/api/images/{}/update", monitored.short_id());
    let refused = c.expect("post", "/api/images/{id}/update", &monitored_update, with(&cookie), 409).await;
    assert_eq!(refused.body, "monitor only\n");
    let group = format!("/api/groups/{}/update", monitored_image.replace('/', "%2F"));
    c.expect("post", "/api/groups/{image}/update", &group, with(&cookie), 409).await;
    c.expect("post", "/api/groups/{image}/update", "/api/groups/nowhere%3A1/update", with(&cookie), 404).await;
    // Swarm services: none on a plain engine (tests/swarm.rs has a manager).
    let none = c.expect("get", "/api/services", "/api/services", with(&cookie), 200).await;
    assert_eq!(none.json(), json!([]));
    for (method, template, action) in
        [("post", "/api/services/{id}/update", "update"), ("post", "/api/services/{id}/auto-update", "auto-update")]
    {
        c.expect(method, template, &format!("/api/services/nosuchservice/{action}"), with(&cookie), 404).await;
    }
    c.expect("get", "/api/services/{id}/progress", "/api/services/nosuchservice/progress", with(&cookie), 404).await;
    // A tag nobody offers: the reason, and nothing starts.
    let group = format!("/api/groups/{}/update", lab.base_image.replace('/', "%2F"));
    let body = Some(r#"{"tag":"99.0"}"#.to_string());
    let json = Some("application/json");
    let bad =
        c.expect("post", "/api/groups/{image}/update", &group, Req { body, content_type: json, ..with(&cookie) }, 400);
    assert!(bad.await.body.contains("not offered"));

    // The websocket: every message it sends is described; an update that
    // finds nothing new runs through progress and history.
    c.expect("get", "/api/ws", "/api/ws", with(&cookie), 400).await;
    let mut request = c.app.ws_url().into_client_request().expect("ws request");
    request.headers_mut().insert("cookie", cookie.parse().expect("cookie header"));
    let (mut ws, handshake) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
    c.covered.insert(("/api/ws".into(), "get".into(), handshake.status().as_u16().to_string()));
    assert_eq!(handshake.status().as_u16(), 101);
    let update = format!("/api/images/{id}/update");
    let started = c.expect("post", "/api/images/{id}/update", &update, with(&cookie), 200).await;
    assert_eq!(started.json(), json!({"status": "updating"}));
    let messages = c.doc["paths"]["/api/ws"]["get"]["x-websocket-messages"].clone();
    read_until_history(&mut c, &mut ws, &messages, &plain.name).await;
    // The same through its group (the excluded container of that image stays out).
    let group = format!("/api/groups/{}/update", lab.base_image.replace('/', "%2F"));
    c.expect("post", "/api/groups/{image}/update", &group, with(&cookie), 200).await;
    read_until_history(&mut c, &mut ws, &messages, &plain.name).await;
    c.expect("get", "/api/images/{id}/progress", &progress, with(&cookie), 200).await;
    let history = c.expect("get", "/api/history", "/api/history", with(&cookie), 200).await.json();
    assert!(history.as_array().is_some_and(|h| !h.is_empty()), "the update is in the history");

    // The web UI: the page, revalidation, every embedded file, and a miss.
    let page = c.expect("get", "/", "/", Req::default(), 200).await;
    let etag = page.headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_string();
    let revalidate = Req { headers: vec![("if-none-match", etag)], ..Req::default() };
    c.expect("get", "/", "/", revalidate, 304).await;
    let app_css = c.expect("get", "/{file}", "/app.css", Req::default(), 200).await;
    let etag = app_css.headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_string();
    c.expect("get", "/{file}", "/app.css", Req { headers: vec![("if-none-match", etag)], ..Req::default() }, 304).await;
    let main_js = c.expect("get", "/js/{module}", "/js/main.js", Req::default(), 200).await;
    let etag = main_js.headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_string();
    c.expect(
        "get",
        "/js/{module}",
        "/js/main.js",
        Req { headers: vec![("if-none-match", etag)], ..Req::default() },
        304,
    )
    .await;
    for file in web_files(&Path::new(ROOT).join("web"), "") {
        let template = if file.starts_with("js/") { "/js/{module}" } else { "/{file}" };
        c.expect("get", template, &format!("/{file}"), Req::default(), 200).await;
    }
    c.expect("get", "/{file}", "/nothing-here.txt", Req::default(), 404).await;
    c.expect("get", "/js/{module}", "/js/nothing-here.js", Req::default(), 404).await;

    // Logout ends the session; then the login brake.
    c.expect("post", "/api/logout", "/api/logout", with(&cookie), 200).await;
    c.expect("get", "/api/images", "/api/images", with(&cookie), 401).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let wrong = json_body(json!({"user": "admin", "pass": "still-the-wrong-one"}));
        let answer = c.call("post", "/api/login", "/api/login", wrong).await;
        if answer.status == 429 {
            let retry =
                answer.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            assert!(retry.is_some_and(|r| r >= 1), "Retry-After: {:?}", answer.headers);
            break;
        }
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(Instant::now() < deadline, "the login brake never engaged");
    }

    // Everything described was seen, but for the explained few.
    let mut missing = Vec::new();
    for (template, item) in c.doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let mut expected: Vec<String> = op["responses"].as_object().expect("responses").keys().cloned().collect();
            if let Some(kinds) = op.get("x-websocket-messages").and_then(Value::as_object) {
                expected.extend(kinds.keys().cloned());
            }
            for status in expected {
                let key = (template.clone(), method.to_string(), status.clone());
                let excused = NOT_PROVOKED
                    .iter()
                    .any(|(t, m, s, _)| (*t, *m, *s) == (template.as_str(), method, status.as_str()));
                if !c.covered.contains(&key) && !excused {
                    missing.push(format!("{} {template} {status}", method.to_ascii_uppercase()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "described but never seen: {missing:#?}");
    drop(monitored);
}

/// Validates websocket messages until one says `container`'s update ended.
async fn read_until_history<S>(c: &mut Checker, ws: &mut S, messages: &Value, container: &str)
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next()).await.expect("the update's history message in time");
        let Some(Ok(message)) = next else { panic!("websocket closed before the update ended") };
        let Ok(text) = message.to_text() else { continue };
        if text.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).expect("websocket message is JSON");
        let kind = value["type"].as_str().expect("message type").to_string();
        let schema = messages.get(&kind).unwrap_or_else(|| panic!("websocket message type {kind} is not described"));
        if let Err(errors) = check(&c.doc, schema, &value) {
            panic!("websocket {kind} message does not match:\n{}\n{value:#}", errors.join("\n"));
        }
        c.covered.insert(("/api/ws".into(), "get".into(), kind.clone()));
        if kind == "history" && value["data"]["container_name"] == container {
            return;
        }
    }
}

/// Untags a local image when dropped.
fn scopeguard<'a>(lab: &'a common::Lab, image: &str) -> impl Drop + 'a {
    struct Untag<'a>(&'a common::Lab, String);
    impl Drop for Untag<'_> {
        fn drop(&mut self) {
            let _ = self.0.docker_output(&["rmi", &self.1]);
        }
    }
    Untag(lab, image.to_string())
}

#[test]
fn router_paths_come_from_the_source() {
    let routes = router_paths();
    for expected in ["/health", "/api/login", "/api/images", "/api/images/{tail:.*}", "/api/ws", "/", "/js/main.js"] {
        assert!(routes.iter().any(|r| r == expected), "{expected} in {routes:?}");
    }
    assert!(route_regex("/api/images/{tail:.*}").is_match("/api/images/a/b"));
    assert!(!route_regex("/api/images/{id}").is_match("/api/images/a/b"));
}
