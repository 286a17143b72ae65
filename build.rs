//! Compiles proto/examcap/v1/*.proto into the gRPC server and client code
//! and a file descriptor set for reflection. protoc comes from the
//! `protoc-bin-vendored` crate, so no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Safety of intent: build scripts are single-threaded at this point.
    std::env::set_var("PROTOC", protoc);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/examcap/v1/scenario.proto",
        "proto/examcap/v1/plan.proto",
        "proto/examcap/v1/drill.proto",
        "proto/examcap/v1/registration.proto",
        "proto/examcap/v1/reschedule.proto",
        "proto/examcap/v1/audit.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("examcap_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
