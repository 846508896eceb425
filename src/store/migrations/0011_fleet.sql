-- The fleet: what each replica runs, and when it last said so (`arbiter fleet status`).
CREATE TABLE fleet_replicas (
    replica_id   TEXT PRIMARY KEY NOT NULL,
    address      TEXT NOT NULL,
    revision     TEXT NOT NULL,
    version      TEXT NOT NULL,
    loaded_at    INTEGER NOT NULL,
    last_reload  TEXT NOT NULL,
    last_error   TEXT NOT NULL,
    source       TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
