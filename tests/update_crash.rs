#![cfg(feature = "fault-injection")]
//! An update survives the death of shipshape at any step: the service is made
//! to die like `kill -9` right after it journals a step (before carrying it
//! out; `SHIPSHAPE_FAULT_CRASH_AT`, compiled in with the `fault-injection`
//! feature), then started again. By the time it listens, recovery has left
//! exactly one container with the original name, running, configured as
//! before, and nothing of the job behind.

mod common;

use std::time::Duration;

use common::jobs::{
    check_history_shape, containers_of_image, family, history_of, image_id, inspect, lab_image, only_one_running,
    post_update, restart_policy, run, Cleanup, JOB_PATIENCE,
};
use common::{find_container, lab, spawn_app_with, unique};

const PATIENCE: Duration = Duration::from_secs(60);

/// What the engine holds when the service died: `<name kind>=<old|new>:<state>`
/// for the container under the original name, `upd` for `<name>__upd_<op>`,
/// `old` for `<name>__old_<op>`, in that order.
fn engine_state(lab: &common::Lab, name: &str, old_id: &str) -> String {
    let mut found: Vec<(u8, String)> = family(lab, name)
        .into_iter()
        .map(|c| {
            let (rank, kind) = if c.name == name {
                (0, "name")
            } else if c.name.starts_with(&format!("{name}__upd_")) {
                (1, "upd")
            } else if c.name.starts_with(&format!("{name}__old_")) {
                (2, "old")
            } else {
                (3, c.name.as_str())
            };
            let who = if c.id == old_id { "old" } else { "new" };
            (rank, format!("{kind}={who}:{}", c.state))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(" ")
}

async fn crash_at(step: &str, crashed_state: &str, outcome: &str) {
    let lab = lab();
    let mut cleanup = Cleanup::new(&lab);
    let tag = step.replace('_', "-");
    let image = format!("{}/crash/{}:v1", lab.registry, unique(&tag));
    cleanup.images.push(image.clone());
    lab_image(&lab, &image, &format!("{step} one"), false);
    let name = unique(&format!("crash-{tag}"));
    cleanup.containers.push(name.clone());
    let old_id = run(
        &lab,
        &name,
        &["--network", "none", "--stop-timeout", "1", "--restart", "unless-stopped", &image, "sleep", "100000"],
    );
    let old_image = image_id(&lab, &image);
    cleanup.images.push(old_image.clone());
    let before = inspect(&lab, &name);
    lab_image(&lab, &image, &format!("{step} two"), true);

    let mut app = spawn_app_with(&lab, &[("SHIPSHAPE_FAULT_CRASH_AT", step), ("SHIPSHAPE_VERIFY_TIMEOUT", "2s")]);
    app.wait_images(PATIENCE, "container listed", |i| find_container(i, &name).is_some()).await;
    post_update(&app, &old_id[..12]).await;
    let status = app.wait_exit(JOB_PATIENCE);
    assert!(!status.success(), "shipshape was to crash at {step}, exited with {status}\n{}", app.log());
    let crashed_log = app.log();
    // The crash came where it was asked for: right after journalling the
    // step, before carrying it out.
    let left = engine_state(&lab, &name, &old_id);
    assert_eq!(left, crashed_state, "engine state when shipshape died at {step}\n{crashed_log}");

    app.restart_without(&lab, &["SHIPSHAPE_FAULT_CRASH_AT"]);
    // Recovery runs before the service listens: no waiting here.
    let context = || {
        format!(
            "crashed at {step}, the engine then held {left:#?}\ncrash log:\n{crashed_log}\nrestart log:\n{}",
            app.log()
        )
    };
    let found = family(&lab, &name);
    assert!(
        found.len() == 1 && found[0].name == name && found[0].state == "running",
        "after recovery: {found:#?}\n{}",
        context()
    );
    let id = only_one_running(&lab, &name);
    let details = inspect(&lab, &name);
    let new_image = image_id(&lab, &image);
    assert_ne!(new_image, old_image, "the job pulled the new version before {step}");
    match outcome {
        "rolled_back" => {
            assert_eq!(id, old_id, "the same container runs again\n{}", context());
            assert_eq!(details["Image"], old_image.as_str());
            assert_eq!(containers_of_image(&lab, &new_image), Vec::<String>::new(), "{}", context());
        }
        "updated" => {
            assert_ne!(id, old_id, "{}", context());
            assert_eq!(details["Image"], new_image.as_str());
            assert!(lab.docker_output(&["inspect", &old_id]).status.code() != Some(0), "old container left");
        }
        other => panic!("no outcome {other}"),
    }
    assert_eq!(restart_policy(&lab, &name), "unless-stopped:0", "restart policy\n{}", context());
    for pointer in ["/Config/Cmd", "/Config/Env", "/HostConfig/NetworkMode", "/Config/StopTimeout"] {
        assert_eq!(before.pointer(pointer), details.pointer(pointer), "{pointer}\n{}", context());
    }

    let entries = history_of(&app, &name).await;
    assert_eq!(entries.len(), 1, "one job, finished by recovery: {entries:#?}\n{}", context());
    assert_eq!(check_history_shape(&entries[0]), outcome, "{entries:#?}\n{}", context());
    // And the service carries on with it.
    app.wait_images(PATIENCE, "the recovered container listed", |i| {
        find_container(i, &name).is_some_and(|(_, c)| c["container_id"] == id[..12])
    })
    .await;
}

macro_rules! crash_tests {
    ($($test:ident: $step:literal, $crashed:literal => $outcome:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                crash_at($step, $crashed, $outcome).await;
            }
        )*
    };
}

crash_tests! {
    crash_after_planned_rolls_back: "planned", "name=old:running" => "rolled_back",
    crash_after_created_rolls_back: "created", "name=old:running" => "rolled_back",
    crash_after_restart_policy_cleared_rolls_back:
        "restart_policy_cleared", "name=old:running upd=new:created" => "rolled_back",
    crash_after_stopped_rolls_back: "stopped", "name=old:running upd=new:created" => "rolled_back",
    crash_after_renamed_old_rolls_back: "renamed_old", "name=old:exited upd=new:created" => "rolled_back",
    crash_after_renamed_new_rolls_back: "renamed_new", "upd=new:created old=old:exited" => "rolled_back",
    crash_after_started_rolls_back: "started", "name=new:created old=old:exited" => "rolled_back",
    crash_after_verified_finishes_the_update: "verified", "name=new:running old=old:exited" => "updated",
    crash_after_removed_old_finishes_the_update: "removed_old", "name=new:running old=old:exited" => "updated",
}
