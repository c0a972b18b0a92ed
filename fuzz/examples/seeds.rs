//! Seed tools for the corpus (not a fuzz target; an ordinary program, built without the fuzzer):
//!
//! ```sh
//! cd fuzz
//! cargo run --example seeds -- proto   # corpus/experiment_proto/yaml-<file>[-<n>].bin: each spec of corpus/experiment_yaml/*.yaml
//! cargo run --example seeds -- check   # every seed of every target through its body: how far it went
//! ```
//!
//! `check` is run from `fuzz/`, where the fuzzer runs: configs name files relative to it (`../examples/…`).

use std::{
    fs,
    path::{Path, PathBuf},
};

use edgefault::{
    config::{Config, Overrides},
    document, fuzzing,
};
use prost::Message;

fn seeds(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new("corpus").join(target))
        .unwrap_or_else(|e| panic!("corpus/{target}: {e}"))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Every spec of every YAML seed, protobuf-encoded into corpus/experiment_proto.
fn proto() {
    let out = Path::new("corpus/experiment_proto");
    let mut n = 0;
    for path in seeds("experiment_yaml") {
        let Ok(text) = fs::read_to_string(&path) else { continue };
        let Ok(specs) = document::parse_specs(&text) else { continue };
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for (i, spec) in specs.iter().enumerate() {
            let file = if specs.len() == 1 { format!("yaml-{stem}.bin") } else { format!("yaml-{stem}-{i}.bin") };
            fs::write(out.join(&file), spec.encode_to_vec()).expect("write");
            n += 1;
        }
    }
    println!("wrote {n} protobuf seeds to {}", out.display());
}

fn show(target: &str, path: &Path, what: String) {
    println!("{target:17} {:40} {what}", name(path));
}

fn specs(list: &[Result<(), String>]) -> String {
    let ok = list.iter().filter(|r| r.is_ok()).count();
    let mut s = format!("{ok}/{} valid", list.len());
    for (i, r) in list.iter().enumerate() {
        if let Err(e) = r {
            s.push_str(&format!("\n{:59}[{i}] {}", "", e.chars().take(300).collect::<String>()));
        }
    }
    s
}

fn check() {
    for path in seeds("experiment_yaml") {
        let data = fs::read(&path).expect("read");
        let what = match fuzzing::experiment_yaml_outcome(&data) {
            None => "not parsed (not UTF-8 or not YAML specs)".into(),
            Some(list) => specs(&list),
        };
        show("experiment_yaml", &path, what);
    }
    for path in seeds("experiment_proto") {
        let data = fs::read(&path).expect("read");
        let what = match fuzzing::experiment_proto_outcome(&data) {
            None => "not decoded".into(),
            Some(Ok(())) => "valid".into(),
            Some(Err(e)) => format!("invalid: {}", e.chars().take(300).collect::<String>()),
        };
        show("experiment_proto", &path, what);
    }
    for path in seeds("config_yaml") {
        let data = fs::read(&path).expect("read");
        let what = match std::str::from_utf8(&data) {
            Err(_) => "not UTF-8".into(),
            Ok(text) => match Config::from_yaml(text, "seed", &Overrides::default()) {
                Ok(c) => format!(
                    "valid: {} listeners, {} tcp, {} pages, {} boot experiments",
                    c.listeners.len(),
                    c.tcp_listeners.len(),
                    c.pages.names().count(),
                    c.experiments.len()
                ),
                Err(e) => format!("invalid: {}", e.problems.join("; ").chars().take(300).collect::<String>()),
            },
        };
        fuzzing::config_yaml(&data);
        show("config_yaml", &path, what);
    }
    for path in seeds("request_path") {
        let data = fs::read(&path).expect("read");
        let what = match fuzzing::request_path_outcome(&data) {
            None => "skipped (no %% line or no request head)".into(),
            Some(o) => format!("{}; specs {}", o.stage, specs(&o.specs)),
        };
        show("request_path", &path, what);
    }
    for path in seeds("page_render") {
        let data = fs::read(&path).expect("read");
        let what = fuzzing::page_render_outcome(&data).unwrap_or_else(|| "skipped".into());
        show("page_render", &path, what);
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("proto") => proto(),
        Some("check") => check(),
        _ => eprintln!("usage: seeds proto|check"),
    }
}
