//! Shutdown drains, on the real binary: with SIGTERM, requests in flight over HTTP/1.1 and h2c (a slow
//! answer, a long download) finish; a WebSocket goes on echoing through the grace and then gets a close
//! frame (1001, going away) instead of a cut connection; the process then exits.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::support::*;

fn config(ws: std::net::SocketAddr, up: std::net::SocketAddr, grace: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: ws, path_prefix: /ws, upstream: \"http://{ws}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {{ bind: \"127.0.0.1:0\" }}\ndrain_grace: {grace}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_finish_and_closes_websockets_with_1001() {
    let (ws, up) = (ws_upstream().await, upstream().await);
    // A grace long enough for the download on a busy machine (debug builds at both ends): what is in
    // flight must finish within it, the WebSocket is closed at its end.
    let path = temp_file("drain.yaml", &config(ws, up, "4s"));
    let mut served = binary::serve(&["--config", &path.display().to_string()], false);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/chat", served.listener)).await.expect("handshake");
    echo_once(&mut socket, "before").await;
    let slow = get_later(&client(), &served.url("/slow?ms=1200"));
    let slow_h2 = get_later(&h2_client(), &served.url("/slow?ms=1200"));
    let download = get_later(&client(), &served.url("/big?n=8000000"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let term = Instant::now();
    served.signal("TERM");

    // Through the grace, the socket still echoes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo_once(&mut socket, "during the drain").await;
    for (name, req) in [("http/1.1", slow), ("h2c", slow_h2)] {
        let (reply, _) = req.await.expect("joined");
        assert_eq!((reply.status.as_u16(), &reply.body[..]), (200, &b"slow ok"[..]), "{name}");
    }
    let (reply, _) = download.await.expect("joined");
    assert_eq!(reply.body.len(), 8_000_000, "the download finished");

    // At the end of the grace: a close frame, 1001.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(6), socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let at = term.elapsed();
    assert!(at >= Duration::from_millis(3_900) && at < Duration::from_secs(6), "closed {at:?} after SIGTERM");
    let _ = socket.close(None).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while served.alive() {
        assert!(Instant::now() < deadline, "the process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = socket.send(Message::text("after")).await;
}
