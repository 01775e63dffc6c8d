//! An event handler that misbehaves on request, for the runtime's limit tests. The event's
//! `do` field says how: `spin` loops forever, `alloc` allocates without bound, `trap`
//! panics (a trap), `big` returns a huge dead-letter reason, `sleep` sleeps 30 s (waiting
//! in `wasi:io/poll`), `poll-spin` polls a ready clock in a loop, `print` writes a line
//! to stdout and one to stderr, `flood` writes 4 MiB to stdout, `env` dead-letters with
//! what it sees of its environment, `pollables` holds clock subscriptions without bound,
//! anything else acks.

use impressox_plugin_sdk::types::{Event, Outcome};
use impressox_plugin_sdk::{EventHandler, export_event_handler};

struct Misbehave;

impl EventHandler for Misbehave {
    const NAME: &'static str = "misbehave";

    fn handle(event: Event) -> Outcome {
        let action = event
            .fields
            .iter()
            .find(|f| f.name == "do")
            .map(|f| f.value.as_str());
        match action {
            Some("spin") => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            Some("trap") => panic!("asked to trap"),
            Some("big") => Outcome::DeadLetter("x".repeat(4 << 20)),
            Some("sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                Outcome::Ack
            }
            Some("poll-spin") => loop {
                let ready = wasip2::clocks::monotonic_clock::subscribe_duration(0);
                wasip2::io::poll::poll(&[&ready]);
            },
            Some("print") => {
                println!("hello from misbehave on stdout");
                eprintln!("hello from misbehave on stderr");
                Outcome::Ack
            }
            Some("flood") => {
                let line = "z".repeat(1023);
                for _ in 0..4096 {
                    println!("{line}");
                }
                Outcome::Ack
            }
            Some("env") => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                let args: Vec<String> = std::env::args().collect();
                let cwd = std::env::current_dir().ok();
                let root = std::fs::read_dir("/").is_ok();
                Outcome::DeadLetter(format!(
                    "vars={vars:?} args={args:?} cwd={cwd:?} root_readable={root}"
                ))
            }
            Some("pollables") => {
                let mut held = Vec::new();
                loop {
                    held.push(wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40));
                }
            }
            _ => Outcome::Ack,
        }
    }
}

export_event_handler!(Misbehave);
