//! The embedded SQLite store: WAL journal with full sync, so a committed write survives a
//! crash of the process or the machine; schema migrations applied in a transaction at open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{ClientRecord, SigningKeyRecord, Store, StoreError};

/// Schema versions, applied in order; never edit one that has shipped, add another.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    secret_sha256 BLOB,
    allowed_scopes TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    jwks          TEXT,
    software_id   TEXT,
    org           TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    private_der BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
"#,
    r#"
CREATE TABLE revoked_tokens (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    exp        INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
"#,
    r#"
CREATE TABLE used_assertions (
    client_id TEXT NOT NULL,
    jti       TEXT NOT NULL,
    exp       INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
"#,
    r#"
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN legacy_audience INTEGER NOT NULL DEFAULT 0;
"#,
];

/// SQLite behind [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create `{}`: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open `{}`: {e}", path.display())))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= applied {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

fn client_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ClientRecord, StoreError> {
    let scopes: String = row.try_get("allowed_scopes").map_err(backend)?;
    let jwks: Option<String> = row.try_get("jwks").map_err(backend)?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        secret_sha256: row.try_get("secret_sha256").map_err(backend)?,
        allowed_scopes: scopes.split_ascii_whitespace().map(str::to_owned).collect(),
        auth_method: row.try_get("auth_method").map_err(backend)?,
        jwks: match jwks {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|e| StoreError::Backend(e.to_string()))?)
            }
            None => None,
        },
        software_id: row.try_get("software_id").map_err(backend)?,
        org: row.try_get("org").map_err(backend)?,
        resources: row
            .try_get::<String, _>("resources")
            .map_err(backend)?
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        legacy_audience: row.try_get::<i64, _>("legacy_audience").map_err(backend)? != 0,
        disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO clients (client_id, name, secret_sha256, allowed_scopes, auth_method, jwks, software_id, org, resources, legacy_audience, disabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_sha256)
        .bind(c.allowed_scopes.join(" "))
        .bind(&c.auth_method)
        .bind(c.jwks.as_ref().map(ToString::to_string))
        .bind(&c.software_id)
        .bind(&c.org)
        .bind(c.resources.join(" "))
        .bind(i64::from(c.legacy_audience))
        .bind(i64::from(c.disabled))
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(c.client_id.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY client_id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE clients SET disabled = ?, updated_at = ? WHERE client_id = ?")
                .bind(i64::from(disabled))
                .bind(now())
                .bind(client_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_sha256: &[u8],
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE clients SET secret_sha256 = ?, updated_at = ? WHERE client_id = ?")
                .bind(secret_sha256)
                .bind(now())
                .bind(client_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        exp: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM used_assertions WHERE exp < ?")
            .bind(now() - 600)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        let done = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, exp) VALUES (?, ?, ?)
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(exp)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_token(&self, issuer: &str, jti: &str, exp: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (issuer, jti, exp, revoked_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (issuer, jti) DO NOTHING",
        )
        .bind(issuer)
        .bind(jti)
        .bind(exp)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        // Forget what can no longer matter.
        sqlx::query("DELETE FROM revoked_tokens WHERE exp < ?")
            .bind(now() - 3600)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn revoked_tokens(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT issuer, jti, exp FROM revoked_tokens WHERE exp >= ?")
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("issuer").map_err(backend)?,
                    r.try_get("jti").map_err(backend)?,
                    r.try_get("exp").map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY retired_at IS NULL DESC, created_at DESC, COALESCE(retired_at, 0) DESC, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, created_at, retired_at) VALUES (?, ?, ?, ?, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => tx.commit().await.map_err(backend),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(key.kid.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }
}

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid").map_err(backend)?,
        alg: row.try_get("alg").map_err(backend)?,
        private_der: row.try_get("private_der").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        retired_at: row.try_get("retired_at").map_err(backend)?,
    })
}

fn now() -> i64 {
    i64::try_from(crate::token::now()).unwrap_or(i64::MAX)
}
