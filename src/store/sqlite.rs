//! The embedded SQLite store: WAL journal with full sync, so a committed write survives a
//! crash of the process or the machine; schema migrations applied in a transaction at open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    AuditEvent, AuditFilter, ClientRecord, SigningKeyRecord, SsaRequestRecord, StatementRecord,
    Store, StoreError,
};

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
    r#"
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access_token';
ALTER TABLE clients ADD COLUMN statement_iss TEXT;
ALTER TABLE clients ADD COLUMN statement_jti TEXT;
ALTER TABLE clients ADD COLUMN registration_token_sha256 BLOB;
ALTER TABLE clients ADD COLUMN metadata TEXT;
CREATE INDEX clients_by_statement ON clients (statement_iss, statement_jti);
CREATE TABLE registered_statements (
    issuer    TEXT NOT NULL,
    jti       TEXT NOT NULL,
    client_id TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE TABLE ssa_requests (
    id         TEXT PRIMARY KEY NOT NULL,
    requester  TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX ssa_requests_by_status ON ssa_requests (status, created_at);
CREATE TABLE statements (
    jti        TEXT PRIMARY KEY NOT NULL,
    issuer     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    revoked_at INTEGER,
    body       TEXT NOT NULL
);
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    request_id    TEXT,
    statement_jti TEXT,
    client_id     TEXT,
    reason        TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_by_request ON audit_events (request_id);
CREATE INDEX audit_by_statement ON audit_events (statement_jti);
CREATE INDEX audit_by_client ON audit_events (client_id);
"#,
    r#"
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
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
    Ok(ClientRecord {
        client_id: row.try_get("client_id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        secret_sha256: row.try_get("secret_sha256").map_err(backend)?,
        allowed_scopes: scopes.split_ascii_whitespace().map(str::to_owned).collect(),
        auth_method: row.try_get("auth_method").map_err(backend)?,
        jwks: json_column(row, "jwks")?,
        jwks_uri: row.try_get("jwks_uri").map_err(backend)?,
        software_id: row.try_get("software_id").map_err(backend)?,
        org: row.try_get("org").map_err(backend)?,
        resources: row
            .try_get::<String, _>("resources")
            .map_err(backend)?
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect(),
        legacy_audience: row.try_get::<i64, _>("legacy_audience").map_err(backend)? != 0,
        statement: match (
            row.try_get::<Option<String>, _>("statement_iss")
                .map_err(backend)?,
            row.try_get::<Option<String>, _>("statement_jti")
                .map_err(backend)?,
        ) {
            (Some(iss), Some(jti)) => Some((iss, jti)),
            _ => None,
        },
        registration_token_sha256: row.try_get("registration_token_sha256").map_err(backend)?,
        metadata: json_column(row, "metadata")?,
        disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_client(&mut conn, c).await
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

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys WHERE purpose = ? ORDER BY retired_at IS NULL DESC, created_at DESC, COALESCE(retired_at, 0) DESC, kid")
            .bind(purpose)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL AND purpose = ?",
        )
        .bind(key.created_at)
        .bind(&key.purpose)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, purpose, alg, private_der, created_at, retired_at) VALUES (?, ?, ?, ?, ?, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.purpose)
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

    async fn disabled_clients(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT client_id FROM clients WHERE disabled = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn register_client(
        &self,
        client: &ClientRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if let Some((iss, jti)) = &client.statement {
            let used = sqlx::query(
                "INSERT INTO registered_statements (issuer, jti, client_id, at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (issuer, jti) DO NOTHING",
            )
            .bind(iss)
            .bind(jti)
            .bind(&client.client_id)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if used.rows_affected() == 0 {
                return Err(StoreError::Duplicate(jti.clone()));
            }
        }
        insert_client(&mut tx, client).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn update_client(
        &self,
        c: &ClientRecord,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done = sqlx::query(
            "UPDATE clients SET name = ?, allowed_scopes = ?, auth_method = ?, jwks = ?, resources = ?,
                 metadata = ?, disabled = ?, updated_at = ? WHERE client_id = ?",
        )
        .bind(&c.name)
        .bind(c.allowed_scopes.join(" "))
        .bind(&c.auth_method)
        .bind(c.jwks.as_ref().map(ToString::to_string))
        .bind(c.resources.join(" "))
        .bind(c.metadata.as_ref().map(ToString::to_string))
        .bind(i64::from(c.disabled))
        .bind(now())
        .bind(&c.client_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn create_ssa_request(
        &self,
        r: &SsaRequestRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO ssa_requests (id, requester, status, created_at, body) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.requester)
        .bind(&r.status)
        .bind(r.created_at)
        .bind(to_json(r)?)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate(r.id.clone()))
            }
            Err(e) => return Err(backend(e)),
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn ssa_request(&self, id: &str) -> Result<Option<SsaRequestRecord>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM ssa_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        body.map(|b| from_json(&b)).transpose()
    }

    async fn ssa_requests(
        &self,
        status: Option<&str>,
        requester: Option<&str>,
    ) -> Result<Vec<SsaRequestRecord>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM ssa_requests WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR requester = ?2)
             ORDER BY created_at DESC, id DESC",
        )
        .bind(status)
        .bind(requester)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        bodies.iter().map(|b| from_json(b)).collect()
    }

    async fn decide_ssa_request(
        &self,
        r: &SsaRequestRecord,
        statement: Option<&StatementRecord>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done = sqlx::query(
            "UPDATE ssa_requests SET status = ?, body = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(&r.status)
        .bind(to_json(r)?)
        .bind(&r.id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(st) = statement {
            sqlx::query(
                "INSERT INTO statements (jti, issuer, request_id, revoked_at, body) VALUES (?, ?, ?, NULL, ?)",
            )
            .bind(&st.jti)
            .bind(&st.issuer)
            .bind(&st.request_id)
            .bind(to_json(st)?)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn statement(&self, jti: &str) -> Result<Option<StatementRecord>, StoreError> {
        let row = sqlx::query("SELECT body, revoked_at FROM statements WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            Some(row) => {
                let mut st: StatementRecord =
                    from_json(&row.try_get::<String, _>("body").map_err(backend)?)?;
                st.revoked_at = row.try_get("revoked_at").map_err(backend)?;
                Ok(Some(st))
            }
            None => Ok(None),
        }
    }

    async fn revoke_statement(
        &self,
        issuer: &str,
        jti: &str,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done = sqlx::query(
            "UPDATE statements SET revoked_at = ? WHERE jti = ? AND issuer = ? AND revoked_at IS NULL",
        )
        .bind(audit.at)
        .bind(jti)
        .bind(issuer)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let clients: Vec<String> = sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE statement_iss = ? AND statement_jti = ? ORDER BY client_id",
        )
        .bind(issuer)
        .bind(jti)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE clients SET disabled = 1, updated_at = ? WHERE statement_iss = ? AND statement_jti = ?",
        )
        .bind(audit.at)
        .bind(issuer)
        .bind(jti)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut audit = audit.clone();
        audit.detail = serde_json::json!({ "disabled_clients": clients });
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(clients))
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE (?1 IS NULL OR request_id = ?1)
                 AND (?2 IS NULL OR statement_jti = ?2) AND (?3 IS NULL OR client_id = ?3)
             ORDER BY id",
        )
        .bind(&f.request_id)
        .bind(&f.statement_jti)
        .bind(&f.client_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id").map_err(backend)?,
                    at: r.try_get("at").map_err(backend)?,
                    actor: r.try_get("actor").map_err(backend)?,
                    action: r.try_get("action").map_err(backend)?,
                    request_id: r.try_get("request_id").map_err(backend)?,
                    statement_jti: r.try_get("statement_jti").map_err(backend)?,
                    client_id: r.try_get("client_id").map_err(backend)?,
                    reason: r.try_get("reason").map_err(backend)?,
                    detail: json_column(r, "detail")?.unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid").map_err(backend)?,
        purpose: row.try_get("purpose").map_err(backend)?,
        alg: row.try_get("alg").map_err(backend)?,
        private_der: row.try_get("private_der").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        retired_at: row.try_get("retired_at").map_err(backend)?,
    })
}

