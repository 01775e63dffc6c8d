//! Every `wit_bindgen::generate!` call of the SDK, and nothing else.
//!
//! `base` generates the shared records and the host interfaces once; each kind's module
//! reuses them through `with`, so a `Rule` is the same Rust type whichever module names it
//! and a plugin links each host import once.

#![allow(missing_docs, clippy::all)]

pub mod base {
    wit_bindgen::generate!({
        world: "host",
        path: "../wit",
    });
}

macro_rules! kind_bindings {
    ($module:ident, $world:literal, $macro_name:literal, $default:literal, pure) => {
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types@0.1.0": crate::bindings::base::impressox::plugin::types,
                    "impressox:plugin/log@0.1.0": crate::bindings::base::impressox::plugin::log,
                },
                pub_export_macro: true,
                export_macro_name: $macro_name,
                default_bindings_module: $default,
            });
        }
    };
    ($module:ident, $world:literal, $macro_name:literal, $default:literal, chunker) => {
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types@0.1.0": crate::bindings::base::impressox::plugin::types,
                    "impressox:plugin/log@0.1.0": crate::bindings::base::impressox::plugin::log,
                    "impressox:plugin/tokens@0.1.0": crate::bindings::base::impressox::plugin::tokens,
                },
                pub_export_macro: true,
                export_macro_name: $macro_name,
                default_bindings_module: $default,
            });
        }
    };
    ($module:ident, $world:literal, $macro_name:literal, $default:literal, granted) => {
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "../wit",
                with: {
                    "impressox:plugin/types@0.1.0": crate::bindings::base::impressox::plugin::types,
                    "impressox:plugin/log@0.1.0": crate::bindings::base::impressox::plugin::log,
                    "impressox:plugin/config@0.1.0": crate::bindings::base::impressox::plugin::config,
                    "impressox:plugin/kv@0.1.0": crate::bindings::base::impressox::plugin::kv,
                    "impressox:plugin/docs@0.1.0": crate::bindings::base::impressox::plugin::docs,
                    "impressox:plugin/notify@0.1.0": crate::bindings::base::impressox::plugin::notify,
                    "impressox:plugin/prices@0.1.0": crate::bindings::base::impressox::plugin::prices,
                    "impressox:plugin/rag@0.1.0": crate::bindings::base::impressox::plugin::rag,
                },
                pub_export_macro: true,
                export_macro_name: $macro_name,
                default_bindings_module: $default,
            });
        }
    };
}

kind_bindings!(
    feed_parser,
    "feed-parser",
    "__export_feed_parser_world",
    "impressox_plugin_sdk::bindings::feed_parser",
    pure
);
kind_bindings!(
    rule_processor,
    "rule-processor",
    "__export_rule_processor_world",
    "impressox_plugin_sdk::bindings::rule_processor",
    pure
);
kind_bindings!(
    scrape_parser,
    "scrape-parser",
    "__export_scrape_parser_world",
    "impressox_plugin_sdk::bindings::scrape_parser",
    pure
);
kind_bindings!(
    notify_formatter,
    "notify-formatter",
    "__export_notify_formatter_world",
    "impressox_plugin_sdk::bindings::notify_formatter",
    pure
);
kind_bindings!(
    task,
    "task",
    "__export_task_world",
    "impressox_plugin_sdk::bindings::task",
    granted
);
kind_bindings!(
    event_handler,
    "event-handler",
    "__export_event_handler_world",
    "impressox_plugin_sdk::bindings::event_handler",
    granted
);
kind_bindings!(
    doc_chunker,
    "doc-chunker",
    "__export_doc_chunker_world",
    "impressox_plugin_sdk::bindings::doc_chunker",
    chunker
);
