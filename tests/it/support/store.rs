//! The stores tests open beside a server: its SQLite file, and PostgreSQL databases made
//! (and dropped) per test when `ARBITER_TEST_POSTGRES_URL` names a server.

use std::path::Path;

/// A fresh, empty PostgreSQL database for one test, as a URL; `None` when
/// `ARBITER_TEST_POSTGRES_URL` is not set, after saying on the terminal (past the test
/// harness's capture) that the test was skipped. `.ci/postgres.sh` sets one up.
pub async fn postgres_database(test: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("ARBITER_TEST_POSTGRES_URL") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test} on PostgreSQL: ARBITER_TEST_POSTGRES_URL is not set (`export ARBITER_TEST_POSTGRES_URL=$(.ci/postgres.sh)` runs it)"
        );
        return None;
    };
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "arbiter_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("ARBITER_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached");
    // What earlier runs of this test left behind.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname NOT LIKE $2",
    )
    .bind(format!("arbiter\\_{test}\\_%"))
    .bind(format!("arbiter\\_{test}\\_{}\\_%", std::process::id()))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for old in stale.iter().chain([&name]) {
        sqlx::Executor::execute(
            &mut admin,
            format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)").as_str(),
        )
        .await
        .unwrap();
    }
    sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}

/// Drops a database [`postgres_database`] made, under whoever is connected to it (an
/// outage, as the servers using it see it).
pub async fn drop_postgres_database(url: &str) {
    use sqlx::Connection;
    let base = std::env::var("ARBITER_TEST_POSTGRES_URL").unwrap();
    let name = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
}

/// The SQLite store of a server whose data directory is `dir/data`, opened beside it as the
/// CLI would.
pub async fn store_in(dir: &Path) -> arbiter::store::SqlStore {
    arbiter::store::SqlStore::sqlite(&dir.join("data/arbiter.db"))
        .await
        .unwrap()
}
