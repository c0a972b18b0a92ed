//! The bodies of the fuzz targets (`fuzz/`), in the library so that a normal test runs them over the seed
//! corpus (`tests/it/input/fuzz_corpus.rs`) and the property tests call them too. Each takes any bytes and
//! must never panic; a panic is a bug (an `assert!` here states a rule that must hold for every input).
//!
//! | target             | corpus                      | what it feeds                                          |
//! | ------------------ | --------------------------- | ------------------------------------------------------ |
//! | `experiment_yaml`  | `fuzz/corpus/experiment_yaml`  | experiment files: YAML → spec → validation          |
//! | `config_yaml`      | `fuzz/corpus/config_yaml`      | config files                                        |
//! | `experiment_proto` | `fuzz/corpus/experiment_proto` | StartExperiment bodies: protobuf → spec → validation |
//! | `request_path`     | `fuzz/corpus/request_path`     | specs and a request head → the data plane's decision and forwarded head |
//! | `page_render`      | `fuzz/corpus/page_render`      | the error pages: presets and the config's templates |

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, LazyLock},
    time::{Duration, SystemTime},
};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};

use crate::{
    config::{Config, Overrides},
    document,
    experiment::spec::{validate_spec, Context},
    experiment::{Decision, ExperimentDef, Limits, Rule, RuleSet},
    fault::{
        page::{wants_json, Location, Page, PageRequest, PageTemplate, PageTemplates, Preset, Template, Variant},
        BodyPlan, End, Fault, HangEnd, HostPattern, RequestView,
    },
    pb::v1 as pb,
    proxy::settings::RouteHost,
    proxy::{forward, headers, respond},
    topology::{RouteId, Topology},
};

// === the server the targets check against ===

/// The page templates of the fixture: `acme-edge` as in `examples/edgefault.yaml`, and one that only has
/// per-status pages.
const FIXTURE_PAGES: &str = r#"
pages:
  acme-edge:
    title: Something went wrong
    html: |
      <!doctype html>
      <html><head><title>{{code}} {{title}}</title></head>
      <body><h1>{{title}}</h1><p>Error {{code}} at {{host}}</p>
      <p>Reference {{request_id}}-{{location}} &middot; {{timestamp}}</p></body></html>
    json: '{"error":{"code":{{code}},"title":"{{title}}","reference":"{{request_id}}-{{location}}"}}'
    headers: { server: acme-edge, x-acme-cache: MISS, x-acme-pop: "{{location}}" }
    request_id_header: x-acme-request-id
    statuses:
      - { status: 503, title: Down for maintenance }
      - { status: 522, title: Origin connection timed out }
  maintenance:
    statuses:
      - status: 503
        title: Scheduled maintenance
        html: "<p>{{host}} is down for maintenance ({{request_id}})</p>"
        json: '{"maintenance":true,"host":"{{host}}","id":"{{request_id}}"}'
        headers: { retry-after: "600" }
"#;

/// One route of a fixture listener: the hosts (`host` or `host:port`) and path prefix that take it.
struct FixtureRoute {
    id: RouteId,
    hosts: Vec<RouteHost>,
    path_prefix: Option<&'static str>,
}

/// An HTTP listener of the fixture.
struct FixtureListener {
    name: &'static str,
    forward: bool,
    /// What `x-forwarded-proto` records.
    proto: &'static str,
    routes: Vec<FixtureRoute>,
}

/// The listeners and routes of the example configs (`examples/edgefault.yaml`, `examples/ingress/`,
/// `examples/egress/`), as names, with the config's page templates: what experiments are validated against.
struct Fixture {
    topology: Topology,
    listeners: Vec<FixtureListener>,
    limits: Limits,
}

