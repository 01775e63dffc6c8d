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
        // Capability calls wait on stores: one that reaches the call's deadline traps
        // (`capabilities::call`), which the call path reports as the call's timeout.
        imports: {
            "impressox:plugin/kv": trappable,
            "impressox:plugin/docs": trappable,
            "impressox:plugin/notify": trappable,
            "impressox:plugin/prices": trappable,
            "impressox:plugin/rag": trappable,
            // A counter that cannot answer (a tokenizer that fails) ends the call.
            "impressox:plugin/tokens": trappable,
        },
    });
}

pub use host_world::impressox::plugin::{
    config, docs, kv, log, notify, prices, rag, tokens, types,
};

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
    ($module:ident, $world:literal, chunker) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types": crate::bindings::types,
                    "impressox:plugin/log": crate::bindings::log,
                    "impressox:plugin/tokens": crate::bindings::tokens,
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
                    "impressox:plugin/rag": crate::bindings::rag,
                },
            });
        }
    };
}

kind_world!(feed_parser, "feed-parser", pure);
kind_world!(rule_processor, "rule-processor", pure);
kind_world!(scrape_parser, "scrape-parser", pure);
kind_world!(notify_formatter, "notify-formatter", pure);
kind_world!(doc_chunker, "doc-chunker", chunker);
kind_world!(task, "task", granted);
kind_world!(event_handler, "event-handler", granted);

/// Rows in and out of the column layout of [`types::TickBatch`]. (The SDK has the same
/// helpers for its own generated `TickBatch`: two generated types, one shape.)
mod tick_batch {
    use super::types::{Tick, TickBatch};

    impl TickBatch {
        /// A batch from rows.
        pub fn from_ticks(now_ms: i64, ticks: Vec<Tick>) -> TickBatch {
            TickBatch {
                now_ms,
                symbol_ids: ticks.iter().map(|t| t.symbol_id).collect(),
                prices: ticks.iter().map(|t| t.price).collect(),
                ts_ms: ticks.iter().map(|t| t.ts_ms).collect(),
            }
        }

        /// Number of ticks (the shortest column, should the columns disagree).
        pub fn len(&self) -> usize {
            self.symbol_ids
                .len()
                .min(self.prices.len())
                .min(self.ts_ms.len())
        }

        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The ticks as rows.
        pub fn iter(&self) -> impl Iterator<Item = Tick> + '_ {
            self.symbol_ids
                .iter()
                .zip(&self.prices)
                .zip(&self.ts_ms)
                .map(|((&symbol_id, &price), &ts_ms)| Tick {
                    symbol_id,
                    price,
                    ts_ms,
                })
        }

        /// Append one tick.
        pub fn push(&mut self, tick: Tick) {
            self.symbol_ids.push(tick.symbol_id);
            self.prices.push(tick.price);
            self.ts_ms.push(tick.ts_ms);
        }
    }
}
