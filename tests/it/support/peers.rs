//! Real servers the project did not write, started for a test: nginx (Debian's `nginx-light`, installed by
//! `.ci/install-peers.sh`). Without it a test says so and passes, unless `EDGEFAULT_REQUIRE_PEERS=1` (CI sets
//! it) makes its absence a failure.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// The address of each `server` block given, in order.
    pub addrs: Vec<SocketAddr>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A peer is missing: the test is skipped (and says so), unless peers are required.
fn missing(what: &str) {
    missing_from(what, ".ci/install-peers.sh");
}

/// A peer that `script` installs is missing.
fn missing_from(what: &str, script: &str) {
    if std::env::var("EDGEFAULT_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{what} is not installed and EDGEFAULT_REQUIRE_PEERS=1: run {script}");
    }
    eprintln!("skipped: {what} is not installed (run {script} to run this test)");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts nginx with one `server` block per entry of `servers`: each is the inside of the block, with
/// `{listen}` replaced by this server's `listen` directive's address (`127.0.0.1:PORT`). `None`: nginx is
/// not installed (and not required).
pub fn nginx(servers: &[&str]) -> Option<Nginx> {
    let Some(bin) = nginx_binary() else {
        missing("nginx");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("edgefault-nginx-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut addrs = Vec::new();
    let mut blocks = String::new();
    for s in servers {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        blocks.push_str(&format!("  server {{ {} }}\n", s.replace("{listen}", &addr.to_string())));
        addrs.push(addr);
    }
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{blocks}}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("conf");
    let child = Command::new(bin)
        .args(["-c", &path.display().to_string(), "-p", &d.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let n = Nginx { child, dir, addrs };
    for addr in &n.addrs {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Some(n)
}

/// A Python interpreter that can import every one of `modules`: the one `.ci/install-peers.sh` set up
/// (`$EDGEFAULT_CI_CACHE/py`, default `~/.cache/edgefault-ci/py`), else `python3`. `None` (the test is
/// skipped, and says so) when there is none, unless peers are required.
pub fn python(modules: &[&str]) -> Option<PathBuf> {
    // Empty is unset, as in the scripts (`${EDGEFAULT_CI_CACHE:-…}`).
    let cache = std::env::var_os("EDGEFAULT_CI_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/edgefault-ci")));
    let candidates = cache.map(|c| c.join("py/bin/python")).into_iter().chain([PathBuf::from("python3")]);
    let check = format!("import {}", modules.join(", "));
    for py in candidates {
        let ok = Command::new(&py).args(["-c", &check]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if ok.is_ok_and(|s| s.success()) {
            return Some(py);
        }
    }
    missing(&format!("Python with {}", modules.join(", ")));
    None
}

/// Runs `tests/peers/SCRIPT` with `python` and `args`; its stdout, or a panic with its stderr.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(script);
    let out = Command::new(python).arg(&path).args(args).output().expect("python runs");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's headless-capable Chromium; `None` (the test is skipped, and says so) when it is not installed,
/// unless peers are required.
pub fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        missing("chromium");
    }
    found
}

/// Headless Chromium with a profile of its own (removed by [`run_chromium`]), in a `width`×`height` window.
fn chromium_command(chromium: &std::path::Path, width: u32, height: u32) -> (Command, PathBuf) {
    let profile =
        std::env::temp_dir().join(format!("edgefault-chromium-{}-{}", std::process::id(), rand::random::<u64>()));
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        "--timeout=10000",
    ])
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--user-data-dir={}", profile.display()));
    (cmd, profile)
}

/// Runs it on `url`; its standard output.
fn run_chromium((mut cmd, profile): (Command, PathBuf), url: &str) -> String {
    let out = cmd.arg(url).stdin(Stdio::null()).output().expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads `url` in headless Chromium, with `host` resolved to `addr` (so the page is asked for by its real
/// host name). With `screenshot`, writes a PNG of a 1000×760 window there; returns the DOM as the browser
/// built it (`--dump-dom`).
pub fn browse(
    chromium: &std::path::Path,
    host: &str,
    addr: SocketAddr,
    url: &str,
    screenshot: Option<&std::path::Path>,
) -> String {
    let (mut cmd, profile) = chromium_command(chromium, 1000, 760);
    cmd.arg(format!("--host-resolver-rules=MAP {host} {addr}"));
    match screenshot {
        Some(path) => cmd.arg(format!("--screenshot={}", path.display())),
        None => cmd.arg("--dump-dom"),
    };
    run_chromium((cmd, profile), url)
}

/// A PNG of `url` in headless Chromium, in a `width`×`height` window, written to `path`.
pub fn screenshot(chromium: &std::path::Path, url: &str, path: &std::path::Path, width: u32, height: u32) {
    let (mut cmd, profile) = chromium_command(chromium, width, height);
    cmd.arg(format!("--screenshot={}", path.display()));
    run_chromium((cmd, profile), url);
}

/// A tool that `.ci/install-chart-tools.sh` installs (`helm`, `kubernetes-validate`): from its bin directory
/// (`$EDGEFAULT_CI_CACHE/bin`, default `~/.cache/edgefault-ci/bin`), else from PATH. `None` (the test is
/// skipped, and says so) when there is none, unless peers are required.
pub fn chart_tool(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("EDGEFAULT_CI_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/edgefault-ci")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = cache
        .map(|c| c.join("bin").join(name))
        .into_iter()
        .chain(std::env::split_paths(&path).map(|dir| dir.join(name)))
        .find(|p| p.is_file());
    if found.is_none() {
        missing_from(name, ".ci/install-chart-tools.sh");
    }
    found
}

/// `$EDGEFAULT_CI_CACHE` (default `~/.cache/edgefault-ci`), where the install scripts put their tools.
fn ci_cache() -> Option<PathBuf> {
    std::env::var_os("EDGEFAULT_CI_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/edgefault-ci")))
}

/// Node with the npm packages `.ci/install-peers.sh` installs into `$EDGEFAULT_CI_CACHE/node`: the
/// `node_modules` directory to put in `NODE_PATH`, when `node` can load every one of `modules` from it.
/// `None` (the test is skipped, and says so) when not, unless peers are required.
pub fn node(modules: &[&str]) -> Option<PathBuf> {
    let node_modules = ci_cache().map(|c| c.join("node/node_modules"));
    let check: String = modules.iter().map(|m| format!("require('{m}');")).collect();
    let ok = node_modules.as_ref().is_some_and(|dir| {
        Command::new("node")
            .args(["-e", &check])
            .env("NODE_PATH", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        missing(&format!("node with {}", modules.join(", ")));
        return None;
    }
    node_modules
}

/// grpcurl, as `.ci/install-peers.sh` installs it (`$EDGEFAULT_CI_CACHE/py/bin/grpcurl`), else from PATH.
/// `None` (the test is skipped, and says so) when there is none, unless peers are required.
pub fn grpcurl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ci_cache()
        .map(|c| c.join("py/bin/grpcurl"))
        .into_iter()
        .chain(std::env::split_paths(&path).map(|dir| dir.join("grpcurl")))
        .find(|p| Command::new(p).arg("-version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        missing("grpcurl");
    }
    found
}
