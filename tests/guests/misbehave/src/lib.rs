//! An event handler that misbehaves on request, for the runtime's limit tests. The event's
//! `do` field says how: `spin` loops forever, `alloc` allocates without bound, `trap`
//! panics (a trap), `big` returns a huge dead-letter reason, anything else acks.

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
            _ => Outcome::Ack,
        }
    }
}

export_event_handler!(Misbehave);
