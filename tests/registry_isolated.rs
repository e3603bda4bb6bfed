//! Registry checks whose assertions count requests at a registry, a proxy
//! or a token server. Every running shipshape checks every container of the
//! lab, so these run in a test binary of their own (cargo runs binaries one
//! after another) and one at a time within it: no other app can add requests.

mod common;

use std::time::Duration;

use common::{find_container, group, lab, short, spawn_app, spawn_app_with, unique};

/// Held for a whole test: one app at a time in this binary.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Long enough for a loaded machine; a passing run never waits it out.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn bearer_token_registry_with_cached_tokens() {
    use common::registry::TestRegistry;
    use common::token_server::TokenServer;
    let _serial = ONE_AT_A_TIME.lock().await;
    let lab = lab();
    let tokens = TokenServer::start();
    let registry = TestRegistry::start(tokens.registry_auth());
    let config = tempfile::tempdir().expect("docker config");
    common::docker_as_ok(
        &lab,
        config.path(),
        &["login", "-u", &tokens.user, "--password-stdin", &registry.addr],
        Some(&tokens.password),
    );
    let image = format!("{}/tok/{}:1", registry.addr, unique("app"));
    let (digest, _tag) = common::push_base_as(&lab, config.path(), &image);
    let name = unique("bearer");
    let _c = lab.run(&name, &image, &[]);

    let config_dir = config.path().to_string_lossy().to_string();
    let app = spawn_app_with(&lab, &[("DOCKER_CONFIG", &config_dir)]);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let images = app.check_now().await;
    let g = group(&images, &image);
    assert_eq!(g["status"], "uptodate", "{g}");
    assert_eq!(g["remote_digest"], short(&digest).as_str());

    // The token is cached: another check asks the registry, not the token server.
    let fetched = tokens.token_requests();
    let images = app.check_now().await;
    assert_eq!(group(&images, &image)["status"], "uptodate");
    assert_eq!(tokens.token_requests(), fetched, "token fetched again: {:#?}", tokens.requests());
    assert!(!app.log().contains(&tokens.password));
}

#[tokio::test]
async fn rate_limited_registry_keeps_the_last_status_until_retry_after() {
    use common::flaky_proxy::{FlakyProxy, Mode, Script};
    let _serial = ONE_AT_A_TIME.lock().await;
    let lab = lab();
    let proxy = FlakyProxy::start(&lab.registry, Script::forward());
    let image = format!("{}/limited/{}:1", proxy.addr, unique("app"));
    let (digest, _tag) = common::push_base_as(&lab, std::path::Path::new(&lab.docker_config), &image);
    let name = unique("limited");
    let _c = lab.run(&name, &image, &[]);
    let app = spawn_app(&lab);
    app.wait_images(PATIENCE, "container", |i| find_container(i, &name).is_some()).await;
    let before = app.check_now().await;
    let g = group(&before, &image);
    assert_eq!(g["status"], "uptodate");
    let checked_at = g["checked_at"].clone();

    proxy.set_script(Script::manifests(Mode::too_many_requests(2, 1)));
    let limited = app.check_now().await;
    let g = group(&limited, &image);
    assert_eq!(g["status"], "uptodate", "last known status kept: {g}");
    assert_eq!(g["remote_digest"], short(&digest).as_str());
    assert_eq!(g["checked_at"], checked_at, "its age is kept too");
    assert!(g["error"].as_str().is_some_and(|e| e.contains("429")), "{g}");

    // Within Retry-After the registry is left alone.
    let seen = proxy.requests();
    app.check_now().await;
    assert_eq!(proxy.requests(), seen, "asked again before Retry-After");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = app.check_now().await;
    let g = group(&after, &image);
    assert_eq!(g["status"], "uptodate");
    assert!(g.get("error").is_none(), "{g}");
}

#[tokio::test]
async fn never_checks_one_image_twice_at_once() {
    use common::flaky_proxy::{FlakyProxy, Mode, Script};
    let _serial = ONE_AT_A_TIME.lock().await;
    let lab = lab();
    let proxy = FlakyProxy::start(&lab.registry, Script::forward());
    let image = format!("{}/once/{}:1", proxy.addr, unique("app"));
    let (_, _tag) = common::push_base_as(&lab, std::path::Path::new(&lab.docker_config), &image);
    let name = unique("once");
    let _c = lab.run(&name, &image, &[]);

    // The registry hangs from the start: the check on sight is stuck in flight.
    proxy.set_script(Script::manifests(Mode::Stall));
    proxy.reset_counts();
    let app = spawn_app(&lab);
    let deadline = std::time::Instant::now() + PATIENCE;
    while proxy.requests_matching("/v2/*/manifests/*") == 0 {
        assert!(std::time::Instant::now() < deadline, "no check on sight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two more requests for a check wait for that one instead of asking again.
    let (a, b) = (app.client.post(app.url("/api/check")).send(), app.client.post(app.url("/api/check")).send());
    let both = tokio::spawn(async move { futures::join!(a, b) });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!both.is_finished(), "checks answered while the registry still hangs");
    assert_eq!(proxy.requests_matching("/v2/*/manifests/*"), 1, "{:?}", proxy.path_counts());
    proxy.set_script(Script::forward());
    let (a, b) = both.await.expect("join");
    assert_eq!(a.expect("first check").status(), 200);
    assert_eq!(b.expect("second check").status(), 200);
}
