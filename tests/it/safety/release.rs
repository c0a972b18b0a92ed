//! Stop means now: a request held by a fault (delay, hang, a held response head, a throttled or dripped
//! body, the first byte's wait) is let go within a moment of Stop, AbortAll or expiry, and goes on as if
//! the experiment had never matched it: a pending abort after a delay is dropped, a hung request is
//! forwarded, a slowed body comes at full speed. The concurrent-fault slot is given back at once.

use std::time::{Duration, Instant};

use crate::support::*;

/// Well below every hold used here, well above a loaded CI machine's scheduling noise.
const PROMPT: Duration = Duration::from_millis(1_000);

/// Waits until the experiment has a request in its hands (matched), so the stop lands during the hold.
async fn until_held(proxy: &Proxy, id: &str) {
    assert_eventually!(proxy.server.registry().get(id).expect("kept").matched >= 1, "the request reached the proxy");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn stop_releases_a_long_delay_at_once() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: slow\nfaults: [{ delay: { fixed: 10s } }]\n").await;
    let held = get_later(&client(), &proxy.url("/"));
    until_held(&proxy, &e.id).await;
    let stopped = Instant::now();
    proxy.stop(&e.id).await;
    let (reply, at) = held.await.expect("joined");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "upstream ok");
    assert!(at.duration_since(stopped) < PROMPT, "answered {:?} after the stop", at.duration_since(stopped));
}

#[tokio::test]
async fn abort_all_forwards_a_hung_request_instead_of_its_524() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: hang\nfaults: [{ hang: { duration: 20s, respond: { http_status: 524 } } }]\n").await;
    let held = get_later(&client(), &proxy.url("/"));
    until_held(&proxy, &e.id).await;
    let stopped = Instant::now();
    assert_eq!(proxy.abort_all().await, 1);
    let (reply, at) = held.await.expect("joined");
    assert_eq!(reply.status, 200, "forwarded, not the hang's answer");
    assert!(at.duration_since(stopped) < PROMPT, "answered {:?} after the abort", at.duration_since(stopped));
}

#[tokio::test]
async fn a_pending_abort_after_a_delay_is_dropped() {
    let proxy = proxy(upstream().await).await;
    let e = proxy.start("name: both\nfaults: [{ delay: { fixed: 3s } }, { abort: { http_status: 503 } }]\n").await;
    let held = get_later(&client(), &proxy.url("/"));
    until_held(&proxy, &e.id).await;
    let stopped = Instant::now();
    proxy.abort_all().await;
    let (reply, at) = held.await.expect("joined");
    assert_eq!(reply.status, 200, "the abort went with its experiment");
    assert!(at.duration_since(stopped) < PROMPT);
}

/// Two experiments hold one request: when one stops, the request waits for the other's share only, and
/// the other's abort still answers it.
#[tokio::test]
async fn what_other_experiments_put_on_the_request_stays() {
    let proxy = proxy(upstream().await).await;
    let long = proxy.start("name: long\nfaults: [{ delay: { fixed: 10s } }]\n").await;
    proxy.start("name: short\nfaults: [{ delay: { fixed: 1500ms } }, { abort: { http_status: 502 } }]\n").await;
    let sent = Instant::now();
    let held = get_later(&client(), &proxy.url("/"));
    until_held(&proxy, &long.id).await;
    proxy.stop(&long.id).await;
    let (reply, at) = held.await.expect("joined");
    assert_eq!(reply.status, 502, "the running experiment's abort");
    let took = at.duration_since(sent);
    assert!(took >= Duration::from_millis(1_450) && took < Duration::from_millis(1_500) + PROMPT, "{took:?}");
}

#[tokio::test]
async fn expiry_releases_a_delay_longer_than_the_experiment() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: short-lived\nduration: 1s\nfaults: [{ delay: { fixed: 30s } }]\n").await;
    let sent = Instant::now();
    let (reply, at) = get_later(&client(), &proxy.url("/")).await.expect("joined");
    assert_eq!(reply.status, 200);
    assert!(at.duration_since(sent) < Duration::from_secs(1) + PROMPT, "{:?}", at.duration_since(sent));
}

