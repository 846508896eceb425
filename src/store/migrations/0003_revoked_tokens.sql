
CREATE TABLE revoked_tokens (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    exp        INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
