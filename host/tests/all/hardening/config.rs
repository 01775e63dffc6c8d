//! The config loader (found while writing the fuzz target `crate::fuzz::config`).

use impressox_host::config::Config;

fn load(interval: &str) -> anyhow::Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressox.toml");
    std::fs::write(
        &path,
        format!(
            "[[market.sources]]\nname = \"coingecko\"\nkind = \"http-poll\"\nparser = \"coingecko\"\n\
             url = \"http://127.0.0.1:1/simple/price\"\ninterval_secs = {interval}\n"
        ),
    )
    .unwrap();
    Config::load_with_env(Some(&path), &[])
}

#[test]
fn an_http_poll_interval_no_timer_can_hold_is_refused_at_load() {
    // The poller's `Duration::from_secs_f64` panics on these: the source would die at
    // start instead of the config being refused.
    for interval in ["inf", "1e300", "86401"] {
        let err = format!("{:#}", load(interval).expect_err(interval));
        assert!(
            err.contains("`coingecko`") && err.contains("`interval_secs`"),
            "{interval}: {err}"
        );
    }
    for interval in ["0.05", "30", "86400"] {
        load(interval).unwrap_or_else(|e| panic!("{interval}: {e:#}"));
    }
}
