//! Compiles `proto/edgefault/v1/*.proto` with a vendored protoc: tonic/prost code, the descriptor set (for
//! server reflection and for reading experiment files), and serde impls in the protobuf JSON mapping.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };

    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("edgefault_descriptor.bin");
    let protos = [
        "proto/edgefault/v1/experiment.proto",
        "proto/edgefault/v1/control.proto",
        "proto/edgefault/v1/safety.proto",
        "proto/edgefault/v1/guard.proto",
        "proto/edgefault/v1/realism.proto",
        "proto/edgefault/v1/traffic.proto",
        "proto/edgefault/v1/tcp.proto",
        "proto/edgefault/v1/scenario.proto",
        "proto/edgefault/v1/events.proto",
        "proto/edgefault/v1/selector.proto",
        "proto/edgefault/v1/fleet.proto",
        "proto/edgefault/v1/history.proto",
    ];

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&protos, &["proto"])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new().register_descriptors(&descriptors)?.build(&[".edgefault"])?;

    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
