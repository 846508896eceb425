//! Compiles `proto/` with the vendored `protoc`, so a fresh machine needs no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Outputs in a fixed order, so a response (and a test) is the same on every run.
    config.btree_map([
        ".arbiter.v1.DecisionOutputs",
        ".arbiter.v1.PolicyExplanation.outputs",
    ]);
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("arbiter_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                PathBuf::from("proto/arbiter/v1/authorizer.proto"),
                PathBuf::from("proto/arbiter/v1/admin.proto"),
            ],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
