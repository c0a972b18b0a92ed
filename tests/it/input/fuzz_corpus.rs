//! The fuzz targets' bodies (`edgefault::fuzzing`) over the seed corpus committed in `fuzz/corpus/`, so
//! every CI run exercises them without a fuzzer. A panic here is the bug the fuzzer would find; the inputs
//! the fuzzer found crashing are kept there as `crash-*` seeds, so each is a regression test too.

use std::path::{Path, PathBuf};

/// The seeds of a target, in name order.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

fn each_seed(target: &str, body: fn(&[u8])) -> usize {
    let seeds = seeds(target);
    for (path, data) in &seeds {
        let result = std::panic::catch_unwind(|| body(data));
        assert!(result.is_ok(), "fuzz target {target} panicked on {}", path.display());
    }
    seeds.len()
}

#[test]
fn experiment_yaml_seeds() {
    assert!(each_seed("experiment_yaml", edgefault::fuzzing::experiment_yaml) >= 10);
}

#[test]
fn config_yaml_seeds() {
    assert!(each_seed("config_yaml", edgefault::fuzzing::config_yaml) >= 3);
}

#[test]
fn experiment_proto_seeds() {
    assert!(each_seed("experiment_proto", edgefault::fuzzing::experiment_proto) >= 2);
}

#[test]
fn request_path_seeds() {
    assert!(each_seed("request_path", edgefault::fuzzing::request_path) >= 30);
    // A seed the harness skips (no `%%` line, no request head it can build) never reaches the data plane.
    for (path, data) in seeds("request_path") {
        let outcome = edgefault::fuzzing::request_path_outcome(&data);
        assert!(outcome.is_some(), "{} is skipped by request_path", path.display());
    }
}

#[test]
fn page_render_seeds() {
    assert!(each_seed("page_render", edgefault::fuzzing::page_render) >= 30);
    // Some seeds are refused on purpose (an unclosed placeholder, a config the loader refuses); most render.
    let rendered =
        seeds("page_render").iter().filter(|(_, data)| edgefault::fuzzing::page_render_outcome(data).is_some()).count();
    assert!(rendered >= 25, "only {rendered} page_render seeds render a page");
}

/// The inputs libFuzzer found crashing, kept in the corpus: each reaches the check it once broke.
#[test]
fn crashes_found_by_the_fuzzer_stay_fixed() {
    let seed = |target: &str, name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target).join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // `te: trailers` then `te: gzip`: the second value went upstream (src/proxy/headers.rs).
    let outcome = edgefault::fuzzing::request_path_outcome(&seed("request_path", "crash-te-second-value.txt"));
    assert_eq!(outcome.map(|o| o.stage), Some("untouched"), "the request reaches the forwarded-head check");
    // Host `;<` on the edge page: its escaped form `;&lt;` before `<br>` holds `;<`, which the checker took
    // for the raw host; host `\0<` then broke the checker's first fix (src/fuzzing.rs).
    for name in ["crash-host-ends-in-lt.bin", "crash-host-nul-lt.bin"] {
        let outcome = edgefault::fuzzing::page_render_outcome(&seed("page_render", name));
        assert_eq!(outcome.as_deref(), Some("edge"), "{name}");
    }
}
