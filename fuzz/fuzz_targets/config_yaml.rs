//! cargo fuzz run config_yaml — the body is `edgefault::fuzzing::config_yaml`, also run over `fuzz/corpus/config_yaml` by
//! `tests/it/input/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgefault::fuzzing::config_yaml(data));
