//! Compiles `proto/easemob.proto` (and the three `gateway_*.proto` of SDK 5's sync gateway)
//! with the pure-Rust `protox` front end, so that building the crate never needs a system
//! `protoc`. The generated modules land in `OUT_DIR` and are included by `src/lib.rs` as `pb`
//! and `gateway`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/easemob.proto",
        "proto/gateway_roster.proto",
        "proto/gateway_sessionlist.proto",
        "proto/gateway_joinedgroups.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        // `Bytes` payloads let a server fan one encoded message out to many sessions
        // without copying it for each.
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
