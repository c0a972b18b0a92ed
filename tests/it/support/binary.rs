//! The real `edgefault` binary as a user runs it: started with arguments, its ports read from its JSON
//! logs, signalled like an orchestrator does, killed when the test ends.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A running `edgefault serve`.
pub struct Served {
    pub child: Child,
    /// The first listener's address.
    pub listener: SocketAddr,
    pub control: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// Its stderr, one log line at a time.
    pub logs: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a JSON log line's `addr` field.
fn addr_of(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let a = v.get("addr")?.as_str()?;
    a.trim_start_matches("Some(").trim_end_matches(')').parse().ok()
}

/// Starts `edgefault COMMAND --log-format json ARGS…` (info logs, no admin token from the environment) and
/// passes its stderr on one line at a time.
fn spawn_logged(command: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgefault"))
        .arg(command)
        .args(["--log-format", "json"])
        .args(args)
        .env_remove("EDGEFAULT_ADMIN_TOKEN")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawns");
    let (tx, logs) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, logs)
}

/// Starts `edgefault serve --log-format json ARGS…` and waits until it logs its listener and control
/// ports (and its admin port when `admin` is true).
pub fn serve(args: &[&str], admin: bool) -> Served {
    let (child, logs) = spawn_logged("serve", args);
    let (mut listener, mut control, mut admin_addr) = (None, None, None);
    while listener.is_none() || control.is_none() || (admin && admin_addr.is_none()) {
        let line = logs.recv_timeout(Duration::from_secs(20)).expect("the server logs its ports");
        match () {
            () if line.contains("\"listening\"") && listener.is_none() => listener = addr_of(&line),
            () if line.contains("control service listening") => control = addr_of(&line),
            () if line.contains("admin endpoint listening") => admin_addr = addr_of(&line),
            () => {}
        }
    }
    Served { child, listener: listener.expect("listener"), control: control.expect("control"), admin: admin_addr, logs }
}

/// A running `edgefault controller`.
pub struct ControllerProcess {
    pub child: Child,
    pub control: SocketAddr,
    pub logs: mpsc::Receiver<String>,
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ControllerProcess {
    pub fn url(&self) -> String {
        format!("http://{}", self.control)
    }
}

/// Starts `edgefault controller --log-format json ARGS…` and waits until it logs its port.
pub fn controller(args: &[&str]) -> ControllerProcess {
    let (child, logs) = spawn_logged("controller", args);
    let mut control = None;
    while control.is_none() {
        let line = logs.recv_timeout(Duration::from_secs(20)).expect("the controller logs its port");
        if line.contains("controller listening") {
            control = addr_of(&line);
        }
    }
    ControllerProcess { child, control: control.expect("addr"), logs }
}

impl Served {
    /// Waits up to 10 s for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        loop {
            let line = self
                .logs
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Sends the signal named `sig` ("HUP", "USR1", "TERM").
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success(), "kill -{sig}");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn control_url(&self) -> String {
        format!("http://{}", self.control)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }
}
