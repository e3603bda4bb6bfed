//! Restarts the lab's private dockerd under a running shipshape. In its own
//! test binary because it stops every container of the lab daemon: cargo runs
//! test binaries one after another, so no other test is running meanwhile.

mod common;

use std::time::{Duration, Instant};

use common::{find_container, lab, spawn_app, unique};

/// Long enough for a loaded machine; a passing run never waits it out.
/// How fast the snapshot is right again is measured, not asserted.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn snapshot_is_right_again_after_the_daemon_restarts() {
    let lab = lab();
    let app = spawn_app(&lab);
    let (transient, durable) = (unique("transient"), unique("durable"));
    let _t = lab.run(&transient, &lab.base_image, &[]);
    let _d = lab.run(&durable, &lab.base_image, &["--restart", "always"]);
    app.wait_images(PATIENCE, "both containers", |i| {
        find_container(i, &transient).is_some() && find_container(i, &durable).is_some()
    })
    .await;

    lab.script(&["restart-docker"]);
    let back = Instant::now();
    // The plain container died with the daemon; the restart-always one came back.
    let images = app
        .wait_images(PATIENCE, "snapshot after the daemon's return", |i| {
            find_container(i, &transient).is_none() && find_container(i, &durable).is_some()
        })
        .await;
    eprintln!("snapshot right {:?} after the daemon answered", back.elapsed());
    assert!(find_container(&images, &durable).is_some());

    // And the event stream works again: a new container shows up.
    let after = unique("after-restart");
    let _a = lab.run(&after, &lab.base_image, &[]);
    app.wait_images(PATIENCE, "container started after the restart", |i| find_container(i, &after).is_some()).await;
}