type RouteSpec = (&'static str, &'static [&'static str], Option<&'static str>);

/// (listener, forward, tls, routes: (name, hosts, path prefix)); the TCP listener `cache` comes last, as in
/// the config's route order.
const LISTENERS: [(&str, bool, bool, &[RouteSpec]); 4] = [
    (
        "web",
        false,
        false,
        &[("dashboard", &["dash.example.com"], None), ("api", &[], Some("/api/")), ("default", &[], None)],
    ),
    ("web-tls", false, true, &[("default-tls", &[], None)]),
    (
        "egress",
        true,
        false,
        &[
            ("provider-api", &["api.provider.example:443"], None),
            ("provider-dashboard", &["dash.provider.example:443"], None),
            ("third-parties", &["*.payments.example", "*.maps.example"], None),
            ("default", &[], None),
        ],
    ),
    ("provider-https", false, false, &[("provider-api-tls", &[], None)]),
];

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let overrides = Overrides { upstream: Some("http://127.0.0.1:1".into()), ..Overrides::default() };
    let pages = Config::from_yaml(FIXTURE_PAGES, "fuzz fixture", &overrides).map(|c| c.pages).unwrap_or_default();
    assert!(!pages.is_empty(), "the fixture's page templates load");
    let mut names: Vec<(String, Vec<String>)> = LISTENERS
        .iter()
        .map(|(l, _, _, routes)| ((*l).to_owned(), routes.iter().map(|r| r.0.to_owned()).collect()))
        .collect();
    names.push(("cache".into(), vec!["cache".into()]));
    let topology = Topology::new(names)
        .with_tls_listeners(vec!["web-tls".into()])
        .with_tcp_listeners(vec!["cache".into()])
        .with_pages(pages);
    let mut id = RouteId::first();
    let listeners = LISTENERS
        .iter()
        .map(|(name, forward, tls, routes)| FixtureListener {
            name,
            forward: *forward,
            proto: if *tls { "https" } else { "http" },
            routes: routes
                .iter()
                .map(|(_, hosts, path_prefix)| {
                    let route = FixtureRoute {
                        id,
                        hosts: hosts.iter().map(|h| route_host(h)).collect(),
                        path_prefix: *path_prefix,
                    };
                    id = id.next();
                    route
                })
                .collect(),
        })
        .collect();
    Fixture { topology, listeners, limits: Limits::default() }
});

/// `host` or `host:port`, as a route's `hosts` entry.
fn route_host(s: &str) -> RouteHost {
    match s.rsplit_once(':') {
        Some((host, port)) => RouteHost { host: HostPattern::parse(host), port: port.parse().ok() },
        None => RouteHost { host: HostPattern::parse(s), port: None },
    }
}

fn fixture() -> &'static Fixture {
    &FIXTURE
}

// === experiment files, configs, protobuf specs ===

/// A valid spec must survive a round trip through the protobuf JSON mapping unchanged, and validate again.
fn check_round_trip(spec: &pb::ExperimentSpec, ctx: &Context<'_>) {
    // A fuzz target reports a broken invariant by panicking: these are its findings, not error handling.
    #[allow(clippy::expect_used, reason = "the fuzz target's assertions")]
    let json = serde_json::to_value(spec).expect("a valid spec serializes");
    #[allow(clippy::expect_used, reason = "the fuzz target's assertions")]
    let back = document::spec_from_value(json, String::new()).expect("a valid spec reads back");
    assert_eq!(&back, spec, "the round trip through the JSON mapping changed the spec");
    assert!(validate_spec(&back, ctx).is_ok(), "a spec read back is valid again");
}

/// An experiment file: YAML parsing, then validation against the fixture's topology (the listeners and
/// routes of the example configs, with a TLS, a forward and a TCP listener, and the config's page
/// templates) and the default limits. A spec that validates must survive a round trip through the protobuf
/// JSON mapping unchanged, and validate again.
pub fn experiment_yaml(data: &[u8]) {
    let _ = experiment_yaml_outcome(data);
}

/// [`experiment_yaml`], with each spec's validation (`Err`: its problems); `None`: not UTF-8 or not YAML
/// specs.
pub fn experiment_yaml_outcome(data: &[u8]) -> Option<Vec<Result<(), String>>> {
    let text = std::str::from_utf8(data).ok()?;
    let specs = document::parse_specs(text).ok()?;
    let f = fixture();
    let ctx = Context { topology: Some(&f.topology), limits: &f.limits };
    let mut out = Vec::new();
    for spec in specs {
        match validate_spec(&spec, &ctx) {
            Ok(_) => {
                check_round_trip(&spec, &ctx);
                out.push(Ok(()));
            }
            Err(v) => out.push(Err(v.to_string())),
        }
    }
    Some(out)
}

/// A config file: parsed and checked as `edgefault serve --config` would (no port is bound).
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::from_yaml(text, "fuzz", &Overrides::default());
}

