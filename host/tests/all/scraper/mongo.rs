//! The scraper on MongoDB (SecantusDB speaking its wire protocol): the same runs, upserts
//! by id, no duplicates on a re-run.

use std::time::Duration;

use impressox_host::documents::Filter;

use super::ids::*;
use super::rig::{Opts, ScraperRig};

const TARGET: &str = "user:coinledger_ana";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_runs_on_mongodb_upsert_by_id_and_never_duplicate() {
    let mut rig = ScraperRig::start(Opts {
        mongo: true,
        scraper: "tail_max_pages = 2".into(),
        ..Opts::default()
    })
    .await;
    assert_eq!(rig.docs.backend(), "mongodb");
    let first = rig.wait_for_run(TARGET, 0, Duration::from_secs(120)).await;
    assert_eq!(first.last_run.as_ref().unwrap().outcome, "ok", "{first:?}");
    let count = rig.tweet_count().await;
    assert!(count >= 8, "two pages stored, got {count}");
    let a = rig.tweet(A).await.expect("A stored in MongoDB");
    assert!(a["raw_json"].as_str().unwrap().contains(A));
    let profiles = rig.docs.count("profiles", &Filter::all()).await.unwrap();
    assert!(profiles >= 1);

    let since = rig.run_now(TARGET).await;
    let again = rig
        .wait_for_run(TARGET, since, Duration::from_secs(120))
        .await;
    assert_eq!(again.last_run.as_ref().unwrap().outcome, "ok", "{again:?}");
    assert_eq!(rig.tweet_count().await, count, "a re-run never duplicates");
    assert_eq!(
        rig.docs.count("profiles", &Filter::all()).await.unwrap(),
        profiles
    );
    let a2 = rig.tweet(A).await.unwrap();
    assert_eq!(a2["first_seen_ms"], a["first_seen_ms"]);
    rig.stop().await;
}
