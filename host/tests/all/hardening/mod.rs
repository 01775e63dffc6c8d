//! Regression tests for the defects found in the hardening review (issue 12): one file
//! per area, one test per defect, each named for the behaviour it proves and each failing
//! on the code before its fix.
//!
//! The tests use the same real servers and built components as the rest of the suite
//! (`crate::servers`, `test_artifacts`); nothing of our own I/O is mocked.

mod api_errors;
mod components;
mod config;
mod feed_parsers;
pub(crate) mod host_process;
mod request_bodies;
mod rule_limits;
mod rules;
mod sandbox;
mod scraper;
mod shutdown;
mod ssrf;
mod streams;
