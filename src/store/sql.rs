//! The SQL store, one implementation for both backends through sqlx's `Any` driver: the
//! same statements and the same migration files on embedded SQLite (the default: a file under
//! the data directory, WAL journal with full sync, so a committed write survives a crash of
//! the process or the machine) and on PostgreSQL (several replicas sharing one database).
//! Statements use `$N` parameters, which both understand; schema migrations run in one
//! transaction at open, serialized between replicas.
//!
//! Longer than our usual file on purpose: it is the `Store` trait's one implementation, a
//! flat list of short statements (one method each), and splitting it by table would only
//! scatter the shared pool, dialect and row-mapping helpers.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row};

use super::{
    AuditEvent, AuditFilter, ClientRecord, ReplicaRecord, SigningKeyRecord, SsaRequestRecord,
    StatementRecord, Store, StoreError,
};

/// Schema versions, applied in order, from the same files for both backends (written in
/// SQLite's dialect; [`postgres_dialect`] renames the three types PostgreSQL spells
/// otherwise). Never edit one that has shipped: add another.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_clients.sql"),
    include_str!("migrations/0002_signing_keys.sql"),
    include_str!("migrations/0003_revoked_tokens.sql"),
    include_str!("migrations/0004_used_assertions.sql"),
    include_str!("migrations/0005_client_resources.sql"),
    include_str!("migrations/0006_software_statements.sql"),
    include_str!("migrations/0007_client_jwks_uri.sql"),
    include_str!("migrations/0008_replicas.sql"),
    include_str!("migrations/0009_client_tls_subject.sql"),
    include_str!("migrations/0010_poll_indexes.sql"),
    include_str!("migrations/0011_fleet.sql"),
];

/// Which database is behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// SQLite or PostgreSQL behind [`Store`].
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Seals signing keys on write and opens them on read (a pass-through without a KEK).
    sealer: std::sync::Arc<super::sealing::Sealer>,
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Any key; the one PostgreSQL advisory lock that serializes migrations between replicas.
const MIGRATION_LOCK: i64 = 0x0041_7262_6974_6572; // "Arbiter" in ASCII