#[tokio::test]
async fn a_lease_not_renewed_releases_its_held_requests() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: leased\nlease: 1s\nfaults: [{ delay: { fixed: 30s } }]\n").await;
    let sent = Instant::now();
    let (reply, at) = get_later(&client(), &proxy.url("/")).await.expect("joined");
    assert_eq!(reply.status, 200);
    assert!(at.duration_since(sent) < Duration::from_secs(1) + PROMPT, "{:?}", at.duration_since(sent));
}

#[tokio::test]
async fn a_held_response_head_and_the_first_byte_wait_are_released() {
    let up = upstream().await;
    for fault in ["first_byte_delay: { fixed: 10s }", "first_byte_delay: { fixed: 10s, head_first: true }"] {
        let proxy = proxy(up).await;
        let e = proxy.start(&format!("name: ttfb\nfaults: [{{ {fault} }}]\n")).await;
        let held = get_later(&client(), &proxy.url("/"));
        until_held(&proxy, &e.id).await;
        let stopped = Instant::now();
        proxy.stop(&e.id).await;
        let (reply, at) = held.await.expect("joined");
        assert_eq!((reply.status.as_u16(), &reply.body[..]), (200, &b"upstream ok"[..]), "{fault}");
        assert!(at.duration_since(stopped) < PROMPT, "{fault}: {:?} after the stop", at.duration_since(stopped));
    }
}

#[tokio::test]
async fn a_throttled_or_dripped_body_comes_at_full_speed_once_stopped() {
    let up = upstream().await;
    for fault in ["throttle: { bytes_per_second: 1000 }", "drip: { chunk_bytes: 10, interval: 1s }"] {
        let proxy = proxy(up).await;
        let e = proxy.start(&format!("name: slow-body\nfaults: [{{ {fault} }}]\n")).await;
        // 100 kB: 100 s at 1 kB/s, hours in 10-byte drips.
        let held = get_later(&client(), &proxy.url("/big?n=100000"));
        until_held(&proxy, &e.id).await;
        let stopped = Instant::now();
        proxy.stop(&e.id).await;
        let (reply, at) = held.await.expect("joined");
        assert_eq!(reply.body.len(), 100_000, "{fault}: the whole body");
        assert!(reply.body.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "{fault}: byte-exact");
        assert!(at.duration_since(stopped) < PROMPT, "{fault}: {:?} after the stop", at.duration_since(stopped));
    }
}

#[tokio::test]
async fn a_pending_truncate_goes_with_its_experiment() {
    let proxy = proxy(upstream().await).await;
    // The throttle holds the body back long enough for the stop to come before the cut.
    let e = proxy
        .start("name: cut\nfaults: [{ throttle: { bytes_per_second: 2000 } }, { truncate: { after_bytes: 50000 } }]\n")
        .await;
    let held = get_later(&client(), &proxy.url("/big?n=100000"));
    until_held(&proxy, &e.id).await;
    proxy.stop(&e.id).await;
    let (reply, _) = held.await.expect("joined");
    assert_eq!(reply.body.len(), 100_000, "not cut");
}

#[tokio::test]
async fn held_requests_give_their_fault_slot_back_when_stopped() {
    let up = upstream().await;
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\nlimits: {{ max_active_faults: 2 }}\n"
    ))
    .await;
    let e = proxy.start("name: hold\nfaults: [{ delay: { fixed: 30s } }]\n").await;
    let c = client();
    let held = [get_later(&c, &proxy.url("/")), get_later(&c, &proxy.url("/"))];
    assert_eventually!(proxy.server.registry().get(&e.id).expect("kept").matched >= 2, "both held");
    proxy.stop(&e.id).await;
    for h in held {
        assert_eq!(h.await.expect("joined").0.status, 200);
    }
    // Both slots are free again: a new experiment's faults apply to two requests at once.
    let e = proxy.start("name: again\nfaults: [{ delay: { fixed: 300ms } }, { abort: { http_status: 503 } }]\n").await;
    let url = proxy.url("/");
    let (a, b) = tokio::join!(get(&c, &url), get(&c, &url));
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (503, 503));
    assert_eq!(proxy.server.registry().get(&e.id).expect("kept").aborted, 2);
}
