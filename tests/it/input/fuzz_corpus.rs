//! The fuzz targets' bodies (`edgefault::fuzzing`) over the seed corpus committed in `fuzz/corpus/`, so
//! every CI run exercises them without a fuzzer. A panic here is the bug the fuzzer would find.

use std::path::Path;

fn each_seed(target: &str, body: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(result.is_ok(), "fuzz target {target} panicked on {}", path.display());
        n += 1;
    }
    n
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
