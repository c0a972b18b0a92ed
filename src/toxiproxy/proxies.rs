//! The proxies of the Toxiproxy API: each a TCP listener of its own, in a free slot of the topology, with
//! its toxics as experiments. Every change holds the collection's lock from check to effect, so two calls
//! never interleave, and a refused call changes nothing.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use serde_json::{json, Map, Value};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::{
    check_name,
    toxic::{self, ToxicDef},
    ApiError,
};
use crate::{
    experiment::{
        guard::Health,
        spec::{validate_spec, Context},
        Registry, RegistryError,
    },
    pb::v1 as pb,
    proxy::{
        settings::TcpListenerConfig,
        tcp::{self, TcpProxy},
    },
    telemetry::metrics::Metrics,
    topology::RouteId,
};

/// What the API's proxies may use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Proxies at once (`toxiproxy.max_proxies`): the topology has that many free slots.
    pub max_proxies: usize,
    /// Longest wait for a proxy's upstream connection.
    pub connect_timeout: Duration,
    /// Connections each proxy serves at once (`limits.max_connections`).
    pub max_connections: usize,
}

/// The proxies, and what they run with.
pub struct Toxiproxy {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: Settings,
    proxies: tokio::sync::Mutex<BTreeMap<String, Proxy>>,
}

/// One proxy.
struct Proxy {
    name: String,
    /// The address it listens on: as bound (a port 0 asked for becomes the port given), or as asked while it
    /// has never listened.
    listen: SocketAddr,
    /// `host:port`, resolved at each connection.
    upstream: String,
    /// Its slot's route: the id its connections' rules are looked up under.
    route: RouteId,
    /// Its listener while it listens.
    serving: Option<Serving>,
    /// The experiment that keeps it disabled, while it runs.
    disabled: Option<String>,
    /// Its toxics in the order they were added, each with the id of the experiment that runs it.
    toxics: Vec<(ToxicDef, String)>,
}

/// A proxy's listener task, and how to stop it.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Serving {
    /// Stops listening and closes every connection of the proxy; returns once they are closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `addr`. The port a proxy listened on before (re-enabled, or moved to another upstream) may be
/// refused for a moment while the kernel lets go of its closed connections: it is tried again for up to
/// half a second.
async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// What a change did: its answer, and the experiments it started or ended (for the audit log).
pub struct Changed {
    pub body: Option<Value>,
    pub experiments: Vec<String>,
}

impl Changed {
    fn new(body: Value) -> Self {
        Changed { body: Some(body), experiments: Vec::new() }
    }

    fn touched(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.experiments.extend(ids);
        self
    }
}

/// A proxy as a client asked for it, checked.
struct Wanted {
    name: String,
    listen: SocketAddr,
    upstream: String,
    enabled: bool,
}

/// The fields of a proxy's JSON (`toxics` is what GET shows; it is taken and ignored, as Toxiproxy does).
const PROXY_FIELDS: [&str; 5] = ["name", "listen", "upstream", "enabled", "toxics"];

fn proxy_fields(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    let m = body.as_object().ok_or_else(|| ApiError::bad_request("bad request body: a JSON object"))?;
    if let Some(field) = m.keys().find(|k| !PROXY_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{field}: a proxy has no such field; it has name, listen, upstream, enabled"
        )));
    }
    Ok(m)
}

fn string_field<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad_request(format!("{field}: a string, got {other}"))),
    }
}

fn bool_field(m: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad_request(format!("{field}: true or false, got {other}"))),
    }
}

/// An upstream `host:port`.
fn check_upstream(upstream: &str) -> Result<String, ApiError> {
    let ok = upstream.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !ok {
        return Err(ApiError::bad_request(format!(
            "upstream: host:port (\"127.0.0.1:6379\", \"redis:6379\"), got {:?}",
            crate::text::printable(upstream)
        )));
    }
    Ok(upstream.to_owned())
}

