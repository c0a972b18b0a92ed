//! cargo fuzz run experiment_proto — the body is `edgefault::fuzzing::experiment_proto`, also run over `fuzz/corpus/experiment_proto` by
//! `tests/it/input/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgefault::fuzzing::experiment_proto(data));
