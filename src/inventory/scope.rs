//! Which containers this instance looks after, from their labels: the
//! Watchtower labels people already have in their compose files, and
//! shipshape's own. Pure functions, so the service and `shipshape check`
//! decide the same way.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::docker::model::Container;

const WT: &str = "com.centurylinklabs.watchtower.";
const SS: &str = "shipshape.";

/// The instance's side of the decision (`SHIPSHAPE_LABEL_ENABLE`, `SHIPSHAPE_SCOPE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Opt-in: only containers labelled `...enable=true` are looked after.
    pub label_enable: bool,
    /// `None`: every scope, as Watchtower without `--scope`. `Some("none")`
    /// means containers without a scope label (or with an empty or `none` one).
    pub scope: Option<String>,
}

/// What the instance does with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Another instance's container: never listed, checked or touched.
    OutOfScope,
    /// Disabled by label (or not enabled in opt-in mode): listed only with `?all=1`.
    Excluded,
    /// Checked and shown, never updated.
    MonitorOnly,
    Included,
}

/// `shipshape.<key>` wins over Watchtower's `com.centurylinklabs.watchtower.<key>`.
fn label<'a>(labels: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    labels.get(&format!("{SS}{key}")).or_else(|| labels.get(&format!("{WT}{key}"))).map(|v| v.trim())
}