/// A StartExperiment request body: protobuf bytes, decoded and validated without a topology (as
/// `edgefault validate` does without `--config`) and against the fixture's. A spec valid against the
/// fixture must survive the JSON mapping's round trip, as a YAML one must.
pub fn experiment_proto(data: &[u8]) {
    let _ = experiment_proto_outcome(data);
}

/// [`experiment_proto`], with the validation against the fixture (`Err`: the problems); `None`: not a
/// protobuf `ExperimentSpec`.
pub fn experiment_proto_outcome(data: &[u8]) -> Option<Result<(), String>> {
    use prost::Message;
    let spec = pb::ExperimentSpec::decode(data).ok()?;
    let f = fixture();
    let _ = validate_spec(&spec, &Context { topology: None, limits: &f.limits });
    let ctx = Context { topology: Some(&f.topology), limits: &f.limits };
    Some(match validate_spec(&spec, &ctx) {
        Ok(_) => {
            check_round_trip(&spec, &ctx);
            Ok(())
        }
        Err(v) => Err(v.to_string()),
    })
}

// === the request path ===

/// The most experiments one `request_path` input runs at once.
const MAX_RULES: usize = 16;
/// The most header lines the head parser takes (hyper's default).
const MAX_HEADERS: usize = 100;

/// What the separator line of a `request_path` input sets: `%% [client address] [listener] [+elapsed]`.
struct RequestOptions<'f> {
    listener: &'f FixtureListener,
    client: IpAddr,
    /// How long the experiments have been running (for triggers, ramps, flaps and phases).
    elapsed: Duration,
}

impl<'f> RequestOptions<'f> {
    fn parse(line: &[u8], f: &'f Fixture) -> Option<Self> {
        let mut o = RequestOptions {
            listener: f.listeners.first()?,
            client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            elapsed: Duration::ZERO,
        };
        for token in String::from_utf8_lossy(line).split_ascii_whitespace() {
            if let Ok(ip) = token.parse::<IpAddr>() {
                o.client = ip;
            } else if let Some(l) = f.listeners.iter().find(|l| l.name == token) {
                o.listener = l;
            } else if let Some(d) = token.strip_prefix('+').and_then(|d| humantime::parse_duration(d).ok()) {
                o.elapsed = d;
            }
        }
        Some(o)
    }
}

/// Splits a `request_path` input at its first line starting with `%%`: the YAML before it, the rest of
/// that line (options), the request head after it.
fn split_request_input(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let at = (0..data.len()).find(|&i| {
        data.get(i..).is_some_and(|rest| rest.starts_with(b"%%")) && (i == 0 || data.get(i - 1) == Some(&b'\n'))
    })?;
    let yaml = data.get(..at)?;
    let after = data.get(at + 2..)?;
    let eol = after.iter().position(|&b| b == b'\n').unwrap_or(after.len());
    let options = after.get(..eol)?;
    let head = after.get(eol + 1..).unwrap_or_default();
    Some((yaml, options, head))
}

/// A forgiving HTTP/1.1 head parser: `METHOD TARGET [VERSION]`, then `name: value` lines up to an empty
/// line. A line that is not a valid header is skipped; a request line that cannot be built gives `None`.
/// `HTTP/2` as the version stands for a request as hyper hands one over from HTTP/2 (the target then
/// carries `:scheme` and `:authority`).
pub fn parse_request_head(head: &[u8]) -> Option<Request<()>> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut parts = lines.next()?.splitn(3, |&b| b == b' ');
    let method = Method::from_bytes(parts.next()?).ok()?;
    let uri = Uri::try_from(parts.next()?).ok()?;
    let version = match parts.next() {
        None => Version::HTTP_11,
        Some(b"HTTP/1.1") => Version::HTTP_11,
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/2" | b"HTTP/2.0") => Version::HTTP_2,
        Some(_) => return None,
    };
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    for line in lines.take_while(|l| !l.is_empty()).take(MAX_HEADERS) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Some(name), Some(value)) = (line.get(..colon), line.get(colon + 1..)) else { continue };
        let value = value.trim_ascii();
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            req.headers_mut().append(name, value);
        }
    }
    Some(req)
}

/// The hop-by-hop headers: none of them may reach the upstream (`te` only as `te: trailers`).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "te",
];

/// The header names a `connection` header lists (they belong to the hop too), except `host`.
fn connection_tokens(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| n != header::HOST)
        .collect()
}

