
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
