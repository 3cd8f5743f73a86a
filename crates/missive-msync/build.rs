//! Compiles `proto/easemob.proto` with the pure-Rust `protox` front end, so that building the
//! crate never needs a system `protoc`. The generated module lands in `OUT_DIR` and is
//! included by `src/lib.rs` as `pb`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/easemob.proto");
    let fds = protox::compile(["proto/easemob.proto"], ["proto"])?;
    prost_build::Config::new()
        // `Bytes` payloads let a server fan one encoded message out to many sessions
        // without copying it for each.
        .bytes(["."])
        .compile_fds(fds)?;
    Ok(())
}
