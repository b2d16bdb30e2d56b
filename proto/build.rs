//! Compiles `proto/strata/v1/*.proto` with protox (no system `protoc`), then
//! generates prost types and their proto3-JSON serde impls with pbjson.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let proto = "proto/strata/v1/strata.proto";
    println!("cargo:rerun-if-changed={proto}");

    let descriptors = protox::compile([proto], ["proto"])?;
    let descriptor_path = out_dir.join("strata_descriptor.bin");
    fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&[proto], &["proto"])?;

    pbjson_build::Builder::new()
        .register_descriptors(&fs::read(&descriptor_path)?)?
        .ignore_unknown_fields()
        .build(&[".strata"])?;
    Ok(())
}
