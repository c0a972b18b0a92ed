//! cargo fuzz run page_render — the body is `edgefault::fuzzing::page_render`, also run over `fuzz/corpus/page_render` by
//! `tests/it/input/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgefault::fuzzing::page_render(data));
