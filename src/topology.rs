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

    /// Whether the listener is a TCP listener (its experiments carry toxics, not HTTP faults).
    pub fn is_tcp_listener(&self, name: &str) -> bool {
        self.tcp_listeners.iter().any(|l| l == name)
    }

    /// Whether a route name is a TCP listener's own route.
    pub fn is_tcp_route(&self, name: &str) -> bool {
        self.is_tcp_listener(name)
    }

    /// Every (listener, route) pair, in [`RouteId`] order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listeners.iter().flat_map(|(l, routes)| routes.iter().map(move |r| (l.as_str(), r.as_str())))
    }

    pub fn has_listener(&self, name: &str) -> bool {
        self.listeners.iter().any(|(l, _)| l == name)
    }

    pub fn has_route(&self, name: &str) -> bool {
        self.routes().any(|(_, r)| r == name)
    }

    pub fn listener_has_route(&self, listener: &str, route: &str) -> bool {
        self.listeners.iter().any(|(l, routes)| l == listener && routes.iter().any(|r| r == route))
    }

    pub fn listener_names(&self) -> Vec<&str> {
        self.listeners.iter().map(|(l, _)| l.as_str()).collect()
    }

    pub fn route_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes().map(|(_, r)| r).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