/// What the proxy does to a head it forwards: hop-by-hop headers out (and those `connection` names), `host`
/// kept, the client recorded in `x-forwarded-for` and the scheme in `x-forwarded-proto`.
fn check_forwarded_head(original: &HeaderMap, client: IpAddr, proto: &'static str) {
    let mut h = original.clone();
    let named = connection_tokens(&h);
    headers::remove_hop_by_hop(&mut h);
    for name in HOP_BY_HOP {
        // `te: trailers` (gRPC needs it end to end) is the one value that goes on.
        let trailers = |v: &HeaderValue| name == "te" && v.as_bytes().eq_ignore_ascii_case(b"trailers");
        assert!(h.get_all(name).iter().all(trailers), "{name} is left in a forwarded head: {h:?}");
    }
    for name in &named {
        assert!(!h.contains_key(name), "{name}, named by connection, is left in a forwarded head: {h:?}");
    }
    assert_eq!(
        h.get(header::HOST),
        original.get(header::HOST),
        "removing the hop-by-hop headers changed host (connection: {:?})",
        original.get_all(header::CONNECTION).iter().collect::<Vec<_>>()
    );
    headers::append_forwarded(&mut h, client, proto);
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client),
        v4 => v4,
    };
    // The client's own value (any bytes a header may hold), then ", " and ours; or ours alone.
    let ends_with = |name: &str, ours: &str| {
        h.get(name).map(HeaderValue::as_bytes).is_some_and(|v| {
            v == ours.as_bytes() || v.strip_suffix(ours.as_bytes()).is_some_and(|before| before.ends_with(b", "))
        })
    };
    assert!(ends_with("x-forwarded-for", &client.to_string()), "x-forwarded-for does not end with {client}: {h:?}");
    assert!(ends_with("x-forwarded-proto", proto), "x-forwarded-proto does not end with {proto}: {h:?}");
}

/// How many faults of a definition are delays, and first-byte delays (its own and every phase's).
fn count_delays(def: &ExperimentDef) -> (u32, u32) {
    let all = def.faults.http().iter().chain(def.phases.iter().flat_map(|p| p.faults.http().iter()));
    all.fold((0, 0), |(d, f), fault| match fault {
        Fault::Delay(_) => (d.saturating_add(1), f),
        Fault::FirstByteDelay(_) => (d, f.saturating_add(1)),
        _ => (d, f),
    })
}

/// How far a `request_path` input went, for tools that check seeds (`fuzz/examples/seeds.rs`).
#[derive(Debug, Default)]
pub struct RequestOutcome {
    /// Each spec of the YAML part: `Ok` when it validated and runs, else its problems.
    pub specs: Vec<Result<(), String>>,
    /// Where the request stopped: "bad host", "connect refused", "not a proxy request", "no route",
    /// "untouched" (no experiment selected it), "ended by <fault>", "forwarded".
    pub stage: &'static str,
}

/// A request and a rule set → the data plane's decision and the head it forwards.
///
/// The input is one or more experiment specs (a YAML stream), a line `%% [client address] [listener]
/// [+elapsed]` (listeners: `web`, `web-tls`, `egress` (forward), `provider-https`; elapsed: how long the
/// experiments have been running, e.g. `+90s`), then an HTTP/1.1 request head (see
/// [`parse_request_head`]). The specs that validate against the fixture run as experiments; the request
/// goes the way the proxy takes it: `check_host`, the route, `RuleSet::decide` (twice, as two requests),
/// each ending fault's response, then for the second request the request rewrites and the forwarded head.
///
/// Rules: nothing panics; each experiment's delay is at most `limits.max_duration` times its number of
/// delay faults (the same for first-byte delays), their sum does not overflow and fits in an `Instant`;
/// a hang or blackhole never outlasts its bounds; the forwarded head has no hop-by-hop header and keeps
/// `host`; `x-forwarded-for` ends with the client's address.
pub fn request_path(data: &[u8]) {
    let _ = request_path_outcome(data);
}

