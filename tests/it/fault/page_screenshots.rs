//! The built-in pages as a visitor sees them: headless Chromium (Debian's, installed by
//! `.ci/install-peers.sh`) loads each page through the proxy by its host name, and what the browser shows
//! is checked. With `EDGEFAULT_UPDATE_SCREENSHOTS=1` the screenshots are written to `docs/img/`, where
//! docs/faults.md shows them.

use std::path::PathBuf;

use crate::support::{peers, *};

/// (path, experiment, a text the visitor must see, the screenshot's file name).
const PAGES: [(&str, &str, &str, &str); 5] = [
    (
        "/edge-522",
        "{ abort: { http_status: 522, page: edge, page_location: lhr } }",
        "Connection timed out",
        "page-edge-522.png",
    ),
    (
        "/edge-500",
        "{ abort: { http_status: 500, page: edge, page_location: fra } }",
        "Internal server error",
        "page-edge-500.png",
    ),
    ("/edge-403", "{ abort: { http_status: 403, page: edge, page_location: ams } }", "Error 1020", "page-edge-403.png"),
    ("/cdn-503", "{ abort: { page: cdn, page_location: ams } }", "Guru Mediation", "page-cdn-503.png"),
    ("/generic-503", "{ abort: { http_status: 503, page: generic } }", "Service Unavailable", "page-generic-503.png"),
];

#[tokio::test]
async fn browsers_render_the_pages_a_visitor_would_take_for_real() {
    let Some(chromium) = peers::chromium() else { return };
    let proxy = proxy(upstream().await).await;
    for (path, fault, _, _) in PAGES {
        proxy
            .start(&format!(
                "name: page{}\nmatch: {{ path_exact: {path} }}\nfaults: [{fault}]\n",
                path.replace('/', "-")
            ))
            .await;
    }
    let update = std::env::var("EDGEFAULT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    let dir = if update {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img")
    } else {
        std::env::temp_dir().join(format!("edgefault-screens-{}", std::process::id()))
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let host = "shop.example.com";
    for (path, _, seen, file) in PAGES {
        let url = format!("http://{host}{path}");
        let (browser, addr) = (chromium.clone(), proxy.addr);
        let dom =
            tokio::task::spawn_blocking(move || peers::browse(&browser, host, addr, &url, None)).await.expect("browse");
        assert!(dom.contains(seen), "{path}: the browser shows {seen:?}: {dom}");
        if path.starts_with("/edge") {
            // What a visitor of the provider's pages looks for: the ray id, the city, their IP on a click.
            assert!(dom.contains("Ray ID:"), "{path}: {dom}");
            assert!(dom.contains("<summary>Click to reveal</summary>127.0.0.1"), "{path}: {dom}");
            assert!(dom.contains(&format!("<title>{host} | ")), "{path}: the host in the title: {dom}");
        }
        let shot = dir.join(file);
        let _ = std::fs::remove_file(&shot);
        let (chromium, url, s) = (chromium.clone(), format!("http://{host}{path}"), shot.clone());
        tokio::task::spawn_blocking(move || peers::browse(&chromium, host, addr, &url, Some(&s))).await.expect("shot");
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{file} is a PNG");
        // A blank 1000×760 window compresses to a few hundred bytes; a page with text is tens of KB.
        assert!(png.len() > 8_000, "{file} holds a rendered page ({} bytes)", png.len());
    }
    if !update {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Nothing else was touched.
    assert_eq!(get(&client(), &proxy.url("/")).await.status, 200);
}