/// A listen address: `ip:port`, `localhost:port`, or `:port` (every address, as Go listens); absent, a free
/// port on 127.0.0.1.
fn parse_listen(listen: Option<&str>) -> Result<SocketAddr, ApiError> {
    let listen = listen.unwrap_or("");
    if listen.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    }
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        ApiError::bad_request(format!(
            "listen: ip:port (\"127.0.0.1:26379\", \"[::]:26379\", \"localhost:0\", \":26379\"), got {:?}",
            crate::text::printable(listen)
        ))
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    match host {
        "" | "0.0.0.0" => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
        h if h.eq_ignore_ascii_case("localhost") => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        _ => Err(bad()),
    }
}

impl Wanted {
    /// A new proxy from a client's JSON (`POST /proxies`, an entry of `POST /populate`).
    fn from_json(body: &Value) -> Result<Self, ApiError> {
        let m = proxy_fields(body)?;
        let name = string_field(m, "name")?.unwrap_or_default();
        check_name(name, "proxy")?;
        let upstream = match string_field(m, "upstream")? {
            None | Some("") => return Err(ApiError::bad_request("missing required field: upstream")),
            Some(u) => check_upstream(u)?,
        };
        let listen = parse_listen(string_field(m, "listen")?)?;
        let enabled = bool_field(m, "enabled")?.unwrap_or(true);
        Ok(Wanted { name: name.to_owned(), listen, upstream, enabled })
    }
}

impl Proxy {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen.to_string(),
            "upstream": self.upstream,
            "enabled": self.serving.is_some(),
            "toxics": self.toxics.iter().map(|(t, _)| t.to_json()).collect::<Vec<_>>(),
        })
    }

    /// Whether the proxy listens where a client asks it to: the same address, or any port of the same
    /// address when the client asks for port 0.
    fn listens_as(&self, asked: SocketAddr) -> bool {
        self.listen == asked || (asked.port() == 0 && self.listen.ip() == asked.ip())
    }

    fn toxic(&self, name: &str) -> Result<usize, ApiError> {
        self.toxics.iter().position(|(t, _)| t.name == name).ok_or_else(|| ApiError::not_found("toxic not found"))
    }
}

/// What the experiment's checks refused, by the experiment's field paths (the limits they name are the
/// server's config keys).
fn refused(v: crate::fault::check::Violations) -> ApiError {
    let problems: Vec<String> = v.0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
    ApiError::bad_request(format!("edgefault refuses it as an experiment: {}", problems.join("; ")))
}

