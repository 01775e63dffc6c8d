//! The document-store seam: one suite for every backend (the MongoDB backend joins it
//! when it lands).

use std::sync::Arc;

use impressox_host::documents::embedded::EmbeddedDocuments;
use impressox_host::documents::{
    Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome, insert_one, upsert,
};
use serde_json::{Value, json};

fn doc(v: Value) -> Doc {
    v.as_object().unwrap().clone()
}

const INDEXES: &[IndexSpec<'static>] = &[
    IndexSpec {
        collection: "deliveries",
        name: "by_state_due",
        fields: &[("state", Order::Asc), ("due", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: "queue",
        name: "by_state_due",
        fields: &[("state", Order::Asc), ("due_at_ms", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: "profiles",
        name: "handle",
        fields: &[("handle", Order::Asc)],
        unique: true,
    },
];

async fn suite(d: Arc<dyn Documents>) {
    let name = d.backend();
    d.ping().await.unwrap();
    d.ensure_indexes(INDEXES).await.unwrap();
    d.ensure_indexes(INDEXES).await.unwrap(); // idempotent

    // Insert, duplicate, get, revisions.
    assert!(
        insert_one(
            &*d,
            "deliveries",
            doc(json!({"_id": "a", "state": "queued", "due": 3}))
        )
        .await
        .unwrap()
    );
    assert!(
        !insert_one(&*d, "deliveries", doc(json!({"_id": "a", "state": "x"})))
            .await
            .unwrap(),
        "{name}: duplicate _id"
    );
    let a = d.get("deliveries", "a").await.unwrap().unwrap();
    assert_eq!(a["state"], "queued");
    assert_eq!(a["_rev"], 1);
    assert_eq!(d.get("deliveries", "zz").await.unwrap(), None);

    // Compare-and-set on _rev.
    let out = d
        .write(vec![Write::ReplaceIf {
            coll: "deliveries".into(),
            doc: doc(json!({"_id": "a", "state": "sending", "due": 3})),
            rev: 1,
        }])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Replaced { rev: 2 }], "{name}");
    let out = d
        .write(vec![
            Write::ReplaceIf {
                coll: "deliveries".into(),
                doc: doc(json!({"_id": "a", "state": "lost"})),
                rev: 1,
            },
            Write::ReplaceIf {
                coll: "deliveries".into(),
                doc: doc(json!({"_id": "nope", "state": "x"})),
                rev: 1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![WriteOutcome::Conflict, WriteOutcome::Conflict],
        "{name}: stale rev, missing doc"
    );
    assert_eq!(
        d.get("deliveries", "a").await.unwrap().unwrap()["state"],
        "sending"
    );

    // Upserts.
    assert!(
        upsert(
            &*d,
            "deliveries",
            doc(json!({"_id": "b", "state": "queued", "due": 1}))
        )
        .await
        .unwrap()
    );
    assert!(
        !upsert(
            &*d,
            "deliveries",
            doc(json!({"_id": "b", "state": "queued", "due": 2}))
        )
        .await
        .unwrap()
    );
    assert_eq!(d.get("deliveries", "b").await.unwrap().unwrap()["_rev"], 2);
    for (id, due) in [("c", 5), ("e", 4)] {
        insert_one(
            &*d,
            "deliveries",
            doc(json!({"_id": id, "state": "queued", "due": due})),
        )
        .await
        .unwrap();
    }

    // Queries: filter, sort, limit, count.
    let q = Query::new(Filter::all().eq("state", "queued").lte("due", 4)).sort("due", Order::Asc);
    let ids: Vec<String> = d
        .find("deliveries", &q)
        .await
        .unwrap()
        .iter()
        .map(|x| x["_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["b", "e"], "{name}");
    let q = Query::new(Filter::all()).sort("due", Order::Desc).limit(2);
    let ids: Vec<String> = d
        .find("deliveries", &q)
        .await
        .unwrap()
        .iter()
        .map(|x| x["_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["c", "e"], "{name}");
    assert_eq!(
        d.count("deliveries", &Filter::all().eq("state", "queued"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        d.count(
            "deliveries",
            &Filter::all().is_in("_id", vec![json!("a"), json!("c")])
        )
        .await
        .unwrap(),
        2
    );

    // Unique secondary index: a second document with the same handle is a duplicate,
    // including through an upsert; changing one's handle frees the old value.
    assert!(
        insert_one(&*d, "profiles", doc(json!({"_id": "1", "handle": "alice"})))
            .await
            .unwrap()
    );
    assert!(
        !insert_one(&*d, "profiles", doc(json!({"_id": "2", "handle": "alice"})))
            .await
            .unwrap(),
        "{name}: unique index"
    );
    let out = d
        .write(vec![Write::Upsert {
            coll: "profiles".into(),
            doc: doc(json!({"_id": "2", "handle": "alice"})),
        }])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Duplicate], "{name}");
    assert!(
        !upsert(
            &*d,
            "profiles",
            doc(json!({"_id": "1", "handle": "alicia"}))
        )
        .await
        .unwrap()
    );
    assert!(
        insert_one(&*d, "profiles", doc(json!({"_id": "2", "handle": "alice"})))
            .await
            .unwrap(),
        "{name}: freed"
    );

    // Deletes.
    let out = d
        .write(vec![
            Write::Delete {
                coll: "deliveries".into(),
                id: "a".into(),
            },
            Write::Delete {
                coll: "deliveries".into(),
                id: "a2".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted, WriteOutcome::Missing]);
    assert_eq!(
        d.delete_where("deliveries", &Filter::all().gte("due", 4))
            .await
            .unwrap(),
        2
    );
    assert_eq!(d.count("deliveries", &Filter::all()).await.unwrap(), 1);
    // Collections do not see each other.
    assert_eq!(d.count("profiles", &Filter::all()).await.unwrap(), 2);
    assert!(
        insert_one(&*d, "x", doc(json!({"no_id": 1})))
            .await
            .is_err(),
        "{name}: _id required"
    );

    indexed_queries(&*d).await;
}

/// What the `queue` collection should hold: `_id` → (state, due_at_ms). Every due time
/// is distinct, so the expected order needs no tie rule (MongoDB has none).
type Model = std::collections::BTreeMap<String, (&'static str, i64)>;

const NOW: i64 = 1_000_000 + 1000 * 10;

fn ids(docs: &[Doc]) -> Vec<String> {
    docs.iter()
        .map(|x| x["_id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids of `model` in `state` whose due time passes `keep`, by due time, cut at `limit`.
fn expected(
    model: &Model,
    state: &str,
    keep: impl Fn(i64) -> bool,
    order: Order,
    limit: usize,
) -> Vec<String> {
    let mut v: Vec<(i64, String)> = model
        .iter()
        .filter(|(_, (s, due))| *s == state && keep(*due))
        .map(|(id, (_, due))| (*due, id.clone()))
        .collect();
    v.sort();
    if order == Order::Desc {
        v.reverse();
    }
    v.into_iter().take(limit).map(|(_, id)| id).collect()
}

/// The queries the index planner serves (equality prefix + range, sort both ways, limit)
/// against answers computed here, before and after writes that move documents between
/// index keys: a stale index row would show up as a wrong or missing document.
async fn check_queue(d: &dyn Documents, model: &Model, when: &str) {
    let name = d.backend();
    let find = |q: Query| async move { ids(&d.find("queue", &q).await.unwrap()) };
    // The due poller: queued and due, earliest first, limited.
    let q = Query::new(Filter::all().eq("state", "queued").lte("due_at_ms", NOW))
        .sort("due_at_ms", Order::Asc)
        .limit(10);
    assert_eq!(
        find(q).await,
        expected(model, "queued", |t| t <= NOW, Order::Asc, 10),
        "{name} {when}: eq + lte + asc + limit"
    );
    let q = Query::new(Filter::all().eq("state", "queued").lt("due_at_ms", NOW))
        .sort("due_at_ms", Order::Desc)
        .limit(7);
    assert_eq!(
        find(q).await,
        expected(model, "queued", |t| t < NOW, Order::Desc, 7),
        "{name} {when}: eq + lt + desc + limit"
    );
    // Both bounds, no limit.
    let q = Query::new(
        Filter::all()
            .eq("state", "sending")
            .gt("due_at_ms", 1_000_500)
            .lte("due_at_ms", 1_001_500),
    )
    .sort("due_at_ms", Order::Asc);
    assert_eq!(
        find(q).await,
        expected(
            model,
            "sending",
            |t| t > 1_000_500 && t <= 1_001_500,
            Order::Asc,
            usize::MAX
        ),
        "{name} {when}: eq + gt + lte"
    );
    // Sort served by the index without a range.
    let q = Query::new(Filter::all().eq("state", "sent"))
        .sort("due_at_ms", Order::Desc)
        .limit(5);
    assert_eq!(
        find(q).await,
        expected(model, "sent", |_| true, Order::Desc, 5),
        "{name} {when}: eq + desc + limit"
    );
    // Equality only, no sort: compare as sets (MongoDB promises no order).
    let mut got = find(Query::new(Filter::all().eq("state", "queued"))).await;
    got.sort();
    let mut want = expected(model, "queued", |_| true, Order::Asc, usize::MAX);
    want.sort();
    assert_eq!(got, want, "{name} {when}: eq only");
    // Counts: covered by the index, and with a condition it does not cover.
    assert_eq!(
        d.count(
            "queue",
            &Filter::all().eq("state", "queued").lte("due_at_ms", NOW)
        )
        .await
        .unwrap(),
        expected(model, "queued", |t| t <= NOW, Order::Asc, usize::MAX).len() as u64,
        "{name} {when}: covered count"
    );
    assert_eq!(
        d.count(
            "queue",
            &Filter::all().eq("state", "sent").ne("_id", "q000")
        )
        .await
        .unwrap(),
        model
            .iter()
            .filter(|(id, (s, _))| *s == "sent" && id.as_str() != "q000")
            .count() as u64,
        "{name} {when}: count with a residual condition"
    );
}

fn queue_doc(id: &str, state: &str, due: i64) -> Doc {
    doc(json!({"_id": id, "state": state, "due_at_ms": due, "channel": "email"}))
}

async fn indexed_queries(d: &dyn Documents) {
    let name = d.backend();
    let states = ["queued", "sending", "sent"];
    let mut model = Model::new();
    let mut writes = Vec::new();
    for i in 0..200i64 {
        let id = format!("q{i:03}");
        // Mixed states; distinct due times spread around NOW (37 is prime to 200).
        let state = states[((i * 7 + i / 3) % 3) as usize];
        let due = 1_000_000 + (i * 37 % 200) * 100;
        model.insert(id.clone(), (state, due));
        writes.push(Write::Insert {
            coll: "queue".into(),
            doc: queue_doc(&id, state, due),
        });
    }
    let out = d.write(writes).await.unwrap();
    assert!(out.iter().all(|o| *o == WriteOutcome::Inserted), "{name}");
    check_queue(d, &model, "after inserts").await;

    // Move documents between index keys with every kind of write.
    let due_queued: Vec<String> = expected(&model, "queued", |t| t <= NOW, Order::Asc, 3);
    let [first, second, third] = [0, 1, 2].map(|i| due_queued[i].clone());
    let rev = d.get("queue", &first).await.unwrap().unwrap()["_rev"]
        .as_u64()
        .unwrap();
    let out = d
        .write(vec![
            // Claimed: queued -> sending.
            Write::ReplaceIf {
                coll: "queue".into(),
                doc: queue_doc(&first, "sending", NOW + 30_000),
                rev,
            },
            // Retried later: same state, new due time.
            Write::Upsert {
                coll: "queue".into(),
                doc: queue_doc(&second, "queued", NOW + 777),
            },
            Write::Delete {
                coll: "queue".into(),
                id: third.clone(),
            },
            Write::Upsert {
                coll: "queue".into(),
                doc: queue_doc("q999", "queued", 999_999),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Replaced { rev: rev + 1 },
            WriteOutcome::Upserted { created: false },
            WriteOutcome::Deleted,
            WriteOutcome::Upserted { created: true },
        ],
        "{name}"
    );
    model.insert(first.clone(), ("sending", NOW + 30_000));
    model.insert(second.clone(), ("queued", NOW + 777));
    model.remove(&third);
    model.insert("q999".into(), ("queued", 999_999));
    check_queue(d, &model, "after writes").await;
    let due = ids(&d
        .find(
            "queue",
            &Query::new(Filter::all().eq("state", "queued").lte("due_at_ms", NOW))
                .sort("due_at_ms", Order::Asc)
                .limit(1),
        )
        .await
        .unwrap());
    assert_eq!(due, vec!["q999"], "{name}: the new earliest");

    // A failed compare-and-set changes nothing.
    let out = d
        .write(vec![Write::ReplaceIf {
            coll: "queue".into(),
            doc: queue_doc(&second, "sent", 1),
            rev: 99,
        }])
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Conflict], "{name}");

    // Purge through the index: sent and due before a time.
    let cut = 1_010_000;
    let purged = d
        .delete_where(
            "queue",
            &Filter::all().eq("state", "sent").lt("due_at_ms", cut),
        )
        .await
        .unwrap();
    let before = model.len();
    model.retain(|_, (s, due)| !(*s == "sent" && *due < cut));
    assert_eq!(purged as usize, before - model.len(), "{name}: purged");
    assert!(purged > 0, "{name}: the purge had work");
    check_queue(d, &model, "after the purge").await;
    assert_eq!(
        d.count("queue", &Filter::all()).await.unwrap(),
        model.len() as u64,
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_documents_pass_the_suite_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("documents.redb");
    let d: Arc<dyn Documents> = Arc::new(EmbeddedDocuments::open(&path).unwrap());
    suite(d.clone()).await;
    drop(d);
    let again = EmbeddedDocuments::open(&path).unwrap();
    assert_eq!(
        again.get("profiles", "2").await.unwrap().unwrap()["handle"],
        "alice"
    );
    // The unique index still holds after the reopen.
    assert!(
        !insert_one(
            &again,
            "profiles",
            doc(json!({"_id": "3", "handle": "alicia"}))
        )
        .await
        .unwrap()
    );
    // So does the non-unique one: indexed queries and their writes carry on.
    again.ensure_indexes(INDEXES).await.unwrap();
    let q = Query::new(Filter::all().eq("state", "queued").lte("due_at_ms", NOW))
        .sort("due_at_ms", Order::Asc)
        .limit(2);
    let before = ids(&again.find("queue", &q).await.unwrap());
    assert_eq!(before[0], "q999");
    again
        .write(vec![Write::Delete {
            coll: "queue".into(),
            id: "q999".into(),
        }])
        .await
        .unwrap();
    let after = ids(&again.find("queue", &q.clone().limit(1)).await.unwrap());
    assert_eq!(after, before[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_documents_pass_the_suite_on_secantusdb() {
    let mut server = crate::servers::mongo::MongoServer::start();
    let d: Arc<dyn Documents> = Arc::new(
        impressox_host::documents::mongo::MongoDocuments::connect(&server.url(), "impressox_test")
            .await
            .unwrap(),
    );
    suite(d.clone()).await;
    // The server crashes and comes back: the client reconnects and carries on. (Whether
    // the last writes survive a SIGKILL is the server's journaling business, not ours.)
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match insert_one(&*d, "after", doc(json!({"_id": "r"}))).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no answer after a restart: {e:#}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    assert!(d.get("after", "r").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mongodb_is_a_clear_error_without_credentials() {
    let port = crate::servers::redis::free_port();
    let url = format!(
        "mongodb://me:hunter2@127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500"
    );
    let err = impressox_host::documents::mongo::MongoDocuments::connect(&url, "x")
        .await
        .err()
        .unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("cannot reach MongoDB"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
}