/// [`request_path`], saying how far the input went; `None`: no separator line or no request head.
pub fn request_path_outcome(data: &[u8]) -> Option<RequestOutcome> {
    let (yaml, options, head) = split_request_input(data)?;
    let f = fixture();
    let opts = RequestOptions::parse(options, f)?;
    let mut req = parse_request_head(head)?;
    let mut out = RequestOutcome::default();
    let now = tokio::time::Instant::now();
    let (set, bounds) = started_rules(yaml, &opts, f, now, &mut out);

    // As `ReverseProxy::handle` does: host checks, CONNECT only on forward listeners, the route.
    if headers::check_host(&mut req).is_err() {
        out.stage = "bad host";
        return Some(out);
    }
    if req.method() == Method::CONNECT && !opts.listener.forward {
        out.stage = "connect refused";
        return Some(out);
    }
    let decisions = match route_of(&req, &opts) {
        Err(stage) => {
            out.stage = stage;
            return Some(out);
        }
        Ok((route, view)) => decide_twice(&set, route, &view, bounds, now),
    };
    out.stage = end_or_forward(decisions, &mut req, &opts, &f.limits);
    Some(out)
}

/// The most any one experiment's delays, and first-byte delays, may add up to.
#[derive(Debug, Clone, Copy)]
struct DelayBounds {
    delay: Duration,
    first_byte: Duration,
}

/// The input's experiments, started `opts.elapsed` ago, each with its own counters; each spec's outcome goes
/// to `out`.
fn started_rules(
    yaml: &[u8],
    opts: &RequestOptions,
    f: &Fixture,
    now: tokio::time::Instant,
    out: &mut RequestOutcome,
) -> (RuleSet, DelayBounds) {
    let ctx = Context { topology: Some(&f.topology), limits: &f.limits };
    let specs = std::str::from_utf8(yaml).ok().and_then(|t| document::parse_specs(t).ok()).unwrap_or_default();
    let mut rules = Vec::new();
    let (mut most_delays, mut most_first_byte) = (0u32, 0u32);
    for (seq, spec) in specs.iter().enumerate().take(MAX_RULES) {
        let def = match validate_spec(spec, &ctx) {
            Ok(def) => def,
            Err(v) => {
                out.specs.push(Err(v.to_string()));
                continue;
            }
        };
        let Some(ends_at) = now.checked_add(def.duration).and_then(|t| t.checked_sub(opts.elapsed)) else {
            out.specs.push(Err("ended before the request".into()));
            continue;
        };
        out.specs.push(Ok(()));
        let (delays, first_byte) = count_delays(&def);
        most_delays = most_delays.max(delays);
        most_first_byte = most_first_byte.max(first_byte);
        let seq = u64::try_from(seq).unwrap_or(u64::MAX);
        let seed = def.seed.unwrap_or(seq);
        rules.push(Arc::new(Rule::new(format!("exp-{seq}").into(), seq, &def, seed, ends_at, Arc::default())));
    }
    let bounds = DelayBounds {
        delay: f.limits.max_duration.saturating_mul(most_delays),
        first_byte: f.limits.max_duration.saturating_mul(most_first_byte),
    };
    (RuleSet::build(&f.topology, rules), bounds)
}

/// The route the request takes and what the rule set sees of it, or the stage where it stops.
fn route_of<'r, B>(req: &'r Request<B>, opts: &'r RequestOptions) -> Result<(RouteId, RequestView<'r>), &'static str> {
    let (host, port, path) = if opts.listener.forward {
        let d = forward::destination(req).map_err(|_| "not a proxy request")?;
        (Some(d.host), Some(d.port), d.path)
    } else {
        (headers::request_host(req), None, req.uri().path())
    };
    let route = opts
        .listener
        .routes
        .iter()
        .find(|r| {
            (r.hosts.is_empty() || host.is_some_and(|h| r.hosts.iter().any(|p| p.matches(h, port))))
                && r.path_prefix.is_none_or(|p| path.starts_with(p))
        })
        .ok_or("no route")?;
    let view = RequestView {
        method: req.method(),
        host,
        path,
        query: req.uri().query(),
        headers: req.headers(),
        client_ip: opts.client,
    };
    Ok((route.id, view))
}

