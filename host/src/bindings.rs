//! Every `wasmtime::component::bindgen!` call of the host, and nothing else.
//!
//! `host_world` generates the shared records and the host interfaces once; each plugin
//! kind's world reuses them through `with`, so a `Rule` is one Rust type across kinds and
//! each host interface is implemented once. Records derive serde so `impressox plugin run`
//! can read its input and print its output as JSON.

#![allow(missing_docs, clippy::all)]

mod host_world {
    wasmtime::component::bindgen!({
        world: "host",
        path: "../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub use host_world::impressox::plugin::{config, docs, kv, log, notify, prices, types};

macro_rules! kind_world {
    ($module:ident, $world:literal, pure) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types": crate::bindings::types,
                    "impressox:plugin/log": crate::bindings::log,
                },
            });
        }
    };
    ($module:ident, $world:literal, granted) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types": crate::bindings::types,
                    "impressox:plugin/log": crate::bindings::log,
                    "impressox:plugin/config": crate::bindings::config,
                    "impressox:plugin/kv": crate::bindings::kv,
                    "impressox:plugin/docs": crate::bindings::docs,
                    "impressox:plugin/notify": crate::bindings::notify,
                    "impressox:plugin/prices": crate::bindings::prices,
                },
            });
        }
    };
}

kind_world!(feed_parser, "feed-parser", pure);
kind_world!(rule_processor, "rule-processor", pure);
kind_world!(scrape_parser, "scrape-parser", pure);
kind_world!(notify_formatter, "notify-formatter", pure);
kind_world!(task, "task", granted);
kind_world!(event_handler, "event-handler", granted);
