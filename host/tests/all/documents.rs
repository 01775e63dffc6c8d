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

const INDEXES: &[IndexSpec] = &[
    IndexSpec {
        collection: "deliveries",
        name: "by_state_due",
        fields: &[("state", Order::Asc), ("due", Order::Asc)],
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
