//! cargo fuzz run request_path — the body is `edgefault::fuzzing::request_path`, also run over `fuzz/corpus/request_path` by
//! `tests/it/input/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgefault::fuzzing::request_path(data));
