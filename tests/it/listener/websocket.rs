//! WebSocket traffic through the proxy: upgrades under load, and the faults a WebSocket client meets at an
//! edge — a refused upgrade, a slow one, a connection dropped (or reset) some time after it opened.

use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

async fn ws_proxy() -> Proxy {
    let ws = ws_upstream().await;
    let up = upstream().await;
    proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: ws, path_prefix: /ws, upstream: \"http://{ws}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\n"
    ))
    .await
}

#[tokio::test]
async fn many_websockets_at_once_echo_every_message() {
    let proxy = ws_proxy().await;
    let url = format!("ws://{}/ws/chat", proxy.addr);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..64 {
        let url = url.clone();
        clients.spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("handshake");
            for i in 0..25 {
                echo_once(&mut socket, &format!("client {c} message {i}")).await;
            }
            socket.close(None).await.expect("close");
        });
    }
    let mut done = 0;
    while let Some(r) = clients.join_next().await {
        r.expect("client");
        done += 1;
    }
    assert_eq!(done, 64);
}

#[tokio::test]
async fn an_upgrade_can_be_refused_with_a_status() {
    let proxy = ws_proxy().await;
    proxy.start("name: no-ws\nmatch: { routes: [ws] }\nfaults: [{ abort: { http_status: 503, page: edge } }]\n").await;
    match tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", proxy.addr)).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected an HTTP 503 refusal, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn a_delayed_upgrade_opens_late() {
    let proxy = ws_proxy().await;
    proxy.start("name: slow-ws\nmatch: { routes: [ws] }\nfaults: [{ delay: { fixed: 250ms } }]\n").await;
    let t = Instant::now();
    let (mut socket, resp) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", proxy.addr)).await.expect("handshake");
    assert_eq!(resp.status(), 101);
    assert!(t.elapsed() >= Duration::from_millis(250), "opened after {:?}", t.elapsed());
    echo_once(&mut socket, "still works").await;
}

/// Echoes until the connection ends; returns how long it stayed open and how it ended.
async fn echo_until_dropped(proxy: &Proxy) -> (Duration, WsError) {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", proxy.addr)).await.expect("handshake");
    let opened = Instant::now();
    let deadline = opened + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the connection was never dropped");
        if let Err(e) = socket.send(Message::text("ping")).await {
            return (opened.elapsed(), e);
        }
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("no stall") {
            Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Some(Err(e)) => return (opened.elapsed(), e),
            None => return (opened.elapsed(), WsError::ConnectionClosed),
        }
    }
}

#[tokio::test]
async fn a_websocket_is_dropped_after_a_time_without_a_closing_handshake() {
    let proxy = ws_proxy().await;
    proxy.start("name: drop-ws\nmatch: { routes: [ws] }\nfaults: [{ disconnect: { after: 300ms } }]\n").await;
    let (open, err) = echo_until_dropped(&proxy).await;
    assert!(open >= Duration::from_millis(290), "dropped after {open:?}");
    assert!(
        matches!(err, WsError::Protocol(_) | WsError::ConnectionClosed | WsError::AlreadyClosed),
        "closed without a close frame: {err:?}"
    );
}

#[tokio::test]
async fn a_websocket_can_be_reset_after_a_time() {
    let proxy = ws_proxy().await;
    proxy
        .start("name: rst-ws\nmatch: { routes: [ws] }\nfaults: [{ disconnect: { after: 300ms, reset: true } }]\n")
        .await;
    let (open, err) = echo_until_dropped(&proxy).await;
    assert!(open >= Duration::from_millis(290), "reset after {open:?}");
    match err {
        WsError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        other => panic!("expected a connection reset, got {other:?}"),
    }
}

#[tokio::test]
async fn disconnect_leaves_plain_requests_alone() {
    let proxy = ws_proxy().await;
    proxy.start("name: drop-all\nfaults: [{ disconnect: { after: 50ms } }]\n").await;
    let r = get(&client(), &proxy.url("/slow?ms=200")).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"slow ok");
}

/// The kill switch disarms a disconnect already armed on an open socket (the socket stays up past the
/// disconnect's time), and stopping a throttle lets messages through at full speed.
#[tokio::test]
async fn abort_all_disarms_a_disconnect_armed_on_an_open_socket() {
    let proxy = ws_proxy().await;
    proxy.start("name: drop-ws\nmatch: { routes: [ws] }\nfaults: [{ disconnect: { after: 1s } }]\n").await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", proxy.addr)).await.expect("handshake");
    let opened = Instant::now();
    echo_once(&mut socket, "before").await;
    assert_eq!(proxy.abort_all().await, 1);
    while opened.elapsed() < Duration::from_millis(1_800) {
        echo_once(&mut socket, "still open past the disconnect's time").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    socket.close(None).await.expect("a clean close, by the client");
}