fn not_found() -> ApiError {
    ApiError::not_found("proxy not found")
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::TooMany(_) => ApiError::too_many(e.to_string()),
            RegistryError::Exists(_) => ApiError::conflict(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl Toxiproxy {
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>, health: Arc<Health>, settings: Settings) -> Arc<Self> {
        Arc::new(Toxiproxy { registry, metrics, health, settings, proxies: tokio::sync::Mutex::default() })
    }

    /// The proxies, after [`Self::sync`].
    async fn lock(&self) -> tokio::sync::MutexGuard<'_, BTreeMap<String, Proxy>> {
        let mut proxies = self.proxies.lock().await;
        self.sync(&mut proxies).await;
        proxies
    }

    /// Catches up with experiments that ended elsewhere (AbortAll, a StopExperiment, the duration limit, a
    /// guard): their toxics are gone, and a proxy whose disabled experiment ended listens again.
    async fn sync(&self, proxies: &mut BTreeMap<String, Proxy>) {
        let active = |id: &str| self.registry.get(id).is_ok_and(|i| i.state.is_active());
        for p in proxies.values_mut() {
            p.toxics.retain(|(_, id)| active(id));
            if p.disabled.as_deref().is_some_and(|id| !active(id)) {
                p.disabled = None;
                if let Err(e) = self.listen(p).await {
                    tracing::warn!(proxy = %p.name, error = %e.message, "a proxy whose disabled experiment ended cannot listen again");
                }
            }
        }
    }

    /// Brings the collection up to date with the registry now (called when an experiment ends).
    pub async fn catch_up(&self) {
        drop(self.lock().await);
    }

    /// Starts the proxy's listener (where it listened before, if it did).
    async fn listen(&self, p: &mut Proxy) -> Result<(), ApiError> {
        if p.serving.is_some() {
            return Ok(());
        }
        let listener = bind(p.listen)
            .await
            .map_err(|e| ApiError::internal(format!("proxy {}: cannot listen on {}: {e}", p.name, p.listen)))?;
        if let Ok(addr) = listener.local_addr() {
            p.listen = addr;
        }
        let config = TcpListenerConfig {
            name: p.name.clone(),
            bind: p.listen,
            upstream: p.upstream.clone(),
            connect_timeout: self.settings.connect_timeout,
            route: p.route,
        };
        let proxy = Arc::new(TcpProxy::new(&config, self.registry.rules(), &self.metrics, Arc::clone(&self.health)));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        // No drain: stopping a proxy closes its connections, as Toxiproxy does.
        let task = tokio::spawn(tcp::serve(listener, proxy, shutdown, Duration::ZERO, self.settings.max_connections));
        tracing::info!(proxy = %p.name, listen = %p.listen, upstream = %p.upstream, "toxiproxy: proxy listening");
        p.serving = Some(Serving { stop, task });
        Ok(())
    }

    /// Checks and starts an experiment for the proxy.
    fn start(&self, spec: pb::ExperimentSpec) -> Result<String, ApiError> {
        let limits = self.registry.limits();
        let topology = self.registry.topology();
        let ctx = Context { topology: Some(&topology), limits: &limits };
        let def = validate_spec(&spec, &ctx).map_err(refused)?;
        Ok(self.registry.start(spec, def)?.id)
    }

    /// Ends a proxy's experiment (already ended is fine).
    fn end(&self, id: &str, reason: &str) {
        let _ = self.registry.stop(id, reason);
    }

    /// How long the API's experiments run: as long as the server lets any (`limits.max_duration`).
    fn duration(&self) -> Duration {
        self.registry.limits().max_duration
    }

    /// The experiment that keeps a proxy down: it takes every connection, so a server that caps the share
    /// of traffic an experiment may take refuses it.
    fn start_disabled(&self, proxy: &str) -> Result<String, ApiError> {
        let max = self.registry.limits().max_percentage;
        if max < 100.0 {
            return Err(ApiError::bad_request(format!(
                "enabled: false takes proxy {proxy} down for every connection, above the server's limit \
                 (limits.max_percentage {max})"
            )));
        }
        self.start(toxic::disabled_spec(proxy, self.duration()))
    }

    /// A toxic's experiment, refused with Toxiproxy's names where the server's limits say no.
    fn start_toxic(&self, proxy: &str, t: &ToxicDef) -> Result<String, ApiError> {
        let max = self.registry.limits().max_percentage;
        if t.toxicity * 100.0 > max {
            return Err(ApiError::bad_request(format!(
                "toxicity: {} is above the server's limit of {} (limits.max_percentage {max})",
                t.toxicity,
                max / 100.0
            )));
        }
        self.start(t.spec(proxy, self.duration()))
    }

    pub async fn list(&self) -> Value {
        let proxies = self.lock().await;
        Value::Object(proxies.iter().map(|(n, p)| (n.clone(), p.to_json())).collect())
    }

    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        self.lock().await.get(name).map(Proxy::to_json).ok_or_else(not_found)
    }

    pub async fn create(&self, body: &Value) -> Result<Changed, ApiError> {
        let wanted = Wanted::from_json(body)?;
        let mut proxies = self.lock().await;
        let created = self.create_locked(&mut proxies, wanted).await?;
        Ok(created)
    }

    async fn create_locked(&self, proxies: &mut BTreeMap<String, Proxy>, w: Wanted) -> Result<Changed, ApiError> {
        if proxies.contains_key(&w.name) {
            return Err(ApiError::conflict("proxy already exists"));
        }
        if proxies.len() >= self.settings.max_proxies {
            return Err(ApiError::too_many(format!(
                "{} proxies exist, the server's limit (toxiproxy.max_proxies); delete some first",
                proxies.len()
            )));
        }
        let topology = self.registry.topology();
        let Some((taken, route)) = topology.take_tcp_slot(&w.name) else {
            return Err(ApiError::conflict(format!(
                "a listener of the config is named {:?}; give the proxy another name",
                w.name
            )));
        };
        self.registry.set_topology(taken);
        let mut p = Proxy {
            name: w.name.clone(),
            listen: w.listen,
            upstream: w.upstream,
            route,
            serving: None,
            disabled: None,
            toxics: Vec::new(),
        };
        let outcome = if w.enabled {
            self.listen(&mut p).await.map(|()| Vec::new())
        } else {
            self.start_disabled(&p.name).map(|id| {
                p.disabled = Some(id.clone());
                vec![id]
            })
        };
        match outcome {
            Ok(ids) => {
                let changed = Changed::new(p.to_json()).touched(ids);
                proxies.insert(w.name, p);
                Ok(changed)
            }
            Err(e) => {
                self.registry.set_topology(self.registry.topology().free_tcp_slot(&w.name));
                Err(e)
            }
        }
    }

    /// `POST /populate`: creates the proxies that do not exist, replaces those whose listen address or
    /// upstream differ, keeps the rest. Every entry is checked before anything changes; if one then cannot
    /// be created (its port is taken), the proxies this call created are removed again.
    pub async fn populate(&self, body: &Value) -> Result<Changed, ApiError> {
        let entries =
            body.as_array().ok_or_else(|| ApiError::bad_request("bad request body: a JSON array of proxies"))?;
        let mut wanted = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let w = Wanted::from_json(e).map_err(|e| ApiError { message: format!("[{i}]: {}", e.message), ..e })?;
            if wanted.iter().any(|o: &Wanted| o.name == w.name) {
                return Err(ApiError::bad_request(format!("[{i}].name: {:?} is in the list twice", w.name)));
            }
            wanted.push(w);
        }
        let mut proxies = self.lock().await;
        let mut shown = Vec::new();
        let mut created: Vec<String> = Vec::new();
        let mut touched = Vec::new();
        for w in wanted {
            if let Some(p) = proxies.get(&w.name) {
                if p.listens_as(w.listen) && p.upstream == w.upstream {
                    shown.push(p.to_json());
                    continue;
                }
                touched.extend(self.remove_locked(&mut proxies, &w.name).await);
            }
            let name = w.name.clone();
            match self.create_locked(&mut proxies, w).await {
                Ok(c) => {
                    touched.extend(c.experiments);
                    shown.extend(c.body);
                    created.push(name);
                }
                Err(e) => {
                    for n in &created {
                        touched.extend(self.remove_locked(&mut proxies, n).await);
                    }
                    let message = format!("proxy {name}: {}; the proxies this call created are removed", e.message);
                    return Err(ApiError { message, ..e });
                }
            }
        }
        Ok(Changed::new(json!({ "proxies": shown })).touched(touched))
    }

    /// `POST`/`PATCH /proxies/{name}`: `listen`, `upstream` (the proxy restarts, closing its connections,
    /// as Toxiproxy does) and `enabled`.
    pub async fn update(&self, name: &str, body: &Value) -> Result<Changed, ApiError> {
        let m = proxy_fields(body)?;
        if let Some(n) = string_field(m, "name")?.filter(|n| *n != name) {
            return Err(ApiError::bad_request(format!("name: a proxy keeps its name ({name:?}), got {n:?}")));
        }
        let listen = string_field(m, "listen")?.map(|l| parse_listen(Some(l))).transpose()?;
        let upstream = string_field(m, "upstream")?.map(check_upstream).transpose()?;
        let enabled = bool_field(m, "enabled")?;
        let mut proxies = self.lock().await;
        let p = proxies.get_mut(name).ok_or_else(not_found)?;
        let mut touched = Vec::new();
        let moves = listen.is_some_and(|l| !p.listens_as(l)) || upstream.as_ref().is_some_and(|u| *u != p.upstream);
        let enable = enabled.unwrap_or(p.serving.is_some() || p.disabled.is_none());
        // What can be refused first: the disabled experiment's start.
        if !enable && p.disabled.is_none() {
            let id = self.start_disabled(&p.name)?;
            p.disabled = Some(id.clone());
            touched.push(id);
        }
        if moves || !enable {
            if let Some(s) = p.serving.take() {
                s.stop().await;
            }
        }
        if moves {
            if let Some(l) = listen {
                p.listen = l;
            }
            if let Some(u) = upstream {
                p.upstream = u;
            }
        }
        if enable {
            if let Some(id) = p.disabled.take() {
                self.end(&id, "enabled again through the Toxiproxy API");
                touched.push(id);
            }
            self.listen(p).await?;
        }
        Ok(Changed::new(p.to_json()).touched(touched))
    }

    pub async fn delete(&self, name: &str) -> Result<Changed, ApiError> {
        let mut proxies = self.lock().await;
        if !proxies.contains_key(name) {
            return Err(not_found());
        }
        let ids = self.remove_locked(&mut proxies, name).await;
        Ok(Changed { body: None, experiments: ids })
    }

    /// Ends a proxy's experiments, closes its listener and connections, and frees its slot.
    async fn remove_locked(&self, proxies: &mut BTreeMap<String, Proxy>, name: &str) -> Vec<String> {
        let Some(mut p) = proxies.remove(name) else { return Vec::new() };
        let mut ids: Vec<String> = p.toxics.drain(..).map(|(_, id)| id).chain(p.disabled.take()).collect();
        ids.retain(|id| self.registry.get(id).is_ok_and(|i| i.state.is_active()));
        for id in &ids {
            self.end(id, "proxy deleted through the Toxiproxy API");
        }
        if let Some(s) = p.serving.take() {
            s.stop().await;
        }
        self.registry.set_topology(self.registry.topology().free_tcp_slot(name));
        tracing::info!(proxy = %name, "toxiproxy: proxy deleted");
        ids
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<Changed, ApiError> {
        let mut proxies = self.lock().await;
        let mut touched = Vec::new();
        let mut failed = None;
        for p in proxies.values_mut() {
            for (_, id) in p.toxics.drain(..) {
                self.end(&id, "reset through the Toxiproxy API");
                touched.push(id);
            }
            if let Some(id) = p.disabled.take() {
                self.end(&id, "reset through the Toxiproxy API");
                touched.push(id);
            }
            if let Err(e) = self.listen(p).await {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Changed { body: None, experiments: touched }),
        }
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Value, ApiError> {
        let proxies = self.lock().await;
        let p = proxies.get(proxy).ok_or_else(not_found)?;
        Ok(Value::Array(p.toxics.iter().map(|(t, _)| t.to_json()).collect()))
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Value, ApiError> {
        let proxies = self.lock().await;
        let p = proxies.get(proxy).ok_or_else(not_found)?;
        p.toxic(toxic).map(|i| p.toxics.get(i).map(|(t, _)| t.to_json()).unwrap_or_default())
    }

    pub async fn add_toxic(&self, proxy: &str, body: &Value) -> Result<Changed, ApiError> {
        let mut proxies = self.lock().await;
        let p = proxies.get_mut(proxy).ok_or_else(not_found)?;
        let t = ToxicDef::from_json(body)?;
        if p.toxics.iter().any(|(o, _)| o.name == t.name) {
            return Err(ApiError::conflict("toxic already exists"));
        }
        let id = self.start_toxic(&p.name, &t)?;
        let shown = t.to_json();
        p.toxics.push((t, id.clone()));
        Ok(Changed::new(shown).touched([id]))
    }

    /// Updates a toxic: checked whole first, then its experiment is replaced by one with the new values.
    pub async fn update_toxic(&self, proxy: &str, toxic: &str, body: &Value) -> Result<Changed, ApiError> {
        let mut proxies = self.lock().await;
        let p = proxies.get_mut(proxy).ok_or_else(not_found)?;
        let i = p.toxic(toxic)?;
        let Some((old, old_id)) = p.toxics.get(i).cloned() else { return Err(ApiError::not_found("toxic not found")) };
        let new = old.updated(body)?;
        // Checked before the old one ends, so a refused update leaves the toxic as it was.
        let limits = self.registry.limits();
        let topology = self.registry.topology();
        let spec = new.spec(&p.name, self.duration());
        validate_spec(&spec, &Context { topology: Some(&topology), limits: &limits }).map_err(refused)?;
        self.end(&old_id, "updated through the Toxiproxy API");
        match self.start_toxic(&p.name, &new) {
            Ok(id) => {
                let shown = new.to_json();
                if let Some(slot) = p.toxics.get_mut(i) {
                    *slot = (new, id.clone());
                }
                Ok(Changed::new(shown).touched([old_id, id]))
            }
            Err(e) => {
                p.toxics.remove(i);
                Err(ApiError { message: format!("{}; the toxic is removed", e.message), ..e })
            }
        }
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<Changed, ApiError> {
        let mut proxies = self.lock().await;
        let p = proxies.get_mut(proxy).ok_or_else(not_found)?;
        let i = p.toxic(toxic)?;
        let (_, id) = p.toxics.remove(i);
        self.end(&id, "removed through the Toxiproxy API");
        Ok(Changed { body: None, experiments: vec![id] })
    }

    /// Stops every proxy (the server shuts down; the registry ends the experiments).
    pub async fn close(&self) {
        let mut proxies = self.proxies.lock().await;
        for p in proxies.values_mut() {
            if let Some(s) = p.serving.take() {
                s.stop().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_as_toxiproxy_clients_write_them() {
        let ok = |s: &str| parse_listen(Some(s)).map(|a| a.to_string()).unwrap_or_else(|e| e.message);
        assert_eq!(ok("127.0.0.1:26379"), "127.0.0.1:26379");
        assert_eq!(ok("localhost:0"), "127.0.0.1:0");
        assert_eq!(ok(":26379"), "0.0.0.0:26379");
        assert_eq!(ok("[::]:26379"), "[::]:26379");
        assert_eq!(ok(""), "127.0.0.1:0");
        assert!(ok("redis").contains("listen:"));
        assert!(ok("example.com:80").contains("listen:"));
    }

    #[test]
    fn upstreams_are_host_and_port() {
        assert!(check_upstream("127.0.0.1:6379").is_ok());
        assert!(check_upstream("redis:6379").is_ok());
        assert!(check_upstream("[::1]:6379").is_ok());
        for bad in ["redis", "redis:0", "redis:http", ":6379", "tcp://redis:6379"] {
            assert!(check_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxies_are_checked_field_by_field() {
        let refused = |v: Value| Wanted::from_json(&v).err().map(|e| e.message).unwrap_or_default();
        assert!(refused(json!({ "upstream": "a:1" })).contains("name"));
        assert!(refused(json!({ "name": "r" })).contains("upstream"));
        assert!(refused(json!({ "name": "r", "upstream": "a:1", "listen": 5 })).contains("listen"));
        assert!(refused(json!({ "name": "r", "upstream": "a:1", "enabled": "yes" })).contains("enabled"));
        assert!(refused(json!({ "name": "r", "upstream": "a:1", "colour": 1 })).contains("colour"));
        assert!(refused(json!({ "name": "a b", "upstream": "a:1" })).contains("name"));
        assert!(Wanted::from_json(&json!({ "name": "r", "upstream": "a:1", "toxics": [] })).is_ok());
    }
}
