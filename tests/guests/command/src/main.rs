//! A plain WASI command: a valid component, but not a plugin of any world.

fn main() {
    println!("hello from a command component");
}
