//! TCP listeners (`mode: tcp`): every accepted connection is relayed byte for byte to the listener's
//! upstream, with the toxics (Toxiproxy's byte-level faults) of the experiments that selected it.
//!
//! Each direction is a pipe of two halves: a reader that takes chunks from one peer as they come (stamped
//! with their arrival time, up to [`QUEUE_CHUNKS`] ahead), and a writer that applies the toxics in force and
//! writes to the other peer. So a latency toxic delays every chunk from its arrival without dividing a
//! stream's throughput by the latency, as in Toxiproxy.
//!
//! The toxics in force are looked up for every chunk: one atomic load of the active rule set, compared with
//! the one seen last. An experiment started while a connection is open therefore applies to it from its next
//! chunk (or within [`POLL`] on an idle connection); an experiment that ends stops acting the same way. Each
//! experiment selects a connection or not once, the first time the connection meets it
//! ([`ConnectionRules`]).

use std::{
    collections::VecDeque,
    future::Future,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use rand::{rngs::SmallRng, SeedableRng};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, Semaphore},
    task::JoinSet,
    time::{sleep_until, timeout, Instant},
};

use crate::{
    experiment::{guard::Health, ActiveToxic, AnyEnded, ConnectionRules, Held, RuleSet},
    fault::{toxic, Direction, ToxicKind},
    proxy::settings::TcpListenerConfig,
    telemetry::metrics::{Metrics, Outcome, TcpCounters},
};

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks a reader may take ahead of its writer; past it, the peer meets TCP backpressure.
const QUEUE_CHUNKS: usize = 64;
/// How often an idle direction looks for experiments started or ended meanwhile.
pub const POLL: Duration = Duration::from_millis(250);
/// Data a `timeout` toxic holds before it stops reading (the peer then meets TCP backpressure).
const HOLD_BYTES: usize = 1024 * 1024;

/// One TCP listener: its upstream, its view of the active rules, and its counters.
pub struct TcpProxy {
    config: TcpListenerConfig,
    rules: Arc<ArcSwap<RuleSet>>,
    counters: TcpCounters,
    /// Real upstream outcomes (connected or not), for guards.
    health: Arc<Health>,
}

impl TcpProxy {
    pub fn new(
        config: &TcpListenerConfig,
        rules: Arc<ArcSwap<RuleSet>>,
        metrics: &Metrics,
        health: Arc<Health>,
    ) -> Self {
        TcpProxy { counters: metrics.tcp_counters(&config.name), config: config.clone(), rules, health }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Relays one client connection until both directions end, or a toxic, an error or a peer ends it.
    async fn handle(&self, client: TcpStream, peer: SocketAddr) {
        let open = OpenConnection::new(&self.counters.open);
        let outcome = self.relay(client, peer).await;
        drop(open);
        self.counters.count(outcome);
    }

    async fn relay(&self, mut client: TcpStream, peer: SocketAddr) -> Outcome {
        let _ = client.set_nodelay(true);
        let route = self.config.route;
        let conn = Mutex::new(ConnectionRules::new(route, peer.ip(), self.rules.load_full(), Instant::now()));
        let mut upstream =
            match timeout(self.config.connect_timeout, TcpStream::connect(self.config.upstream.as_str())).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return self.upstream_error(&conn, &e.to_string()),
                Err(_) => return self.upstream_error(&conn, "connect timed out (connect_timeout)"),
            };
        let _ = upstream.set_nodelay(true);
        let end = {
            let ctx = Ctx { rules: &self.rules, conn: &conn, counters: &self.counters };
            let (client_read, client_write) = client.split();
            let (upstream_read, upstream_write) = upstream.split();
            let up = pipe(client_read, upstream_write, Direction::Upstream, &ctx);
            let down = pipe(upstream_read, client_write, Direction::Downstream, &ctx);
            both(up, down).await
        };
        if let End::Reset = end {
            // Zero linger: closing discards unsent data and sends RST.
            for s in [&client, &upstream] {
                if let Err(e) = s.set_zero_linger() {
                    tracing::debug!(listener = %self.config.name, error = %e, "could not arm the connection reset");
                }
            }
        }
        let injected = conn.lock().unwrap_or_else(|e| e.into_inner()).injected();
        tracing::debug!(listener = %self.config.name, %peer, ?end, injected, "connection ended");
        if injected {
            Outcome::Injected
        } else {
            self.health.record(route, false);
            Outcome::Passed
        }
    }

