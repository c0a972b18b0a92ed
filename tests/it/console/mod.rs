//! The console at `/console` on the admin port: its JSON API (`api`), and the page driven in a real
//! headless browser (`browser`).

mod api;
mod browser;
mod fleet;

use crate::support::*;

pub const ADMIN: &str = "admin-secret-0123456789";
pub const VIEWER: &str = "viewer-secret-0123456789";
pub const SIDECAR: &str = "sidecar-secret-0123456789";

/// A proxy (listener `web`, routes `api` and `default` to the test upstream) with an admin port; with
/// `tokens`, the control service has an admin token `ops`, a read-only `viewer` and a sidecar `pod`.
/// Returns the proxy, the admin port's base URL and the audit log's path.
pub async fn server(tokens: bool) -> (Proxy, String, std::path::PathBuf) {
    let up = upstream().await;
    let audit = temp_file("audit.jsonl", "");
    let control = if tokens {
        let file = temp_file(
            "tokens.yaml",
            &format!("- {{ name: ops, role: admin, token: {ADMIN} }}\n- {{ name: viewer, role: read-only, token: {VIEWER} }}\n- {{ name: pod, role: sidecar, token: {SIDECAR} }}\n"),
        );
        format!("{{ bind: \"127.0.0.1:0\", tokens_file: {:?} }}", file.display().to_string())
    } else {
        "{ bind: \"127.0.0.1:0\" }".to_owned()
    };
    let proxy = proxy_yaml(&format!(
        "listeners:\n  - name: web\n    bind: 127.0.0.1:0\n    routes:\n      - {{ name: api, path_prefix: /api/, upstream: \"http://{up}\" }}\n      - {{ name: default, upstream: \"http://{up}\" }}\ncontrol: {control}\nadmin: {{ bind: \"127.0.0.1:0\" }}\naudit: {{ path: {:?} }}\n",
        audit.display().to_string()
    ))
    .await;
    let admin = format!("http://{}", proxy.server.admin_addr().expect("admin port"));
    (proxy, admin, audit)
}

/// The audit log's lines.
pub fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).expect("audit").lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}
