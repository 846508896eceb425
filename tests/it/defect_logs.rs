//! Issue 14, defect 9: what logs hold. On the code before this change the decision log's
//! replay record kept the raw path with its query, so a gateway with `--allow-query-token`
//! wrote whole JWTs into the log.

use crate::support::*;

/// A token in a query string (`--allow-query-token` gateways forward such paths) never
/// reaches the decision log: neither the line's `path` nor its replay record keeps the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_string_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundled_policies(), &dir.path().join("policies"));
    let server = ServeProcess::start(dir.path(), "");
    let token = dev_token(dir.path(), "demo", "read");
    let path = format!("/item/7?access_token={token}");
    let out = tokio::task::block_in_place(|| {
        arbiter_bin()
            .args([
                "check",
                "--json",
                "--addr",
                &server.addr,
                "--token",
                &token,
                "GET",
                &path,
            ])
            .output()
            .unwrap()
    });
    assert_success(&out);
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let line = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let lines = server.lines();
        async move {
            lines
                .into_iter()
                .find(|l| l["message"] == "decision" && l["path"] == "/item/7")
        }
    })
    .await
    .expect("the decision was logged without its query");
    assert!(
        !line["replay"].as_str().unwrap().contains("access_token"),
        "{line}"
    );
    let everything: String = server.lines().iter().map(ToString::to_string).collect();
    assert!(!everything.contains(&signature), "the token is in the log");
}