    fn upstream_error(&self, conn: &Mutex<ConnectionRules>, error: &str) -> Outcome {
        if !conn.lock().unwrap_or_else(|e| e.into_inner()).injected() {
            self.health.record(self.config.route, true);
        }
        tracing::warn!(listener = %self.config.name, upstream = %self.config.upstream, error, "upstream_error");
        Outcome::UpstreamError
    }
}

/// Serves `listener` until `shutdown` resolves, then lets open connections go on for up to `grace` before
/// closing them. At most `max_connections` are open at once; past it, new ones wait in the accept backlog.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<TcpProxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while open.try_join_next().is_some() {}
        let Some((stream, peer, slot)) =
            super::listener::next_connection(&listener, &slots, &mut shutdown, proxy.name()).await
        else {
            break;
        };
        let proxy = Arc::clone(&proxy);
        open.spawn(async move {
            proxy.handle(stream, peer).await;
            drop(slot);
        });
    }
    drop(listener);
    if !open.is_empty() {
        tracing::info!(listener = %proxy.name(), open = open.len(), "draining connections");
    }
    if timeout(grace, async { while open.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(listener = %proxy.name(), "drain grace period over; closing the remaining connections");
        open.shutdown().await;
    }
}

/// Counts a connection in `edgefault_tcp_connections_open` while it lives, also when its task is dropped.
struct OpenConnection<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> OpenConnection<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// How a direction, or the whole connection, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The source peer finished sending; the destination got FIN.
    Eof,
    /// A toxic (timeout, limit_data) or a peer leaving while data was held closes the connection.
    Close,
    /// A reset_peer toxic, or a peer's own reset passed on: both peers get RST.
    Reset,
    /// A peer failed (read or write error): the connection closes.
    Error,
}

/// Runs both directions until both reach end of stream, or either ends the connection.
async fn both(up: impl Future<Output = End>, down: impl Future<Output = End>) -> End {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
        };
        if end != End::Eof {
            return end;
        }
    }
    End::Eof
}

/// What the two directions of a connection share.
struct Ctx<'a> {
    rules: &'a ArcSwap<RuleSet>,
    conn: &'a Mutex<ConnectionRules>,
    counters: &'a TcpCounters,
}

/// Data as it arrived.
struct Chunk {
    at: Instant,
    data: Bytes,
}

/// One direction: reads from `src`, writes to `dst`.
async fn pipe(mut src: impl AsyncRead + Unpin, dst: impl AsyncWrite + Unpin, dir: Direction, ctx: &Ctx<'_>) -> End {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let reader = async move {
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match src.read_buf(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    if tx.send(Chunk { at: Instant::now(), data: buf.freeze() }).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let writer = Writer::new(dst, dir, ctx).run(rx);
    tokio::pin!(reader, writer);
    let mut reading = true;
    loop {
        tokio::select! {
            end = &mut writer => return end,
            read = &mut reader, if reading => {
                reading = false;
                match read {
                    Ok(()) => {}
                    // A peer's reset is passed on to the other peer.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return End::Reset,
                    Err(_) => return End::Error,
                }
            }
        }
    }
}

/// The writing half of one direction, with the state its toxics keep.
struct Writer<'c, W> {
    dst: W,
    dir: Direction,
    ctx: &'c Ctx<'c>,
    /// The rule set last looked at, and the connection's toxics under it.
    seen: Arc<RuleSet>,
    toxics: Arc<[ActiveToxic]>,
    /// Bytes passed under each limit_data toxic, by toxic key.
    passed: Vec<((u64, usize), u64)>,
    /// When an armed reset_peer toxic resets the connection.
    reset_at: Option<Instant>,
    /// When the bandwidth toxic's link is free again.
    link_free: Instant,
    /// Chunks written with toxics: varies the random draws from chunk to chunk.
    chunks: u64,
}