fn is_true(value: Option<&str>) -> Option<bool> {
    match value?.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn select(policy: &Policy, labels: &HashMap<String, String>) -> Selection {
    if let Some(scope) = &policy.scope {
        let theirs = label(labels, "scope").filter(|s| !s.is_empty()).unwrap_or("none");
        if theirs != scope {
            return Selection::OutOfScope;
        }
    }
    let enabled = is_true(label(labels, "enable"));
    if enabled == Some(false) || (policy.label_enable && enabled != Some(true)) {
        return Selection::Excluded;
    }
    if is_true(label(labels, "monitor-only")) == Some(true) {
        return Selection::MonitorOnly;
    }
    Selection::Included
}

/// The auto-update toggle's default when the user never set it.
pub fn auto_update_default(labels: &HashMap<String, String>) -> bool {
    is_true(labels.get("shipshape.auto-update").map(|v| v.trim())) == Some(true)
}

/// The container names this one depends on: the `depends-on` labels
/// (comma separated) and a `container:` network mode.
pub fn dependencies(labels: &HashMap<String, String>, network_mode: &str) -> Vec<String> {
    let mut names: Vec<String> = label(labels, "depends-on")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(target) = network_mode.strip_prefix("container:") {
        names.push(target.trim_start_matches('/').to_string());
    }
    names
}

/// `names` ordered so that each comes after what it depends on (by name,
/// or by id prefix for `container:` modes); ties keep their given order.
/// A cycle cannot be honoured: its members keep their given order after
/// everything else.
pub fn dependency_order(items: &[(String, String, Vec<String>)]) -> Vec<usize> {
    // items: (id, name, dependencies)
    let resolve = |dep: &str| -> Option<usize> {
        items.iter().position(|(id, name, _)| name == dep || (dep.len() >= 12 && id.starts_with(dep)))
    };
    let deps: Vec<HashSet<usize>> = items
        .iter()
        .enumerate()
        .map(|(i, (_, _, d))| d.iter().filter_map(|n| resolve(n)).filter(|&j| j != i).collect())
        .collect();
    let mut placed = vec![false; items.len()];
    let mut order = Vec::with_capacity(items.len());
    loop {
        let next = (0..items.len()).find(|&i| !placed[i] && deps[i].iter().all(|&j| placed[j]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    order.extend((0..items.len()).filter(|&i| !placed[i]));
    order
}

/// Sorts containers dependencies first.
pub fn order_containers(containers: Vec<Container>) -> Vec<Container> {
    let items: Vec<_> =
        containers.iter().map(|c| (c.id.clone(), c.name.clone(), dependencies(&c.labels, &c.network_mode))).collect();
    let mut slots: Vec<Option<Container>> = containers.into_iter().map(Some).collect();
    dependency_order(&items).into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The names of the containers, among `running`, that depend on `name` by label
/// (`container:` dependants are recreated, not restarted).
pub fn label_dependants<'a>(
    running: impl IntoIterator<Item = (&'a str, &'a HashMap<String, String>)>,
    name: &str,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (n, labels) in running {
        if n != name && dependencies(labels, "").iter().any(|d| d == name) {
            out.insert(n.to_string());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Selection::*;

    type Pairs<'a> = &'a [(&'a str, &'a str)];
    type Item = (String, String, Vec<String>);

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selection_table() {
        let all = Policy::default();
        let opt_in = Policy { label_enable: true, scope: None };
        let scoped = Policy { label_enable: false, scope: Some("blue".into()) };
        let unscoped_only = Policy { label_enable: false, scope: Some("none".into()) };
        let cases: &[(&Policy, Pairs, Selection)] = &[
            (&all, &[], Included),
            (&all, &[("com.centurylinklabs.watchtower.enable", "false")], Excluded),
            (&all, &[("shipshape.enable", "false")], Excluded),
            (&all, &[("shipshape.enable", "FALSE ")], Excluded),
            (&all, &[("shipshape.enable", "true")], Included),
            // shipshape's own label wins over Watchtower's.
            (&all, &[("com.centurylinklabs.watchtower.enable", "false"), ("shipshape.enable", "true")], Included),
            (&opt_in, &[], Excluded),
            (&opt_in, &[("com.centurylinklabs.watchtower.enable", "true")], Included),
            (&opt_in, &[("shipshape.enable", "maybe")], Excluded),
            (&all, &[("com.centurylinklabs.watchtower.monitor-only", "true")], MonitorOnly),
            (&all, &[("shipshape.monitor-only", "true")], MonitorOnly),
            (&all, &[("shipshape.monitor-only", "false")], Included),
            (&all, &[("shipshape.enable", "false"), ("shipshape.monitor-only", "true")], Excluded),
            // Without SHIPSHAPE_SCOPE every scope is seen (Watchtower without --scope).
            (&all, &[("shipshape.scope", "red")], Included),
            (&scoped, &[("shipshape.scope", "blue")], Included),
            (&scoped, &[("com.centurylinklabs.watchtower.scope", "blue")], Included),
            (&scoped, &[("shipshape.scope", "red")], OutOfScope),
            (&scoped, &[], OutOfScope),
            (&scoped, &[("shipshape.scope", "blue"), ("shipshape.enable", "false")], Excluded),
            (&unscoped_only, &[], Included),
            (&unscoped_only, &[("shipshape.scope", "")], Included),
            (&unscoped_only, &[("shipshape.scope", "none")], Included),
            (&unscoped_only, &[("shipshape.scope", "blue")], OutOfScope),
        ];
        for (policy, pairs, expected) in cases {
            assert_eq!(select(policy, &labels(pairs)), *expected, "{policy:?} {pairs:?}");
        }
    }

    #[test]
    fn auto_update_default_table() {
        for (pairs, expected) in [
            (&[][..], false),
            (&[("shipshape.auto-update", "true")][..], true),
            (&[("shipshape.auto-update", "false")][..], false),
            (&[("com.centurylinklabs.watchtower.auto-update", "true")][..], false),
        ] {
            assert_eq!(auto_update_default(&labels(pairs)), expected, "{pairs:?}");
        }
    }

    #[test]
    fn dependencies_table() {
        let cases: &[(Pairs, &str, &[&str])] = &[
            (&[], "none", &[]),
            (&[("shipshape.depends-on", "db, cache ,")], "", &["db", "cache"]),
            (&[("com.centurylinklabs.watchtower.depends-on", "/db")], "bridge", &["db"]),
            (&[], "container:vpn", &["vpn"]),
            (&[("shipshape.depends-on", "db")], "container:/vpn", &["db", "vpn"]),
        ];
        for (pairs, mode, expected) in cases {
            assert_eq!(dependencies(&labels(pairs), mode), *expected, "{pairs:?} {mode}");
        }
    }

    #[test]
    fn dependency_order_table() {
        let item = |id: &str, name: &str, deps: &[&str]| {
            (id.to_string(), name.to_string(), deps.iter().map(|d| d.to_string()).collect::<Vec<_>>())
        };
        let cases: Vec<(Vec<Item>, Vec<usize>)> = vec![
            (vec![], vec![]),
            (vec![item("1", "a", &[]), item("2", "b", &[])], vec![0, 1]),
            (vec![item("1", "app", &["db"]), item("2", "db", &[])], vec![1, 0]),
            // A chain given backwards.
            (vec![item("1", "c", &["b"]), item("2", "b", &["a"]), item("3", "a", &[])], vec![2, 1, 0]),
            // Unknown names (not in this update) do not hold anything back.
            (vec![item("1", "app", &["elsewhere"]), item("2", "db", &[])], vec![0, 1]),
            // By id prefix, as `container:` modes may name it.
            (vec![item("1", "side", &["aaaaaaaaaaaa"]), item("aaaaaaaaaaaaffff", "vpn", &[])], vec![1, 0]),
            // A cycle keeps its order, after the rest.
            (vec![item("1", "x", &["y"]), item("2", "y", &["x"]), item("3", "z", &[])], vec![2, 0, 1]),
            (vec![item("1", "self", &["self"])], vec![0]),
        ];
        for (items, expected) in cases {
            assert_eq!(dependency_order(&items), expected, "{items:?}");
        }
    }

    #[test]
    fn label_dependants_table() {
        let app = labels(&[("shipshape.depends-on", "db")]);
        let worker = labels(&[("com.centurylinklabs.watchtower.depends-on", "cache,db")]);
        let none = labels(&[]);
        let running = [("app", &app), ("worker", &worker), ("db", &none)];
        assert_eq!(label_dependants(running, "db"), ["app", "worker"]);
        assert_eq!(label_dependants(running, "cache"), ["worker"]);
        assert!(label_dependants(running, "app").is_empty());
    }
}
