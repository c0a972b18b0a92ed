//! `body`: replace and corrupt, seen by a real client, on small bodies with a content-length and on large
//! streamed ones.

use crate::support::*;

fn differing(got: &[u8], n: u64) -> Vec<u64> {
    (0..n).filter(|i| got.get(*i as usize) != Some(&pattern(*i))).collect()
}

#[tokio::test]
async fn replace_sends_the_new_body_with_its_length_and_type() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start(
            "name: replace\nfaults: [{ body: { replace: { text: '{\"maintenance\":true}', content_type: application/json } } }]\n",
        )
        .await;
    for c in [client(), h2_client()] {
        let r = get(&c, &proxy.url("/")).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], br#"{"maintenance":true}"#);
        assert_eq!(r.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        assert!(r.headers.contains_key("x-upstream"), "the upstream's other headers stay");
    }
    let raw = get(&client(), &proxy.url("/")).await;
    assert_eq!(raw.headers.get("content-length").map(|v| v.as_bytes()), Some(&b"20"[..]));
}

#[tokio::test]
async fn replace_drops_a_large_streamed_body() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: replace\nfaults: [{ body: { replace: { data: aGVsbG8= } } }]\n").await;
    let r = get(&client(), &proxy.url("/big?n=20000000")).await;
    assert_eq!(&r.body[..], b"hello");
}

#[tokio::test]
async fn corrupt_offsets_flips_exactly_those_bytes_and_keeps_the_length() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: corrupt\nfaults: [{ body: { corrupt: { offsets: [0, 65535, 65536, 199999] } } }]\n").await;
    let r = get(&client(), &proxy.url("/big?n=200000")).await;
    assert_eq!(r.body.len(), 200_000);
    assert_eq!(differing(&r.body, 200_000), [0, 65_535, 65_536, 199_999]);
    for i in [0usize, 65_535, 65_536, 199_999] {
        assert_eq!((r.body[i] ^ pattern(i as u64)).count_ones(), 1, "one bit flipped at {i}");
    }
}

#[tokio::test]
async fn corrupt_keeps_the_content_length_so_the_client_reads_garbage_of_the_right_length() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: garble\nfaults: [{ body: { corrupt: { percentage: 100, garble: true } } }]\n").await;
    let r = get(&client(), &proxy.url("/")).await;
    assert_eq!(r.headers.get("content-length").map(|v| v.as_bytes()), Some(&b"11"[..]));
    assert_eq!(r.body.len(), 11);
    assert!(r.body.iter().zip(b"upstream ok").all(|(a, b)| a != b), "every byte garbled: {:?}", r.body);
}

#[tokio::test]
async fn corruption_is_deterministic_with_the_seed() {
    let proxy = proxy(upstream().await).await;
    let yaml = "name: seeded\nseed: 42\nfaults: [{ body: { corrupt: { count: 25 } } }]\n";
    let mut runs = Vec::new();
    for _ in 0..2 {
        let e = proxy.start(yaml).await;
        runs.push(get(&client(), &proxy.url("/big?n=100000")).await.body);
        proxy.stop(&e.id).await;
    }
    let d = differing(&runs[0], 100_000);
    assert_eq!(d.len(), 25);
    // Without a content-length the window is the first 65536 bytes.
    assert!(d.iter().all(|i| *i < 65_536), "{d:?}");
    assert_eq!(runs[0], runs[1], "same seed, same corruption");
}

#[tokio::test]
async fn a_share_of_a_large_body_is_corrupted_as_it_streams() {
    let proxy = proxy(upstream().await).await;
    proxy.start("name: share\nseed: 1\nfaults: [{ body: { corrupt: { percentage: 0.1 } } }]\n").await;
    let n = 4_000_000u64;
    let r = get(&client(), &proxy.url(&format!("/big?n={n}"))).await;
    assert_eq!(r.body.len() as u64, n);
    let bad = differing(&r.body, n).len();
    // Binomial(4e6, 0.001): mean 4000, sd ~63; ±600 is beyond 9 sd.
    assert!((3400..=4600).contains(&bad), "{bad}");
}

#[tokio::test]
async fn corrupt_and_truncate_combine() {
    let proxy = proxy(upstream().await).await;
    proxy
        .start("name: both\nfaults: [{ body: { corrupt: { offsets: [5] } } }, { truncate: { after_bytes: 10 } }]\n")
        .await;
    let resp = client()
        .request(http::Request::get(proxy.url("/big?n=100")).body(body("")).expect("request"))
        .await
        .expect("head");
    let mut b = resp.into_body();
    let mut data = Vec::new();
    while let Some(Ok(f)) = http_body_util::BodyExt::frame(&mut b).await {
        if let Ok(d) = f.into_data() {
            data.extend_from_slice(&d);
        }
    }
    assert_eq!(data.len(), 10);
    assert_eq!(differing(&data, 10), [5]);
}

#[tokio::test]
async fn bad_body_faults_are_refused_with_their_field_paths() {
    let proxy = proxy(upstream().await).await;
    let bad = "name: bad\nfaults:\n  - body: {}\n  - body: { corrupt: {} }\n  - body: { corrupt: { percentage: 0 } }\n  - body: { corrupt: { count: 0 } }\n  - body: { corrupt: { offsets: [1], within: 5 } }\n  - body: { replace: { text: a, data: YQ==, content_type: \"a\\nb\" } }\n";
    let fields = violation_fields(&proxy, bad).await;
    assert_eq!(
        fields,
        [
            "faults[0].body",
            "faults[1].body.corrupt",
            "faults[2].body.corrupt.percentage",
            "faults[3].body.corrupt.count",
            "faults[4].body.corrupt.within",
            "faults[5].body.replace.data",
            "faults[5].body.replace.content_type",
        ]
    );
}
