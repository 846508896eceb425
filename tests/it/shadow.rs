//! Shadow rollout (issue 34): a candidate set beside the live one decides every live
//! decision again (share 1.0) off the request path; its disagreements match a hand count
//! exactly (each one's decision id is one the gateway got back), and `arbiter rollout report`
//! finds every one where `policies compare` proves the sets differ, and names the difference
//! traffic has not hit.

use std::collections::BTreeSet;
use std::time::Duration;

use arbiter::grpc::proto;
use serde_json::json;

use crate::support::*;

/// The candidate's second change, besides freezing item reads (exercised below): item
/// deletes frozen (never exercised).
const FREEZE_DELETES: &str = "\n@id(\"deletes-frozen\")\nforbid (principal, action == Action::\"DELETE\", resource == Endpoint::\"/item/{id}\");\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_disagreements_match_the_hand_count_and_the_proof() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &work.path().join("policies"));
    bundled_with(
        &work.path().join("candidate"),
        &format!("{FREEZE_READS}{FREEZE_DELETES}"),
    );
    let server = ServeProcess::start(
        work.path(),
        "[shadow]\npolicies = \"candidate\"\nshare = 1.0\nqueue = 4096\n",
    );
    let reader = dev_token(work.path(), "svc", "read");
    let creator = dev_token(work.path(), "svc", "read fido");
    let client = proto::authorizer_client::AuthorizerClient::connect(server.addr.clone())
        .await
        .unwrap();
    // All at once, interleaved: 40 item reads (the live set allows them, the candidate
    // denies them), 25 creations and 10 health checks (both sets allow them).
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..75 {
        let (token, method, path) = match i % 3 {
            _ if i >= 65 => (String::new(), "GET", "/health".to_owned()),
            0 | 1 if i < 60 => (
                reader.clone(),
                "GET",
                format!("/item/{}?note=secret{i}", i + 1),
            ),
            _ => (creator.clone(), "POST", "/items".to_owned()),
        };
        let mut client = client.clone();
        calls.spawn(async move {
            let r = client
                .authorize(request(&token, method, &path, json!({})))
                .await
                .unwrap()
                .into_inner();
            (method == "GET" && path.starts_with("/item/"), r)
        });
    }
    let mut expected = BTreeSet::new();
    while let Some(done) = calls.join_next().await {
        let (read, r) = done.unwrap();
        assert!(allowed(&r), "the live set allows all of them");
        if read {
            expected.insert(r.decision_id);
        }
    }
    assert_eq!(expected.len(), 40, "the hand count");

    let metrics = format!("{}/metrics", server.http);
    let counted = eventually(Duration::from_secs(10), || async {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        let agree = sample(&text, "arbiter_shadow_decisions_total{outcome=\"agree\"}");
        let disagree = sample(
            &text,
            "arbiter_shadow_decisions_total{outcome=\"disagree\"}",
        );
        (agree + disagree >= 75.0).then_some((agree, disagree, text))
    })
    .await
    .expect("every decision was decided again");

    assert_eq!((counted.0, counted.1), (35.0, 40.0));
    assert_eq!(
        sample(
            &counted.2,
            "arbiter_shadow_decisions_total{outcome=\"dropped\"}"
        ),
        0.0,
        "a sample was dropped"
    );
    assert_eq!(
        sample(
            &counted.2,
            "arbiter_shadow_disagreements_total{route=\"/item/{id}\",live=\"allow\",candidate=\"deny:policy_deny\"}"
        ),
        40.0,
        "{}",
        counted.2
    );

    // Status names both revisions.
    let status = server.status().await;
    assert!(!status.shadow_revision.is_empty());
    assert_ne!(status.shadow_revision, status.policy_revision);

    // The log has one line per disagreement, naming exactly the 40 decisions.
    let lines = server.lines();
    let logged: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["message"] == "shadow disagreement")
        .map(|l| l["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, expected);
    // Never the query (it may carry a token): the path is logged as the decision log does.
    assert!(lines
        .iter()
        .filter(|l| l["message"] == "shadow disagreement")
        .all(|l| l["path"].as_str().is_some_and(|p| !p.contains("secret"))));

    // The report groups them and finds each where the proof says the sets differ.
    let log = work.path().join("decisions.jsonl");
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    std::fs::write(&log, text.join("\n")).unwrap();
    let out = arbiter_bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rollout", "report", "--json", "--log"])
        .arg(&log)
        .arg("--live")
        .arg(work.path().join("policies"))
        .arg("--candidate")
        .arg(work.path().join("candidate"))
        .output()
        .unwrap();
    assert_success(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let observed = report["observed"].as_array().unwrap();
    assert_eq!(observed.len(), 1, "{report}");
    assert_eq!(observed[0]["method"], "GET");
    assert_eq!(observed[0]["route"], "/item/{id}");
    assert_eq!(observed[0]["count"], 40);
    assert_eq!(observed[0]["proof"], "explained");
    assert!(expected.contains(observed[0]["samples"][0].as_str().unwrap()));
    let not_hit: Vec<(String, String)> = report["not_hit_yet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["route"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        not_hit,
        vec![("DELETE".to_owned(), "/item/{id}".to_owned())]
    );
    assert_eq!(report["consistent"], true);
}
