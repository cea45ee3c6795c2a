//! Generates Rust code for the agent API and the Xray/V2Ray API subset.
//! protox parses the .proto files in-process, so no system `protoc` is needed.

const PROTOS: &[&str] = &[
    "nexpoint/agent/v1/agent.proto",
    "xray/serial.proto",
    "xray/protocol.proto",
    "xray/accounts.proto",
    "xray/proxyman_command.proto",
    "xray/stats_command.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .include_file("generated.rs")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
