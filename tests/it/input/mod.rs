//! Bad input: the fuzz targets' seed corpus and property tests.

mod fuzz_corpus;
mod properties;