impl<'c, W: AsyncWrite + Unpin> Writer<'c, W> {
    fn new(dst: W, dir: Direction, ctx: &'c Ctx<'c>) -> Self {
        let (seen, toxics) = {
            let conn = ctx.conn.lock().unwrap_or_else(|e| e.into_inner());
            (Arc::clone(conn.seen()), Arc::from([]))
        };
        let mut w = Writer {
            dst,
            dir,
            ctx,
            seen: Arc::new(RuleSet::default()),
            toxics,
            passed: Vec::new(),
            reset_at: None,
            link_free: Instant::now(),
            chunks: 0,
        };
        // The connection met the rules when it opened; start from there.
        w.look(Some(seen), Instant::now());
        w
    }

    /// Brings the toxics in force up to date with the active rule set (`seen`: one already loaded).
    fn look(&mut self, seen: Option<Arc<RuleSet>>, now: Instant) {
        let current = match seen {
            Some(s) => s,
            None => {
                let guard = self.ctx.rules.load();
                if Arc::ptr_eq(&guard, &self.seen) {
                    return;
                }
                Arc::clone(&guard)
            }
        };
        let mut conn = self.ctx.conn.lock().unwrap_or_else(|e| e.into_inner());
        self.toxics = conn.refresh(&current, now);
        self.seen = current;
    }

    /// The toxics of this direction in force at `now`.
    fn in_force(&self, now: Instant) -> impl Iterator<Item = &ActiveToxic> {
        let dir = self.dir;
        self.toxics.iter().filter(move |t| t.toxic.direction == dir && t.in_force(now))
    }

    /// Resolves when the experiment of one of this direction's toxics ends.
    fn toxic_ended(&self) -> AnyEnded {
        let mut held = Held::new();
        for t in self.toxics.iter().filter(|t| t.toxic.direction == self.dir) {
            held.push(&t.lifeline, ());
        }
        held.any_ended()
    }

    /// Sleeps until `at`, or until the experiment of one of the toxics ends (true then): what the toxic
    /// held goes on at once.
    async fn nap(&self, at: Instant) -> bool {
        let ended = self.toxic_ended();
        tokio::select! {
            () = sleep_until(at) => false,
            () = ended => true,
        }
    }

    /// The slowest bandwidth toxic in force at `now`.
    fn rate(&self, now: Instant) -> Option<std::num::NonZeroU64> {
        self.in_force(now)
            .filter_map(|t| match t.toxic.kind {
                ToxicKind::Bandwidth { bytes_per_second } => Some(bytes_per_second),
                _ => None,
            })
            .min()
    }

    /// The longest slow_close delay in force at `now`.
    fn slow_close(&self, now: Instant) -> Option<Duration> {
        self.in_force(now)
            .filter_map(|t| match t.toxic.kind {
                ToxicKind::SlowClose { delay } => Some(delay),
                _ => None,
            })
            .max()
    }

