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
    if std::env::var("EDGEFAULT_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("{what} is not installed and EDGEFAULT_REQUIRE_PEERS=1: run .ci/install-peers.sh");
    }
    eprintln!("skipped: {what} is not installed (run .ci/install-peers.sh to run this test)");
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
