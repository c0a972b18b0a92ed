//! cargo fuzz run experiment_yaml — the body is `edgefault::fuzzing::experiment_yaml`, also run over `fuzz/corpus/experiment_yaml` by
//! `tests/it/input/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgefault::fuzzing::experiment_yaml(data));
