//! A request that starts after StartExperiment returned sees the experiment; one that starts after
//! StopExperiment returned does not — on new connections, on an HTTP/1.1 keep-alive connection opened
//! before the change, and on an HTTP/2 connection opened before it.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const ABORT: &str = "name: flip\nfaults: [{ abort: { http_status: 503 } }]\n";
const ROUNDS: usize = 25;

#[tokio::test]
async fn new_connections_see_every_change() {
    let proxy = proxy(upstream().await).await;
    for _ in 0..ROUNDS {
        let e = proxy.start(ABORT).await;
        assert_eq!(get(&client(), &proxy.url("/")).await.status, 503);
        proxy.stop(&e.id).await;
        assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
    }
}

#[tokio::test]
async fn an_http1_keep_alive_connection_opened_before_sees_every_change() {
    let proxy = proxy(upstream().await).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let status = async |sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>| {
        sender.ready().await.expect("connection still open");
        let req = Request::get("/").header("host", "localhost").body(Empty::new()).expect("req");
        let resp = sender.send_request(req).await.expect("response");
        let s = resp.status().as_u16();
        resp.into_body().collect().await.expect("body");
        s
    };
    assert_eq!(status(&mut sender).await, 200);
    for _ in 0..ROUNDS {
        let e = proxy.start(ABORT).await;
        assert_eq!(status(&mut sender).await, 503);
        proxy.stop(&e.id).await;
        assert_eq!(status(&mut sender).await, 200);
    }
}

#[tokio::test]
async fn an_http2_connection_opened_before_sees_every_change() {
    let proxy = proxy(upstream().await).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    tokio::spawn(conn);
    let url = proxy.url("/");
    let status = async |sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>| {
        sender.ready().await.expect("connection still open");
        let req = Request::get(url.as_str()).body(Empty::new()).expect("req");
        let resp = sender.send_request(req).await.expect("response");
        let s = resp.status().as_u16();
        resp.into_body().collect().await.expect("body");
        s
    };
    assert_eq!(status(&mut sender).await, 200);
    for _ in 0..ROUNDS {
        let e = proxy.start(ABORT).await;
        assert_eq!(status(&mut sender).await, 503);
        proxy.stop(&e.id).await;
        assert_eq!(status(&mut sender).await, 200);
    }
}
