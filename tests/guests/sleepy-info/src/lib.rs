//! An event handler whose `info()` sleeps for a minute, for the loader's deadline test: the
//! probe that asks a component who it is runs under the call deadline too, and a sleep is
//! a wait in `wasi:io/poll`, in host code, where the epoch cannot reach.

#[cfg(target_arch = "wasm32")]
mod component {
    use impressox_plugin_sdk::bindings::event_handler as world;
    use impressox_plugin_sdk::types::{Event, Outcome, PluginInfo, PluginKind};

    struct SleepyInfo;

    impl world::exports::impressox::plugin::handle_event::Guest for SleepyInfo {
        fn info() -> PluginInfo {
            std::thread::sleep(std::time::Duration::from_secs(60));
            PluginInfo {
                name: "sleepy-info".into(),
                version: "0.1.0".into(),
                kind: PluginKind::EventHandler,
                description: String::new(),
            }
        }

        fn handle(_event: Event) -> Outcome {
            Outcome::Ack
        }
    }

    world::__export_event_handler_world!(SleepyInfo with_types_in world);
}