/// The decisions for two requests in a row (the first may change what the second gets, as a rate limit
/// does), each checked: every experiment's delays within their bound, the sums fit in an `Instant`.
fn decide_twice(
    set: &RuleSet,
    route: RouteId,
    view: &RequestView<'_>,
    bounds: DelayBounds,
    now: tokio::time::Instant,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for _ in 0..2 {
        if !set.targets(route) {
            break;
        }
        let Some(d) = set.decide(route, view) else { continue };
        let mut total = Duration::ZERO;
        for delay in d.delay.live() {
            assert!(*delay <= bounds.delay, "one experiment's delay {delay:?} exceeds {:?}", bounds.delay);
            let sum = total.checked_add(*delay);
            assert!(sum.is_some(), "the delays' sum overflows");
            total = sum.unwrap_or(Duration::MAX);
        }
        assert!(now.checked_add(total).is_some(), "the delays' sum {total:?} does not fit in an Instant");
        let mut head_total = Duration::ZERO;
        for wait in d.head_delay.live().chain(d.body.live().map(|b| &b.first_byte)) {
            assert!(*wait <= bounds.first_byte, "a first-byte delay {wait:?} exceeds {:?}", bounds.first_byte);
            head_total = head_total.saturating_add(*wait);
        }
        assert!(now.checked_add(head_total).is_some(), "the first-byte delays do not fit in an Instant");
        let _ = BodyPlan::combined(d.body.live());
        decisions.push(d);
    }
    decisions
}

/// Each decision's ending, answered as the proxy answers it; the last request goes on if none ends it, its
/// forwarded head and the response's checked. Returns the stage.
fn end_or_forward<B>(
    mut decisions: Vec<Decision>,
    req: &mut Request<B>,
    opts: &RequestOptions,
    limits: &Limits,
) -> &'static str {
    let Some(d) = decisions.pop() else {
        check_forwarded_head(req.headers(), opts.client, opts.listener.proto);
        return "untouched";
    };
    for earlier in &decisions {
        let _ = check_ending(earlier, req, opts.client, limits);
    }
    if let Some(stage) = check_ending(&d, req, opts.client, limits) {
        return stage;
    }
    if d.response.rewrites_request() {
        for r in &d.response.rewrites {
            r.request.apply(req.headers_mut());
        }
    }
    check_forwarded_head(req.headers(), opts.client, opts.listener.proto);
    // The upstream's answer on its way back: its rewrites, then its own hop-by-hop headers out.
    let mut resp = http::Response::new(());
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let (mut parts, ()) = resp.into_parts();
    for r in &d.response.rewrites {
        r.apply_response(&mut parts);
    }
    headers::remove_hop_by_hop(&mut parts.headers);
    assert!(!parts.headers.contains_key(header::CONNECTION), "connection is left in a response head");
    "forwarded"
}

/// The fault that ends the request, if any, answered as the proxy answers it; `None`: the request goes on.
fn check_ending<B>(d: &Decision, req: &Request<B>, client: IpAddr, limits: &Limits) -> Option<&'static str> {
    let end = d.ending()?;
    Some(match end.end {
        End::Abort(abort) => {
            check_response(&respond::abort(abort, req, client));
            "ended by abort"
        }
        End::Hang(hang) => {
            assert!(hang.hold <= limits.max_duration, "a hang of {:?} outlasts max_duration", hang.hold);
            if let HangEnd::Respond(abort) = &hang.then {
                check_response(&respond::abort(abort, req, client));
            }
            "ended by hang"
        }
        End::RateLimited => {
            let r = respond::rate_limited(end.retry_after, req);
            assert!(r.headers().contains_key(header::RETRY_AFTER), "a 429 without retry-after");
            "ended by rate_limit"
        }
        End::Unresolvable(u) => {
            check_response(&forward::unresolvable(headers::request_host(req), u.answer));
            "ended by unresolvable"
        }
        End::Blackhole(b) => {
            let until = forward::blackhole_until(b, end.rule.ends_at());
            assert!(until <= end.rule.ends_at(), "a blackhole outlasts its experiment");
            "ended by blackhole"
        }
        End::Reset => "ended by reset",
    })
}

/// A response the proxy writes itself: a status it may send, and headers that can be written.
fn check_response<B>(r: &http::Response<B>) {
    assert!(!r.status().is_informational(), "an injected answer with a 1xx status: {}", r.status());
    for (name, value) in r.headers() {
        assert!(HeaderValue::from_bytes(value.as_bytes()).is_ok(), "header {name} is not valid");
    }
}

// === error pages ===

/// A stand-in host with nothing to escape, to compare a rendering against.
const PLAIN_HOST: &str = "hsafe.example";
const LOCATIONS: [&str; 4] = ["FRA", "AMS", "LHR", "SJC"];

