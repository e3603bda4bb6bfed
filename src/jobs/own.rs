//! Which container shipshape itself runs in, if any: recreating it would stop
//! the process doing the recreate halfway, so it is never updated by itself.

/// What identifies our own container: 64-hex ids seen in our cgroup and mount
/// tables, and the hostname (Docker's default is the short id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnContainer {
    ids: Vec<String>,
    hostname: Option<String>,
}

impl OwnContainer {
    /// Reads `/proc/self/cgroup`, `/proc/self/mountinfo` and the hostname;
    /// outside a container nothing matches.
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut ids = container_ids(&read("/proc/self/cgroup"));
        for id in container_ids(&read("/proc/self/mountinfo")) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let hostname = read("/proc/sys/kernel/hostname").trim().to_string();
        Self { ids, hostname: (!hostname.is_empty()).then_some(hostname) }
    }

    pub fn from_parts(ids: Vec<String>, hostname: Option<String>) -> Self {
        Self { ids, hostname }
    }

    /// Whether the container with this full id is the one we run in.
    pub fn is(&self, container_id: &str) -> bool {
        self.ids.iter().any(|id| id == container_id)
            || self.hostname.as_deref().is_some_and(|h| h.len() == 12 && container_id.starts_with(h))
    }
}

/// 64-hex words in a cgroup or mountinfo table that sit where Docker puts
/// container ids: `/docker/<id>`, `docker-<id>.scope`, `/containers/<id>/`.
fn container_ids(table: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in table.lines() {
        for word in line.split(['/', ' ', ':', '-', '.']) {
            if word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                let context_ok = line.contains("docker") || line.contains("/containers/");
                if context_ok && !out.iter().any(|o| o == word) {
                    out.push(word.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c";

    #[test]
    fn ids_from_cgroup_and_mountinfo_tables() {
        let cases: [(String, bool); 6] = [
            (format!("0::/docker/{ID}\n"), true),
            (format!("0::/system.slice/docker-{ID}.scope\n"), true),
            (format!("12:memory:/docker/{ID}\n"), true),
            (
                format!(
                    "1234 1200 0:52 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
                ),
                true,
            ),
            ("0::/user.slice/user-1000.slice/session-2.scope\n".to_string(), false),
            (format!("0::/kubepods/{ID}\n"), false),
        ];
        for (table, found) in cases {
            assert_eq!(container_ids(&table) == vec![ID.to_string()], found, "{table}");
        }
    }

    #[test]
    fn matches_by_id_or_default_hostname() {
        let own = OwnContainer::from_parts(vec![ID.into()], None);
        assert!(own.is(ID));
        assert!(!own.is(&ID.replace('3', "4")));
        let by_host = OwnContainer::from_parts(vec![], Some(ID[..12].to_string()));
        assert!(by_host.is(ID));
        let custom_host = OwnContainer::from_parts(vec![], Some("shipshape".into()));
        assert!(!custom_host.is(ID));
        assert!(!OwnContainer::default().is(ID));
    }
}
