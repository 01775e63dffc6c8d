//! Paths of the `.wasm` components built by this crate's build script: the bundled
//! plugins (`THRESHOLD`, `BINANCE`, ...) and the test guests (`GUEST_MISBEHAVE`, ...).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