fn now() -> i64 {
    i64::try_from(crate::token::now()).unwrap_or(i64::MAX)
}

async fn insert_client(
    conn: &mut sqlx::SqliteConnection,
    c: &ClientRecord,
) -> Result<(), StoreError> {
    let (statement_iss, statement_jti) = match &c.statement {
        Some((iss, jti)) => (Some(iss.as_str()), Some(jti.as_str())),
        None => (None, None),
    };
    let result = sqlx::query(
        "INSERT INTO clients (client_id, name, secret_sha256, allowed_scopes, auth_method, jwks, software_id, org,
             resources, legacy_audience, statement_iss, statement_jti, registration_token_sha256, metadata,
             disabled, created_at, updated_at, jwks_uri)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(statement_iss)
    .bind(statement_jti)
    .bind(&c.registration_token_sha256)
    .bind(c.metadata.as_ref().map(ToString::to_string))
    .bind(i64::from(c.disabled))
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(&c.jwks_uri)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Duplicate(c.client_id.clone()))
        }
        Err(e) => Err(backend(e)),
    }
}

async fn insert_audit(conn: &mut sqlx::SqliteConnection, e: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (at, actor, action, request_id, statement_jti, client_id, reason, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.at)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.request_id)
    .bind(&e.statement_jti)
    .bind(&e.client_id)
    .bind(&e.reason)
    .bind(e.detail.to_string())
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

fn json_column(
    row: &sqlx::sqlite::SqliteRow,
    column: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    match row.try_get::<Option<String>, _>(column).map_err(backend)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Backend(format!("{column}: {e}"))),
        None => Ok(None),
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(e.to_string()))
}
