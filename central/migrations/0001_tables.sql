-- The central service's tables. Portable SQL: the same file runs on SQLite and
-- PostgreSQL (TEXT and BIGINT only; times as RFC 3339 text plus epoch milliseconds
-- where a query orders or compares by them).

-- Named counters; `ticket_number` numbers tickets. An UPDATE … RETURNING inside the
-- create transaction takes the next number: the row lock serialises creates across
-- processes and a rolled-back create leaves no gap.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('ticket_number', 0);

-- Sites and their agents' tokens (SHA-256 of the token; the token is shown once).
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- One row per ticket: the agent's body as JSON, and the columns the queries filter
-- and sort on. `(site, ticket_id)` is the agent's identity of the ticket.
CREATE TABLE tickets (
    number BIGINT PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    device_type TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    severity BIGINT,
    -- 1 for a whole-site outage (device type `site`): first in the desk queue.
    site_outage BIGINT NOT NULL,
    -- Due times in epoch milliseconds.
    respond_by_ms BIGINT,
    onsite_by_ms BIGINT,
    resolve_by_ms BIGINT,
    due_at_ms BIGINT,
    -- The desk's urgency order, kept current by every status change: the next
    -- commitment's due time (9223372036854775807 when none) and the severity
    -- (99 when none). No NULLs, so both databases order them alike.
    queue_due_ms BIGINT NOT NULL,
    queue_severity BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    body TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    closed_at TEXT,
    closed_by TEXT,
    resolution TEXT,
    event_count BIGINT NOT NULL,
    UNIQUE (site, ticket_id)
);
CREATE INDEX tickets_ticket_id ON tickets (ticket_id);
CREATE INDEX tickets_status ON tickets (status, number);
CREATE INDEX tickets_site_number ON tickets (site, number);
CREATE INDEX tickets_device_type ON tickets (device_type);
-- The desk queue: tickets not closed, in urgency order (an index scan, no sort).
CREATE INDEX tickets_queue ON tickets (site_outage DESC, queue_due_ms, queue_severity, number)
    WHERE status <> 'closed';
-- The queue's "overdue" count: a range of this index.
CREATE INDEX tickets_overdue ON tickets (queue_due_ms) WHERE status <> 'closed';

-- Events the agents reported, in arrival order per ticket (`seq` from 1).
CREATE TABLE events (
    ticket_number BIGINT NOT NULL REFERENCES tickets (number),
    seq BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (ticket_number, seq),
    UNIQUE (ticket_number, idempotency_key)
);

-- Idempotency keys of creates, per site (one site's keys never meet another's).
CREATE TABLE create_keys (
    site TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (site, idempotency_key)
);

-- People who use the desk (argon2 password hashes).
CREATE TABLE desk_users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Desk sign-ins: SHA-256 of the cookie's random id; ended by logout or expiry.
CREATE TABLE desk_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX desk_sessions_expiry ON desk_sessions (expires_at_ms);
CREATE INDEX desk_sessions_user ON desk_sessions (user_name);

-- Wrong sign-ins per user name and per client address, for the slow-down.
CREATE TABLE sign_in_failures (
    scope TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_ms BIGINT NOT NULL
);
