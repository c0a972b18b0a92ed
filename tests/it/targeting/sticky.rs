//! Sticky targeting seen by real clients: the percentage selects clients (by header, cookie or IP), and
//! each client gets the same answer on every request.

use crate::support::*;

async fn status(c: &HttpClient, proxy: &Proxy, name: &str, value: &str) -> u16 {
    let req = request("GET", &proxy.url("/")).header(name, value).body(body("")).expect("request");
    send(c, req).await.status.as_u16()
}

#[tokio::test]
async fn a_header_keeps_each_user_in_or_out() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start("name: sticky\npercentage: 50\nsticky: { header: x-user }\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    let c = client();
    let mut users_in = 0;
    for user in 0..200 {
        let first = status(&c, &proxy, "x-user", &format!("user-{user}")).await;
        for _ in 0..2 {
            assert_eq!(status(&c, &proxy, "x-user", &format!("user-{user}")).await, first, "user {user} changed sides");
        }
        if first == 503 {
            users_in += 1;
        }
    }
    // Binomial(200, 0.5): sd 7.1; ±45 is beyond 6 sd.
    assert!((55..=145).contains(&users_in), "{users_in} of 200 users in");
}

#[tokio::test]
async fn a_cookie_keeps_each_session_in_or_out() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start("name: sticky\npercentage: 50\nsticky: { cookie: session }\nfaults: [{ abort: { http_status: 503 } }]\n")
        .await;
    let c = client();
    let mut seen = std::collections::HashSet::new();
    for s in 0..60 {
        let cookie = format!("theme=dark; session=s{s}");
        let first = status(&c, &proxy, "cookie", &cookie).await;
        // The other cookies do not matter.
        assert_eq!(status(&c, &proxy, "cookie", &format!("session=s{s}; lang=fr")).await, first);
        seen.insert(first);
    }
    // Both sides occur among 60 sessions at 50 % (each side missing: 2^-59).
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn client_ip_puts_one_client_wholly_in_or_out() {
    let proxy = proxy(upstream().await).await;
    // Every test request comes from 127.0.0.1, so the seed alone decides the side: with fixed seeds the
    // outcome is deterministic, and among seeds 1..=8 both sides occur. Within one seed every request gets
    // the same answer.
    let mut sides = std::collections::HashSet::new();
    for seed in 1..=8 {
        let e = proxy
            .start(&format!("name: ip\nseed: {seed}\npercentage: 50\nsticky: {{ client_ip: true }}\nfaults: [{{ abort: {{ http_status: 503 }} }}]\n"))
            .await;
        let c = client();
        let first = get(&c, &proxy.url("/")).await.status.as_u16();
        for _ in 0..10 {
            assert_eq!(get(&c, &proxy.url("/")).await.status.as_u16(), first);
        }
        sides.insert(first);
        proxy.stop(&e.id).await;
    }
    assert_eq!(sides.len(), 2, "{sides:?}");
}

#[tokio::test]
async fn bad_sticky_keys_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    for (sticky, field) in [
        ("{ header: \"bad header\" }", "sticky.header"),
        ("{ cookie: \"a=b\" }", "sticky.cookie"),
        ("{ client_ip: false }", "sticky.client_ip"),
        ("{}", "sticky"),
    ] {
        let fields =
            violation_fields(&proxy, &format!("name: x\nsticky: {sticky}\nfaults: [{{ abort: {{}} }}]\n")).await;
        assert_eq!(fields, [field], "{sticky}");
    }
}