/// FNV-1a, for a request id and a time drawn from the input.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One rendering and its rules. `template`: the text of a custom template's body (HTML and JSON alike),
/// whose literal `<` and `>` are the only ones an HTML rendering may hold.
fn check_page(page: &Page, status: StatusCode, req: &PageRequest<'_>, template: Option<&str>) {
    let builtin = !matches!(page.preset, Preset::Custom(_));
    let r = page.render(status, req);
    let content_type = r.headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    assert!(content_type.is_some(), "a page without content-type");
    let is_json = content_type == Some(b"application/json".as_slice());
    if builtin {
        assert_eq!(is_json, req.json, "a built-in page in the format the client did not ask for");
    }
    if let Some(reason) = &r.reason {
        assert!(
            hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).is_ok(),
            "reason phrase {reason:?} cannot go in a status line"
        );
    }
    for (name, value) in &r.headers {
        assert!(HeaderValue::from_bytes(value.as_bytes()).is_ok(), "header {name} is not valid");
    }
    let plain = req.host.map(|_| page.render(status, &PageRequest { host: Some(PLAIN_HOST), ..*req }));
    if is_json {
        let parses = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).is_ok();
        if builtin {
            assert!(parses(&r.body), "a built-in JSON page is not JSON: {:?}", String::from_utf8_lossy(&r.body));
        } else if let Some(plain) = &plain {
            // A template that is JSON for a plain host is JSON for any host: values are escaped.
            assert!(
                !parses(&plain.body) || parses(&r.body),
                "a JSON template breaks with host {:?}: {:?}",
                req.host,
                String::from_utf8_lossy(&r.body)
            );
        }
        return;
    }
    let count = |b: &[u8], c: u8| b.iter().filter(|&&x| x == c).count();
    if let Some(plain) = &plain {
        // The host is escaped: it adds no markup, whatever it holds.
        for c in [b'<', b'>'] {
            assert_eq!(
                count(&r.body, c),
                count(&plain.body, c),
                "host {:?} adds a raw {:?} to the HTML page",
                req.host,
                char::from(c)
            );
        }
        if let Some(host) = req.host.filter(|h| h.contains('<')) {
            // Looked for between the escaped hosts: `;<` is in `;&lt;<br>`, escaping and the markup after it.
            let escaped = crate::fault::page::escape_html(host);
            let raw = |b: &[u8]| String::from_utf8_lossy(b).split(escaped.as_str()).any(|part| part.contains(host));
            assert!(raw(&plain.body) || !raw(&r.body), "host {host:?} appears unescaped in the HTML page");
        }
    }
    if let Some(text) = template {
        if !r.body.is_empty() {
            for c in [b'<', b'>'] {
                assert_eq!(
                    count(&r.body, c),
                    count(text.as_bytes(), c),
                    "a rendering adds a raw {:?} to the template's",
                    char::from(c)
                );
            }
        }
    }
}

/// A custom template as the config would accept it (`config/pages.rs`): `title` one line of text, the
/// header value printable, the body's placeholders known. `None` when the config would refuse it.
fn custom_template(title: &str, header_value: &str, body: &str) -> Option<PageTemplate> {
    let title = (!title.is_empty()).then_some(title);
    if title.is_some_and(|t| t.chars().any(char::is_control)) {
        return None;
    }
    let mut headers = Vec::new();
    if !header_value.is_empty() {
        HeaderValue::from_str(&header_value.replace("{{", "").replace("}}", "")).ok()?;
        headers.push((HeaderName::from_static("x-fuzz-page"), Template::parse(header_value).ok()?));
    }
    let body = Template::parse(body).ok()?;
    let variant = Variant { title: Some("Origin \"slow\" <down>".into()), ..Variant::default() };
    Some(PageTemplate {
        name: "fuzz".into(),
        base: Variant { title: title.map(str::to_owned), html: Some(body.clone()), json: Some(body), headers },
        statuses: [(522, variant)].into_iter().collect(),
        request_id_header: Some(HeaderName::from_static("x-request-id")),
    })
}

