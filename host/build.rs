//! Generates the gRPC service from `proto/inference.proto` with a pure-Rust
//! protobuf compiler (protox), so no `protoc` install is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    let descriptors = protox::compile(["proto/inference.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Tensor bytes as `bytes::Bytes`: raw contents become tensors without a copy.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