    /// When a timeout toxic holds this direction: `Some(close_at)`, with `None` inside for "never".
    fn hold(&self, now: Instant) -> Option<Option<Instant>> {
        self.in_force(now).find_map(|t| match t.toxic.kind {
            ToxicKind::Timeout { timeout } => Some(timeout.map(|d| t.since + d)),
            _ => None,
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Chunk>) -> End {
        let mut held: VecDeque<Chunk> = VecDeque::new();
        let mut held_bytes = 0;
        let mut eof = false;
        loop {
            let now = Instant::now();
            self.look(None, now);
            if !self.in_force(now).any(|t| matches!(t.toxic.kind, ToxicKind::ResetPeer { .. })) {
                self.reset_at = None;
            }
            if self.reset_at.is_some_and(|at| now >= at) {
                return End::Reset;
            }
            let hold = self.hold(now);
            if let Some(Some(close_at)) = hold {
                if now >= close_at {
                    return End::Close;
                }
            }
            if hold.is_none() {
                if let Some(chunk) = held.pop_front() {
                    held_bytes -= chunk.data.len();
                    if let Err(end) = self.forward(chunk).await {
                        return end;
                    }
                    continue;
                }
                // An armed reset_peer resets even a connection whose sender has finished.
                if eof && self.reset_at.is_none() {
                    if let Some(delay) = self.slow_close(now) {
                        self.nap(now + delay).await;
                    }
                    let _ = self.dst.shutdown().await;
                    return End::Eof;
                }
            }
            let mut wake = now + POLL;
            if let Some(at) = self.reset_at {
                wake = wake.min(at);
            }
            if let Some(Some(at)) = hold {
                wake = wake.min(at);
            }
            let ended = self.toxic_ended();
            tokio::select! {
                // Queued, and passed on at the top of the loop unless a hold began meanwhile.
                chunk = rx.recv(), if !eof && held_bytes < HOLD_BYTES => match chunk {
                    Some(chunk) => {
                        held_bytes += chunk.data.len();
                        held.push_back(chunk);
                    }
                    // The source left while its data was held: like Toxiproxy's timeout, close.
                    None if hold.is_some() => return End::Close,
                    None => eof = true,
                },
                () = sleep_until(wake) => {}
                // A hold (timeout) or an armed reset whose experiment ended lets go at the top of the loop.
                () = ended => {}
            }
        }
    }

    /// Passes one chunk through the toxics in force and writes what comes out. `Err`: the connection ends.
    async fn forward(&mut self, chunk: Chunk) -> Result<(), End> {
        let now = Instant::now();
        self.look(None, now);
        if self.in_force(now).next().is_none() {
            return self.write(&chunk.data).await;
        }
        self.chunks = self.chunks.wrapping_add(1);
        let salt = self.chunks.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.dir as u64;
        let mut data = chunk.data;
        let mut latency = Duration::ZERO;
        let mut slicer = None;
        let mut rate = None;
        let mut close_after = false;
        let mut reset = None;
        for t in self.in_force(now) {
            match &t.toxic.kind {
                ToxicKind::Latency { latency: l, jitter } => {
                    let mut rng = SmallRng::seed_from_u64(t.seed ^ salt);
                    latency = latency.saturating_add(toxic::sample_latency(*l, *jitter, &mut rng));
                }
                ToxicKind::Bandwidth { bytes_per_second } => {
                    rate = Some(rate.map_or(*bytes_per_second, |r: std::num::NonZeroU64| r.min(*bytes_per_second)));
                }
                ToxicKind::Slicer { average_size, size_variation, delay } => {
                    // The first slicer in force applies.
                    slicer.get_or_insert((*average_size, *size_variation, *delay, t.seed ^ salt));
                }
                ToxicKind::ResetPeer { timeout } => {
                    reset = Some(reset.map_or(*timeout, |r: Duration| r.min(*timeout)));
                }
                ToxicKind::LimitData { bytes } => {
                    let passed = self.passed.iter().find(|(k, _)| *k == t.key).map_or(0, |(_, n)| *n);
                    let left = usize::try_from(bytes.saturating_sub(passed)).unwrap_or(usize::MAX);
                    if data.len() >= left {
                        data.truncate(left);
                        close_after = true;
                    }
                }
                // Handled by `run`: a timeout before a chunk gets here, a slow close at the end of stream.
                ToxicKind::Timeout { .. } | ToxicKind::SlowClose { .. } => {}
            }
        }
        if let Some(timeout) = reset {
            // Like Toxiproxy's reset_peer: the data is dropped, and the reset comes `timeout` after it.
            self.reset_at.get_or_insert(now + timeout);
            return Ok(());
        }
        self.count_limits(data.len() as u64, now);
        if !latency.is_zero() {
            self.nap(chunk.at + latency).await;
        }
        match slicer {
            None => self.paced(data, rate).await?,
            Some(slicer) => self.sliced(data, slicer).await?,
        }
        if close_after {
            let _ = self.dst.shutdown().await;
            return Err(End::Close);
        }
        Ok(())
    }

    /// Writes `data` in slices of the slicer's sizes (`average`, `variation`), `delay` apart; once the
    /// slicer's experiment has ended, the rest goes whole.
    async fn sliced(&mut self, mut data: Bytes, slicer: (std::num::NonZeroU64, u64, Duration, u64)) -> Result<(), End> {
        let (average, variation, delay, seed) = slicer;
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut first = true;
        while !data.is_empty() {
            if !first && !delay.is_zero() {
                self.nap(Instant::now() + delay).await;
            }
            first = false;
            let slicing = self.in_force(Instant::now()).any(|t| matches!(t.toxic.kind, ToxicKind::Slicer { .. }));
            let n = if slicing { toxic::slice_len(average, variation, &mut rng).min(data.len()) } else { data.len() };
            let rate = self.rate(Instant::now());
            self.paced(data.split_to(n), rate).await?;
        }
        Ok(())
    }

    /// Adds `n` bytes to every limit_data toxic in force.
    fn count_limits(&mut self, n: u64, now: Instant) {
        let keys: Vec<(u64, usize)> =
            self.in_force(now).filter(|t| matches!(t.toxic.kind, ToxicKind::LimitData { .. })).map(|t| t.key).collect();
        for key in keys {
            match self.passed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, p)) => *p = p.saturating_add(n),
                None => self.passed.push((key, n)),
            }
        }
    }

    /// Writes `data`, at most at `rate` bytes per second: in pieces of a tenth of a second's worth, each
    /// sent when the link would have carried it.
    async fn paced(&mut self, mut data: Bytes, rate: Option<std::num::NonZeroU64>) -> Result<(), End> {
        let mut rate = rate;
        while !data.is_empty() {
            // The bandwidth toxic's experiment ended: the rest goes at once.
            let Some(r) = rate else { return self.write(&data).await };
            let piece = usize::try_from(r.get() / 10).unwrap_or(usize::MAX).max(1);
            let part = data.split_to(piece.min(data.len()));
            self.link_free = self.link_free.max(Instant::now()) + toxic::transfer_time(part.len(), r);
            if self.nap(self.link_free).await {
                self.link_free = Instant::now();
                rate = self.rate(Instant::now());
            }
            self.write(&part).await?;
        }
        Ok(())
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        self.dst.write_all(data).await.map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionReset => End::Reset,
            _ => End::Error,
        })?;
        let bytes = match self.dir {
            Direction::Upstream => &self.ctx.counters.bytes_upstream,
            Direction::Downstream => &self.ctx.counters.bytes_downstream,
        };
        bytes.inc_by(data.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr},
        num::NonZeroU64,
    };

    use tokio::io::duplex;

    use super::*;
    use crate::{
        experiment::{ExperimentDef, Rule},
        fault::Toxic,
        topology::{RouteId, Topology},
    };

    /// A connection on TCP listener `db` under one experiment with these toxics.
    fn setup(toxics: Vec<Toxic>) -> (ArcSwap<RuleSet>, Mutex<ConnectionRules>, TcpCounters) {
        let topology = Topology::new(vec![("db".into(), vec!["db".into()])]).with_tcp_listeners(vec!["db".into()]);
        let hour = Duration::from_secs(3600);
        let def = ExperimentDef { listeners: vec!["db".into()], ..ExperimentDef::new("t", hour, toxics) };
        let rule = Arc::new(Rule::new("e".into(), 1, &def, 1, Instant::now() + hour, Arc::default()));
        let set = Arc::new(RuleSet::build(&topology, vec![rule]));
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let conn = ConnectionRules::new(RouteId::first(), ip, Arc::clone(&set), Instant::now());
        (ArcSwap::new(set), Mutex::new(conn), Metrics::default().tcp_counters("db"))
    }

    /// Sends `data` through one downstream pipe (then end of stream); what came out, how the pipe ended, and
    /// how long it took (in the paused clock's time).
    async fn through(toxics: Vec<Toxic>, data: &[u8]) -> (Vec<u8>, End, Duration) {
        let (rules, conn, counters) = setup(toxics);
        let ctx = Ctx { rules: &rules, conn: &conn, counters: &counters };
        let (mut from, pipe_in) = duplex(64 * 1024);
        let (pipe_out, mut to) = duplex(64 * 1024);
        let start = Instant::now();
        let (end, got) = tokio::join!(pipe(pipe_in, pipe_out, Direction::Downstream, &ctx), async {
            let ((), got) = tokio::join!(
                async {
                    let _ = from.write_all(data).await;
                    let _ = from.shutdown().await;
                },
                async {
                    let mut got = Vec::new();
                    let _ = to.read_to_end(&mut got).await;
                    got
                }
            );
            got
        });
        (got, end, start.elapsed())
    }

    fn toxic(kind: ToxicKind) -> Toxic {
        Toxic { direction: Direction::Downstream, kind }
    }

    fn rate(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
    }

    #[tokio::test(start_paused = true)]
    async fn bandwidth_paces_to_the_rate() {
        let data = vec![7u8; 50_000];
        let (got, end, took) =
            through(vec![toxic(ToxicKind::Bandwidth { bytes_per_second: rate(10_000) })], &data).await;
        assert_eq!((got.len(), end), (data.len(), End::Eof));
        // 50 000 bytes at 10 000 B/s: 5 s of the paused clock, in pieces of 0.1 s.
        assert!((Duration::from_secs(5)..Duration::from_millis(5_100)).contains(&took), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn toxics_of_the_other_direction_do_nothing_here() {
        let slow = Toxic { direction: Direction::Upstream, kind: ToxicKind::Bandwidth { bytes_per_second: rate(1) } };
        let (got, end, took) = through(vec![slow], b"quick").await;
        assert_eq!((got.as_slice(), end, took), (&b"quick"[..], End::Eof, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn latencies_add_and_count_from_arrival() {
        let lat = |ms| toxic(ToxicKind::Latency { latency: Duration::from_millis(ms), jitter: Duration::ZERO });
        let (got, _, took) = through(vec![lat(200), lat(50)], b"ping").await;
        assert_eq!(got, b"ping");
        assert!((Duration::from_millis(250)..Duration::from_millis(260)).contains(&took), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_holds_everything_then_closes() {
        let (got, end, took) =
            through(vec![toxic(ToxicKind::Timeout { timeout: Some(Duration::from_secs(30)) })], b"lost").await;
        // The sender left while its data was held: the connection closes at once, nothing delivered.
        assert_eq!((got.len(), end), (0, End::Close));
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn slicer_pauses_between_pieces() {
        let data: Vec<u8> = (0..100u8).collect();
        let slicer = ToxicKind::Slicer { average_size: rate(10), size_variation: 0, delay: Duration::from_millis(10) };
        let (got, _, took) = through(vec![toxic(slicer)], &data).await;
        assert_eq!(got, data);
        // Ten pieces of 10 bytes: nine pauses.
        assert!((Duration::from_millis(90)..Duration::from_millis(95)).contains(&took), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn limit_data_passes_exactly_n_bytes() {
        let data = vec![1u8; 10_000];
        let (got, end, _) = through(vec![toxic(ToxicKind::LimitData { bytes: 4096 })], &data).await;
        assert_eq!((got.len(), end), (4096, End::Close));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_peer_drops_data_and_resets_after_its_timeout() {
        let (got, end, took) =
            through(vec![toxic(ToxicKind::ResetPeer { timeout: Duration::from_secs(2) })], b"dropped").await;
        assert_eq!((got.len(), end), (0, End::Reset));
        assert!((Duration::from_secs(2)..Duration::from_millis(2_010)).contains(&took), "{took:?}");
    }
}