/// The built-in error pages and the config's page templates.
///
/// The input: a byte choosing what renders (its value modulo 6: 0 `generic`, 1 `edge`, 2 `cdn`, 3 a
/// template of the fixture's config (`acme-edge`, `maintenance`), 4 a template made of the input, 5 the
/// templates of a config made of the input; the higher bits pick the location and the fixture's
/// template), two bytes of status (big-endian, modulo 1000), then text: the host (first line; empty:
/// none), the `accept` header (second line), and for 4 the template's title, a header value and its body
/// (third, fourth line, the rest), for 5 a config (the rest) whose only key is `pages:`.
///
/// Rules: nothing panics; a built-in page comes in the format the client asked for, as JSON that parses;
/// the host adds no raw `<` or `>` to an HTML page, and a host containing `<` never appears unescaped;
/// an HTML template's rendering holds exactly its text's `<` and `>`; a JSON template that is JSON with a
/// plain host is JSON with any host; every header is valid and a reason phrase fits a status line.
pub fn page_render(data: &[u8]) {
    let _ = page_render_outcome(data);
}

/// [`page_render`], saying what rendered (`generic`, …, `fixture acme-edge`, `template`, `config: N
/// templates`); `None`: the input was skipped (too short, not a status, not UTF-8, a template or config
/// the config loader would refuse).
pub fn page_render_outcome(data: &[u8]) -> Option<String> {
    let [mode, s1, s2, rest @ ..] = data else { return None };
    let status = StatusCode::from_u16(u16::from_be_bytes([*s1, *s2]) % 1000).ok()?;
    let text = std::str::from_utf8(rest).ok()?;
    let mut lines = text.splitn(3, '\n');
    let host = lines.next().filter(|h| !h.is_empty());
    let accept = lines.next().unwrap_or("");
    let rest = lines.next().unwrap_or("");
    let mut accept_headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(accept) {
        accept_headers.insert(header::ACCEPT, v);
    }
    let hash = fnv(data);
    let [a, b, c, d, ..] = hash.to_be_bytes();
    let req = PageRequest {
        host,
        json: wants_json(&accept_headers),
        now: SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(hash >> 24)).unwrap_or(SystemTime::UNIX_EPOCH),
        id: hash,
        client: Some(IpAddr::from([a, b, c, d])),
    };
    let pick = usize::from(mode / 6);
    let location = LOCATIONS.get(pick % LOCATIONS.len()).and_then(|l| Location::parse(l)).unwrap_or(Location::DEFAULT);
    let page = |preset| Page { preset, location };
    let (name, preset) = match mode % 6 {
        0 => ("generic", Preset::Generic),
        1 => ("edge", Preset::Edge),
        2 => ("cdn", Preset::Cdn),
        3 => {
            let pages = fixture().topology.pages();
            let names: Vec<&str> = pages.names().collect();
            let name = names.get(pick % names.len().max(1)).copied()?;
            check_page(&page(Preset::Custom(Arc::clone(pages.get(name)?))), status, &req, None);
            return Some(format!("fixture {name}"));
        }
        4 => {
            let mut parts = rest.splitn(3, '\n');
            let (title, value, body) =
                (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let t = custom_template(title, value, body)?;
            check_page(&page(Preset::Custom(Arc::new(t))), status, &req, Some(body));
            return Some("template".into());
        }
        _ => {
            // Only `pages:`: a config that names files (certificates, tokens, scenarios) is not read here.
            let docs = document::parse_yaml_documents(rest).ok()?;
            let only_pages = docs.iter().all(|d| d.as_object().is_some_and(|m| m.keys().all(|k| k == "pages")));
            if docs.is_empty() || !only_pages {
                return None;
            }
            let overrides = Overrides { upstream: Some("http://127.0.0.1:1".into()), ..Overrides::default() };
            let config = Config::from_yaml(rest, "fuzz", &overrides).ok()?;
            check_templates(&config.pages, status, &req, location);
            return Some(format!("config: {} templates", config.pages.names().count()));
        }
    };
    check_page(&page(preset), status, &req, None);
    Some(name.into())
}

/// Every template of a config, at the status asked and at each of its own.
fn check_templates(pages: &PageTemplates, status: StatusCode, req: &PageRequest<'_>, location: Location) {
    for name in pages.names() {
        let Some(t) = pages.get(name) else { continue };
        let page = Page { preset: Preset::Custom(Arc::clone(t)), location };
        check_page(&page, status, req, None);
        for code in t.statuses.keys() {
            if let Ok(s) = StatusCode::from_u16(*code) {
                check_page(&page, s, req, None);
            }
        }
    }
}
