//! The names every layer shares: the listeners and routes of the server, in order ([`Topology`]), and a
//! route's place in that order ([`RouteId`]). Built by `config`, read by the proxy, the experiments that
//! target routes and the validation that checks their names.

use crate::fault::page::PageTemplates;

/// A route's place in the [`Topology`]: an index over every route of every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(u32);

impl RouteId {
    /// The route at this index of the topology's order.
    pub fn new(index: u32) -> Self {
        RouteId(index)
    }

    /// The first route of the first listener.
    pub fn first() -> Self {
        RouteId(0)
    }

    /// The route after this one in the topology's order.
    pub fn next(self) -> Self {
        RouteId(self.0 + 1)
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The names of listeners and their routes, in order: what experiments may target. Also the config's page
/// templates, which experiments may name in `abort.page`.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    listeners: Vec<(String, Vec<String>)>,
    pages: PageTemplates,
    /// The names of the TCP listeners (`mode: tcp`) among `listeners`; each has one route of its own name.
    tcp_listeners: Vec<String>,
    /// The names of the HTTP listeners that terminate TLS (`tls:`), the targets of TLS faults.
    tls_listeners: Vec<String>,
}

/// The name a free slot has in `listeners` (and its one route): no listener is unnamed, so no experiment,
/// guard or name list ever meets it.
const FREE: &str = "";

impl Topology {
    pub fn new(listeners: Vec<(String, Vec<String>)>) -> Self {
        Topology { listeners, pages: PageTemplates::default(), tcp_listeners: Vec::new(), tls_listeners: Vec::new() }
    }

    /// The same names, with the config's page templates.
    pub fn with_pages(mut self, pages: PageTemplates) -> Self {
        self.pages = pages;
        self
    }

    /// The config's page templates.
    pub fn pages(&self) -> &PageTemplates {
        &self.pages
    }

    /// Marks these listeners (already in the topology, each with one route of its own name) as TCP listeners.
    pub fn with_tcp_listeners(mut self, names: Vec<String>) -> Self {
        self.tcp_listeners = names;
        self
    }

    /// Marks these listeners (already in the topology) as terminating TLS.
    pub fn with_tls_listeners(mut self, names: Vec<String>) -> Self {
        self.tls_listeners = names;
        self
    }

    /// Whether the listener terminates TLS (TLS faults may target it).
    pub fn is_tls_listener(&self, name: &str) -> bool {
        self.tls_listeners.iter().any(|l| l == name)
    }

    /// The listeners that terminate TLS.
    pub fn tls_listener_names(&self) -> &[String] {
        &self.tls_listeners
    }

    /// The same names with `n` free slots after every listener: TCP listeners that may be created while the
    /// server runs (the Toxiproxy API's proxies), each with one route of its own name. A free slot has a
    /// [`RouteId`] already, so the rule set and the health counters are sized for it, and taking or freeing
    /// one moves no other route.
    pub fn with_free_tcp_slots(mut self, n: usize) -> Self {
        self.listeners.extend((0..n).map(|_| (FREE.to_owned(), vec![FREE.to_owned()])));
        self
    }

    /// This topology with `name` in the first free slot, as a TCP listener; `None` when every slot is
    /// taken, or when a listener already has that name (or it is empty).
    pub fn take_tcp_slot(&self, name: &str) -> Option<(Topology, RouteId)> {
        if name == FREE || self.has_listener(name) {
            return None;
        }
        let slot = self.listeners.iter().position(|(l, _)| l == FREE)?;
        let route = self.route_of(slot);
        let mut t = self.clone();
        *t.listeners.get_mut(slot)? = (name.to_owned(), vec![name.to_owned()]);
        t.tcp_listeners.push(name.to_owned());
        Some((t, route))
    }

    /// This topology with the slot of TCP listener `name` free again (unchanged if no slot holds it).
    pub fn free_tcp_slot(&self, name: &str) -> Topology {
        let mut t = self.clone();
        if name == FREE {
            return t;
        }
        if let Some(slot) = t.listeners.iter_mut().find(|(l, _)| l == name) {
            *slot = (FREE.to_owned(), vec![FREE.to_owned()]);
            t.tcp_listeners.retain(|l| l != name);
        }
        t
    }

    /// The id of the first route of the listener at `index`.
    fn route_of(&self, index: usize) -> RouteId {
        let before: usize = self.listeners.iter().take(index).map(|(_, routes)| routes.len()).sum();
        RouteId::new(u32::try_from(before).unwrap_or(u32::MAX))
    }

    /// Whether the listener is a TCP listener (its experiments carry toxics, not HTTP faults).
    pub fn is_tcp_listener(&self, name: &str) -> bool {
        self.tcp_listeners.iter().any(|l| l == name)
    }

    /// Whether a route name is a TCP listener's own route.
    pub fn is_tcp_route(&self, name: &str) -> bool {
        self.is_tcp_listener(name)
    }

    /// Every (listener, route) pair, in [`RouteId`] order; a free slot is a pair of empty names.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listeners.iter().flat_map(|(l, routes)| routes.iter().map(move |r| (l.as_str(), r.as_str())))
    }

    pub fn has_listener(&self, name: &str) -> bool {
        name != FREE && self.listeners.iter().any(|(l, _)| l == name)
    }

    pub fn has_route(&self, name: &str) -> bool {
        name != FREE && self.routes().any(|(_, r)| r == name)
    }

    pub fn listener_has_route(&self, listener: &str, route: &str) -> bool {
        listener != FREE && self.listeners.iter().any(|(l, routes)| l == listener && routes.iter().any(|r| r == route))
    }

    pub fn listener_names(&self) -> Vec<&str> {
        self.listeners.iter().map(|(l, _)| l.as_str()).filter(|l| *l != FREE).collect()
    }

    pub fn route_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes().map(|(_, r)| r).filter(|r| *r != FREE).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_keep_every_route_id_and_no_name() {
        let t = Topology::new(vec![("web".into(), vec!["api".into(), "site".into()])])
            .with_tcp_listeners(Vec::new())
            .with_free_tcp_slots(2);
        assert_eq!(t.routes().count(), 4);
        assert_eq!(t.listener_names(), ["web"]);
        assert_eq!(t.route_names(), ["api", "site"]);
        assert!(!t.has_listener("") && !t.has_route(""));

        let (t, redis) = t.take_tcp_slot("redis").expect("a free slot");
        assert_eq!(redis.index(), 2);
        assert!(t.is_tcp_listener("redis") && t.has_route("redis") && t.listener_has_route("redis", "redis"));
        assert!(t.take_tcp_slot("redis").is_none(), "a name is taken once");
        assert!(t.take_tcp_slot("web").is_none(), "nor a config listener's name");
        let (t, pg) = t.take_tcp_slot("pg").expect("the second slot");
        assert_eq!(pg.index(), 3);
        assert!(t.take_tcp_slot("mysql").is_none(), "every slot taken");

        let t = t.free_tcp_slot("redis");
        assert!(!t.has_listener("redis") && !t.is_tcp_listener("redis") && t.is_tcp_listener("pg"));
        let (t, mysql) = t.take_tcp_slot("mysql").expect("the freed slot");
        assert_eq!(mysql.index(), 2, "the freed slot's route id");
        assert_eq!(t.routes().count(), 4);
    }
}
