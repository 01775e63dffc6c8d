//! Integration tests of the host, against real `.wasm` components built by
//! `test-artifacts` (the bundled plugins and the misbehaving test guests), and Python and
//! JavaScript ones built by `componentize`.

mod api;
mod cache;
mod capabilities;
mod chunker;
mod cli;
mod cluster;
mod componentize;
mod console;
mod deploy;
mod documents;
mod events;
mod fuzz;
mod hardening;
mod harness;
mod http;
mod languages;
mod limits;
mod loading;
mod market;
mod mcp;
mod notify;
mod plugins;
mod rag;
// scheduler
mod scheduler;
mod scraper;
mod scraper_api;
mod scraper_reparse;
mod servers;
mod soak;
mod storage;
mod swap;