impl SqlStore {
    /// Opens (creating if needed) a SQLite database file and brings its schema up to date.
    pub async fn sqlite(path: &Path) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if let Some(dir) = path.parent() {
            super::create_private_dir(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create `{}`: {e}", dir.display()))
            })?;
        }
        // The database and its journal files hold keys and clients: the owner's only.
        super::create_private_file(path)
            .and_then(|()| super::restrict_file(path))
            .map_err(|e| StoreError::Backend(format!("cannot create `{}`: {e}", path.display())))?;
        let path = std::path::absolute(path)
            .map_err(|e| StoreError::Backend(format!("`{}`: {e}", path.display())))?;
        let url = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .to_url_lossy();
        let cannot =
            |e: sqlx::Error| StoreError::Backend(format!("cannot open `{}`: {e}", path.display()));
        // WAL is a property of the database file: set it once, before the pool opens.
        let mut first = AnyConnection::connect(url.as_str()).await.map_err(cannot)?;
        first
            .execute("PRAGMA journal_mode = WAL")
            .await
            .map_err(cannot)?;
        first.close().await.map_err(cannot)?;
        for suffix in ["-wal", "-shm"] {
            let mut journal = path.as_os_str().to_owned();
            journal.push(suffix);
            super::restrict_file(Path::new(&journal))
                .map_err(|e| StoreError::Backend(format!("`{}`: {e}", path.display())))?;
        }
        Self::open(
            AnyConnectOptions::from_url(&url).map_err(cannot)?,
            Backend::Sqlite,
            4,
        )
        .await
        .map_err(|e| StoreError::Backend(format!("`{}`: {e}", path.display())))
    }

    /// Connects to a database by URL (`postgres://…` or `sqlite://FILE`) and brings its
    /// schema up to date. Errors name the database without its password.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redacted_url(url);
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Backend(format!("store URL `{shown}`: {e}")))?;
        match parsed.scheme() {
            "postgres" | "postgresql" => {
                let options = AnyConnectOptions::from_url(&parsed)
                    .map_err(|e| StoreError::Backend(format!("`{shown}`: {e}")))?;
                Self::open(options, Backend::Postgres, max_connections)
                    .await
                    .map_err(|e| StoreError::Backend(format!("`{shown}`: {e}")))
            }
            "sqlite" => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or_default()
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if path.is_empty() {
                    return Err(StoreError::Backend(format!(
                        "store URL `{shown}`: no database file"
                    )));
                }
                Self::sqlite(Path::new(path)).await
            }
            other => Err(StoreError::Backend(format!(
                "store URL `{shown}`: unsupported scheme `{other}` (use postgres:// or sqlite://)"
            ))),
        }
    }

    async fn open(
        options: AnyConnectOptions,
        backend: Backend,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Every commit reaches the disk before it is acknowledged.
                        conn.execute("PRAGMA synchronous = FULL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect: {e}")))?;
        let store = Self {
            pool,
            backend,
            sealer: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Seals signing keys with `sealer` from now on, and seals (or re-seals under the current
    /// key-encryption key) every key stored otherwise: an existing store migrates when it is
    /// first opened with a KEK. Returns how many keys were sealed.
    pub async fn with_sealer(
        mut self,
        sealer: super::sealing::Sealer,
    ) -> Result<(Self, usize), StoreError> {
        self.sealer = std::sync::Arc::new(sealer);
        let mut sealed = 0;
        if self.sealer.protects() {
            let rows = sqlx::query("SELECT kid, purpose, private_der FROM signing_keys")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
            for row in rows {
                let kid: String = row.try_get("kid").map_err(backend)?;
                let purpose: String = row.try_get("purpose").map_err(backend)?;
                let stored: Vec<u8> = row.try_get("private_der").map_err(backend)?;
                let opened = self.sealer.open(&stored, &kid, &purpose)?;
                if !opened.reseal {
                    continue;
                }
                let again = self.sealer.seal(&opened.der, &kid, &purpose)?;
                sqlx::query(
                    "UPDATE signing_keys SET private_der = $1 WHERE kid = $2 AND purpose = $3 AND private_der = $4",
                )
                .bind(&again)
                .bind(&kid)
                .bind(&purpose)
                .bind(&stored)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                sealed += 1;
            }
        }
        Ok((self, sealed))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A statement in this backend's dialect.
    fn dialect(&self, sql: &str) -> String {
        match self.backend {
            Backend::Sqlite => sql.to_owned(),
            Backend::Postgres => postgres_dialect(sql),
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if self.backend == Backend::Postgres {
            // Replicas starting together take turns; the second finds the work done.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::raw_sql(&self.dialect(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL)",
        ))
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
            sqlx::raw_sql(&self.dialect(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Backend(format!("migration {version}: {e}")))?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

/// SQLite's spelling of the schema, for PostgreSQL: `INTEGER` is 64-bit in SQLite (`BIGINT`),
/// `BLOB` is `BYTEA`, and an auto-incremented key is an identity column.
pub fn postgres_dialect(sql: &str) -> String {
    let sql = sql.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    );
    let mut out = String::with_capacity(sql.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "BLOB" => "BYTEA",
            w => w,
        });
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

pub use crate::config::redacted_url;

fn client_from_row(row: &AnyRow) -> Result<ClientRecord, StoreError> {
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
        tls_subject: match json_column(row, "tls_subject")? {
            Some(serde_json::Value::Object(o)) => o
                .into_iter()
                .next()
                .and_then(|(k, v)| Some((k, v.as_str()?.to_owned()))),
            _ => None,
        },
        disabled: row.try_get::<i64, _>("disabled").map_err(backend)? != 0,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn record_replica(&self, r: &ReplicaRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_replicas (replica_id, address, revision, version, loaded_at,
                 last_reload, last_error, source, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (replica_id) DO UPDATE SET address = excluded.address,
                 revision = excluded.revision, version = excluded.version,
                 loaded_at = excluded.loaded_at, last_reload = excluded.last_reload,
                 last_error = excluded.last_error, source = excluded.source,
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&r.replica_id)
        .bind(&r.address)
        .bind(&r.revision)
        .bind(&r.version)
        .bind(r.loaded_at)
        .bind(&r.last_reload)
        .bind(&r.last_error)
        .bind(&r.source)
        .bind(r.started_at)
        .bind(r.heartbeat_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<ReplicaRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM fleet_replicas ORDER BY replica_id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(ReplicaRecord {
                    replica_id: row.try_get("replica_id").map_err(backend)?,
                    address: row.try_get("address").map_err(backend)?,
                    revision: row.try_get("revision").map_err(backend)?,
                    version: row.try_get("version").map_err(backend)?,
                    loaded_at: row.try_get("loaded_at").map_err(backend)?,
                    last_reload: row.try_get("last_reload").map_err(backend)?,
                    last_error: row.try_get("last_error").map_err(backend)?,
                    source: row.try_get("source").map_err(backend)?,
                    started_at: row.try_get("started_at").map_err(backend)?,
                    heartbeat_at: row.try_get("heartbeat_at").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn forget_replica(&self, replica_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM fleet_replicas WHERE replica_id = $1")
            .bind(replica_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_client(&mut conn, c).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM clients WHERE client_id = $1")
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
            sqlx::query("UPDATE clients SET disabled = $1, updated_at = $2 WHERE client_id = $3")
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
        let done = sqlx::query(
            "UPDATE clients SET secret_sha256 = $1, updated_at = $2 WHERE client_id = $3",
        )
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
        sqlx::query("DELETE FROM used_assertions WHERE exp < $1")
            .bind(now() - 600)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        let done = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, exp) VALUES ($1, $2, $3)
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
            "INSERT INTO revoked_tokens (issuer, jti, exp, revoked_at) VALUES ($1, $2, $3, $4)
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
        sqlx::query("DELETE FROM revoked_tokens WHERE exp < $1")
            .bind(now() - 3600)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn revoked_tokens(
        &self,
        now: i64,
        revoked_since: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT issuer, jti, exp FROM revoked_tokens WHERE exp >= $1 AND revoked_at >= $2",
        )
        .bind(now)
        .bind(revoked_since)
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
        let rows = sqlx::query("SELECT * FROM signing_keys WHERE purpose = $1 ORDER BY retired_at IS NULL DESC, created_at DESC, COALESCE(retired_at, 0) DESC, kid")
            .bind(purpose)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| key_from_row(row, &self.sealer))
            .collect()
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if let Some(active) = replaces {
            // Compare and swap: only the rotation that still finds `active` active wins (a
            // concurrent one waits on the row, then finds it retired).
            let retired = sqlx::query(
                "UPDATE signing_keys SET retired_at = $1
                 WHERE kid = $2 AND purpose = $3 AND retired_at IS NULL",
            )
            .bind(key.created_at)
            .bind(active)
            .bind(&key.purpose)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if retired.rows_affected() != 1 {
                return Ok(false);
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, purpose, alg, private_der, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.purpose)
        .bind(&key.alg)
        .bind(self.sealer.seal(&key.private_der, &key.kid, &key.purpose)?)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }
            // Another key of the purpose is active (`signing_keys_one_active`): someone else
            // rotated first.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
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
                "INSERT INTO registered_statements (issuer, jti, client_id, at) VALUES ($1, $2, $3, $4)
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
            "UPDATE clients SET name = $1, allowed_scopes = $2, auth_method = $3, jwks = $4, resources = $5,
                 metadata = $6, updated_at = $7, tls_subject = $8 WHERE client_id = $9 AND disabled = 0",
        )
        .bind(&c.name)
        .bind(c.allowed_scopes.join(" "))
        .bind(&c.auth_method)
        .bind(c.jwks.as_ref().map(ToString::to_string))
        .bind(c.resources.join(" "))
        .bind(c.metadata.as_ref().map(ToString::to_string))
        .bind(now())
        .bind(tls_subject_json(c))
        .bind(&c.client_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit_if_one(tx, done.rows_affected(), audit).await
    }

    async fn delete_client(&self, client_id: &str, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let done =
            sqlx::query("UPDATE clients SET disabled = 1, updated_at = $1 WHERE client_id = $2")
                .bind(now())
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        commit_if_one(tx, done.rows_affected(), audit).await
    }

    async fn create_ssa_request(
        &self,
        r: &SsaRequestRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO ssa_requests (id, requester, status, created_at, body) VALUES ($1, $2, $3, $4, $5)",
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
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM ssa_requests WHERE id = $1")
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
            "SELECT body FROM ssa_requests WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR requester = $2)
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
            "UPDATE ssa_requests SET status = $1, body = $2 WHERE id = $3 AND status = 'pending'",
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
                "INSERT INTO statements (jti, issuer, request_id, revoked_at, body) VALUES ($1, $2, $3, NULL, $4)",
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
        let row = sqlx::query("SELECT body, revoked_at FROM statements WHERE jti = $1")
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
            "UPDATE statements SET revoked_at = $1 WHERE jti = $2 AND issuer = $3 AND revoked_at IS NULL",
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
            "SELECT client_id FROM clients WHERE statement_iss = $1 AND statement_jti = $2 ORDER BY client_id",
        )
        .bind(issuer)
        .bind(jti)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE clients SET disabled = 1, updated_at = $1 WHERE statement_iss = $2 AND statement_jti = $3",
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
            "SELECT * FROM audit_events WHERE ($1 IS NULL OR request_id = $1)
                 AND ($2 IS NULL OR statement_jti = $2) AND ($3 IS NULL OR client_id = $3)
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

fn key_from_row(
    row: &AnyRow,
    sealer: &super::sealing::Sealer,
) -> Result<SigningKeyRecord, StoreError> {
    let kid: String = row.try_get("kid").map_err(backend)?;
    let purpose: String = row.try_get("purpose").map_err(backend)?;
    let stored: Vec<u8> = row.try_get("private_der").map_err(backend)?;
    let opened = sealer.open(&stored, &kid, &purpose)?;
    Ok(SigningKeyRecord {
        kid,
        purpose,
        alg: row.try_get("alg").map_err(backend)?,
        private_der: opened.der,
        protected: opened.protected,
        created_at: row.try_get("created_at").map_err(backend)?,
        retired_at: row.try_get("retired_at").map_err(backend)?,
    })
}

fn now() -> i64 {
    crate::clock::now_i64()
}

async fn insert_client(conn: &mut AnyConnection, c: &ClientRecord) -> Result<(), StoreError> {
    let (statement_iss, statement_jti) = match &c.statement {
        Some((iss, jti)) => (Some(iss.as_str()), Some(jti.as_str())),
        None => (None, None),
    };
    let result = sqlx::query(
        "INSERT INTO clients (client_id, name, secret_sha256, allowed_scopes, auth_method, jwks, software_id, org,
             resources, legacy_audience, statement_iss, statement_jti, registration_token_sha256, metadata,
             disabled, created_at, updated_at, jwks_uri, tls_subject)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
    .bind(tls_subject_json(c))
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

/// Commits `tx` with `audit` when exactly one row changed; otherwise rolls it back (on
/// drop) and answers `false`.
async fn commit_if_one(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    changed: u64,
    audit: &AuditEvent,
) -> Result<bool, StoreError> {
    if changed != 1 {
        return Ok(false);
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

async fn insert_audit(conn: &mut AnyConnection, e: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (at, actor, action, request_id, statement_jti, client_id, reason, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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

fn tls_subject_json(c: &ClientRecord) -> Option<String> {
    c.tls_subject
        .as_ref()
        .map(|(k, v)| serde_json::json!({ k: v }).to_string())
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spells_three_types_otherwise() {
        assert_eq!(
            postgres_dialect(
                "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, b BLOB, interval_s TEXT);"
            ),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, b BYTEA, interval_s TEXT);"
        );
        // Only whole words: column names that contain the type names stay.
        assert_eq!(
            postgres_dialect("ALTER TABLE x ADD COLUMN blob_size INTEGER"),
            "ALTER TABLE x ADD COLUMN blob_size BIGINT"
        );
    }

    #[test]
    fn every_migration_translates_without_sqlite_only_words() {
        for sql in MIGRATIONS {
            let pg = postgres_dialect(sql);
            for word in ["AUTOINCREMENT", "BLOB", "INTEGER"] {
                assert!(!pg.contains(word), "{word} left in {pg}");
            }
        }
    }

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redacted_url("postgres://arbiter:s3cret@db:5432/arbiter?sslmode=verify-full"),
            "postgres://arbiter:***@db:5432/arbiter?sslmode=verify-full"
        );
        assert_eq!(
            redacted_url("postgres://db/arbiter"),
            "postgres://db/arbiter"
        );
        assert_eq!(redacted_url("not a url s3cret"), "<unparsable URL>");
    }
}
