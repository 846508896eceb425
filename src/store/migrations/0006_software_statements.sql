
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
