//! Which container an id in a request names, when several engines run
//! containers: the API shows 12-character ids, and two engines may both
//! have one starting with the same 12 characters. `host:id` (or a longer
//! prefix, or the full id) says which.

/// An id as a request gives it: `3d4c5b6a7f8e`, a longer prefix, or
/// `host:3d4c5b6a7f8e`. Docker ids and engine names never hold `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerRef<'a> {
    pub host: Option<&'a str>,
    pub id: &'a str,
}

impl<'a> ContainerRef<'a> {
    pub fn parse(text: &'a str) -> Self {
        match text.split_once(':') {
            Some((host, id)) => Self { host: Some(host), id },
            None => Self { host: None, id: text },
        }
    }

    /// Whether the container `full_id` on engine `host` is meant: the id is
    /// at least 12 characters and starts the full id, on the engine named
    /// (when one is).
    pub fn matches(&self, host: &str, full_id: &str) -> bool {
        self.id.len() >= 12 && full_id.starts_with(self.id) && self.host.is_none_or(|h| h == host)
    }
}

/// What a reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq, actix::MessageResponse)]
pub enum Resolved<T> {
    One(T),
    None,
    /// Containers of more than one engine match: `host:id` or the full id says which.
    Ambiguous,
}

impl<T> Resolved<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Resolved<U> {
        match self {
            Resolved::One(t) => Resolved::One(f(t)),
            Resolved::None => Resolved::None,
            Resolved::Ambiguous => Resolved::Ambiguous,
        }
    }

    pub fn one(self) -> Option<T> {
        match self {
            Resolved::One(t) => Some(t),
            _ => None,
        }
    }
}

/// The one candidate `target` names among `(host, full id, value)`. Matches
/// on one engine resolve to the first of them (as with one engine); matches
/// on two engines are ambiguous.
pub fn resolve<'c, T>(
    target: &ContainerRef<'_>,
    candidates: impl IntoIterator<Item = (&'c str, &'c str, T)>,
) -> Resolved<T> {
    let mut found: Option<(&str, T)> = None;
    for (host, id, value) in candidates {
        if !target.matches(host, id) {
            continue;
        }
        match &found {
            None => found = Some((host, value)),
            Some((first, _)) if *first != host => return Resolved::Ambiguous,
            Some(_) => {}
        }
    }
    found.map_or(Resolved::None, |(_, value)| Resolved::One(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c";
    /// The same first 12 characters as A, on another engine.
    const A2: &str = "3d4c5b6a7f8effff1b2a3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c";
    const B: &str = "bbbbbbbbbbbb9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c5b6a7f8e9d0c1b2a3d4c";

    #[test]
    fn references_parse_with_and_without_an_engine() {
        assert_eq!(ContainerRef::parse("3d4c5b6a7f8e"), ContainerRef { host: None, id: "3d4c5b6a7f8e" });
        assert_eq!(ContainerRef::parse("nas:3d4c5b6a7f8e"), ContainerRef { host: Some("nas"), id: "3d4c5b6a7f8e" });
        assert_eq!(ContainerRef::parse(":x"), ContainerRef { host: Some(""), id: "x" });
    }

    #[test]
    fn a_short_id_on_two_engines_is_ambiguous_and_host_or_length_resolve_it() {
        let fleet = [("local", A, 1), ("nas", A2, 2), ("nas", B, 3)];
        let cases: [(&str, Resolved<i32>); 12] = [
            ("3d4c5b6a7f8e", Resolved::Ambiguous),
            ("local:3d4c5b6a7f8e", Resolved::One(1)),
            ("nas:3d4c5b6a7f8e", Resolved::One(2)),
            ("3d4c5b6a7f8e9", Resolved::One(1)),
            ("3d4c5b6a7f8ef", Resolved::One(2)),
            (A, Resolved::One(1)),
            (&format!("nas:{A}") as &str, Resolved::None),
            ("bbbbbbbbbbbb", Resolved::One(3)),
            ("local:bbbbbbbbbbbb", Resolved::None),
            ("other:bbbbbbbbbbbb", Resolved::None),
            ("3d4c5b6a7f8", Resolved::None),
            ("nas:3d4c5b", Resolved::None),
        ];
        for (text, want) in cases {
            let got = resolve(&ContainerRef::parse(text), fleet.iter().map(|&(h, id, v)| (h, id, v)));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn two_matches_on_one_engine_are_not_ambiguous() {
        let fleet = [("local", A, 1), ("local", A2, 2)];
        let got = resolve(&ContainerRef::parse("3d4c5b6a7f8e"), fleet.iter().map(|&(h, id, v)| (h, id, v)));
        assert_eq!(got, Resolved::One(1), "the first, as with one engine");
    }
}
