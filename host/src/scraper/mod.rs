//! The x-scraper worker (SPEC §8, issue 5): a real Chromium (through the `impressox-browser`
//! crate) opens X's pages for each target with one of the pool's accounts, the host captures
//! the HTML and the GraphQL JSON the page receives, the scrape-parser plugin turns the capture
//! into tweets, profiles, cursors and rate-limit facts, and the host upserts them into the
//! document store (`tweets`, `profiles`) with the raw JSON beside the normalized record.
//!
//! Organization (design and reasoning: docs/design/x-scraper.md):
//! - `config`: `[scraper]` and its sub-sections, validated at load;
//! - `accounts`: `accounts_file` parsing, the `Secret` type, account fingerprints;
//! - `proxies`: `proxies_file` parsing, redacted `ProxyUrl`, the sticky `ProxyBook`
//!   (assignment, failure counting, rotation);
//! - `totp`: RFC 6238 codes for X's two-factor step;
//! - `budget`: request budgets per (account, operation) from `x-rate-limit-*` (pure);
//! - `state`: account states and the persisted account record (pure);
//! - `stop`: when a tail or backfill run stops scrolling (pure);
//! - `store`: the `tweets`, `profiles` and `scrape_spool` documents (insert-or-CAS), the
//!   scraper's indexes, and the synthetic bodies `scraper reparse` parses;
//! - `targets`: user and search targets in `scrape_targets`: validation, seeding from
//!   `user_list` and `[[scraper.searches]]`, due targets, saving a run's progress;
//! - `session`: each account's cookie jar in the key-value store;
//! - `login`: the login-form driver (username, challenge, password, TOTP);
//! - `pool`: the account pool: picking, contexts, proxies, budgets and states per step,
//!   the persisted account records, the accounts view;
//! - `parse`: a capture through the scrape-parser plugin;
//! - `runner`: one run of one target, step by step;
//! - `stopping`: the signals that end a run early (shutdown, a lost lease);
//! - `lease`: a target's store lease, renewed while its run goes;
//! - `worker`: start-up, the scheduler, shutdown; `ScraperHandle` for the API;
//! - `metrics`: `impressox_scraper_*` counters.
//! - `reparse`: `impressox scraper reparse`: the current parser over stored raw JSON and the spool.

pub mod accounts;
pub mod budget;
pub mod config;
pub mod lease;
pub mod login;
pub mod metrics;
pub mod outcome;
pub mod parse;
pub mod pool;
pub mod proxies;
pub mod reparse;
pub mod runner;
pub mod secret;
pub mod session;
pub mod state;
pub mod stop;
pub mod stopping;
pub mod store;
pub mod targets;
pub mod totp;
pub mod worker;

pub use worker::{ScraperHandle, ScraperWorker};
