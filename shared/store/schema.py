"""Versioned migrations of a bot's SQLite file (``PRAGMA user_version``).

Append new migrations; never edit one that has shipped. Migration ``n`` (1-based) brings the
database from version ``n - 1`` to ``n``.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        phone TEXT,
        bsuid TEXT,
        parent_bsuid TEXT,
        username TEXT,
        telegram_id TEXT,
        profile_name TEXT,
        funnel_state TEXT,
        segment TEXT,
        answers TEXT NOT NULL DEFAULT '{}',
        data TEXT NOT NULL DEFAULT '{}',
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        last_inbound_at TEXT,
        rate_notice_at TEXT
    );
    CREATE UNIQUE INDEX users_phone ON users(phone) WHERE phone IS NOT NULL;
    CREATE UNIQUE INDEX users_bsuid ON users(bsuid) WHERE bsuid IS NOT NULL;
    CREATE UNIQUE INDEX users_telegram_id ON users(telegram_id) WHERE telegram_id IS NOT NULL;

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        user_id INTEGER REFERENCES users(id),
        type TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        ts TEXT NOT NULL
    );
    CREATE INDEX events_user ON events(user_id, id);

    CREATE TABLE custom_discovery (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        step TEXT NOT NULL,
        answer TEXT NOT NULL,
        ts TEXT NOT NULL,
        UNIQUE (user_id, step)
    );

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        user_id INTEGER REFERENCES users(id),
        customer TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        provider_message_id TEXT,
        type TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        status TEXT,
        error TEXT,
        error_code INTEGER,
        outbox_id INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX messages_provider ON messages(provider_message_id);
    CREATE INDEX messages_user ON messages(user_id, id);

    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        provider_message_id TEXT NOT NULL UNIQUE,
        customer TEXT NOT NULL,
        raw TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'received'
            CHECK (state IN ('received', 'processing', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        request_id TEXT,
        received_at TEXT NOT NULL,
        processed_at TEXT
    );
    CREATE INDEX inbox_open ON inbox(state) WHERE state IN ('received', 'processing');

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        user_id INTEGER REFERENCES users(id),
        customer TEXT NOT NULL,
        recipient TEXT NOT NULL,
        reply TEXT NOT NULL,
        reply_to TEXT,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        provider_message_ids TEXT,
        last_error TEXT,
        error_code INTEGER,
        source_inbox_id INTEGER,
        origin TEXT NOT NULL DEFAULT 'bot',
        request_id TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX outbox_open ON outbox(state, next_attempt_at)
        WHERE state IN ('pending', 'sending');
    CREATE INDEX outbox_customer ON outbox(customer, id);

    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        raw TEXT NOT NULL,
        reason TEXT NOT NULL,
        request_id TEXT,
        ts TEXT NOT NULL
    );

    CREATE TABLE continuations (
        token TEXT PRIMARY KEY,
        user_id INTEGER,
        reply TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 2: messages the rate limit does not count (funnel button presses and step answers)
    """
    ALTER TABLE messages ADD COLUMN rate_counted INTEGER NOT NULL DEFAULT 1;
    """,
    # 3: part-level send tracking, so a restart resends only what the provider did not accept:
    # parts_sent is a JSON object {part index: provider id}, committed as each part is accepted;
    # parts_total is the number of parts the reply rendered to (known once one part is recorded).
    """
    ALTER TABLE outbox ADD COLUMN parts_sent TEXT;
    ALTER TABLE outbox ADD COLUMN parts_total INTEGER;
    """,
    # 4: customer identities (scheme, value) instead of channel-named columns on users. Each old
    # column becomes one scheme (telegram_id → telegram_user). A value two customers shared
    # (possible only for usernames and parent BSUIDs, which had no unique index) goes to the
    # one seen last, as the store does for those schemes since.
    """
    CREATE TABLE identities (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        scheme TEXT NOT NULL,
        value TEXT NOT NULL,
        UNIQUE (scheme, value)
    );
    CREATE INDEX identities_user ON identities(user_id, scheme);
    CREATE INDEX identities_value ON identities(value);
    INSERT OR IGNORE INTO identities (user_id, scheme, value)
        SELECT id, 'phone', phone FROM users WHERE phone IS NOT NULL AND phone != '' ORDER BY id;
    INSERT OR IGNORE INTO identities (user_id, scheme, value)
        SELECT id, 'bsuid', bsuid FROM users WHERE bsuid IS NOT NULL AND bsuid != '' ORDER BY id;
    INSERT OR IGNORE INTO identities (user_id, scheme, value)
        SELECT id, 'telegram_user', telegram_id FROM users
        WHERE telegram_id IS NOT NULL AND telegram_id != '' ORDER BY id;
    INSERT OR IGNORE INTO identities (user_id, scheme, value)
        SELECT id, 'parent_bsuid', parent_bsuid FROM users
        WHERE parent_bsuid IS NOT NULL AND parent_bsuid != '' ORDER BY last_seen DESC, id DESC;
    INSERT OR IGNORE INTO identities (user_id, scheme, value)
        SELECT id, 'username', username FROM users
        WHERE username IS NOT NULL AND username != '' ORDER BY last_seen DESC, id DESC;
    DROP INDEX users_phone;
    DROP INDEX users_bsuid;
    DROP INDEX users_telegram_id;
    ALTER TABLE users DROP COLUMN phone;
    ALTER TABLE users DROP COLUMN bsuid;
    ALTER TABLE users DROP COLUMN parent_bsuid;
    ALTER TABLE users DROP COLUMN username;
    ALTER TABLE users DROP COLUMN telegram_id;
    """,
    # 5: the durable scheduler (shared.botkit.scheduler) and follow-up sequences
    # (shared.botkit.followups). A job is claimed (pending → running, committed) before its
    # action; a job that sends commits its outbox row together with ``done`` (outbox_id).
    # ``dedupe_key`` makes "create this job once" an INSERT OR IGNORE.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        due_at TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        dedupe_key TEXT UNIQUE,
        user_id INTEGER,
        outbox_id INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX jobs_open ON jobs(status, due_at) WHERE status IN ('pending', 'running');
    CREATE INDEX jobs_user ON jobs(user_id, id);

    CREATE TABLE followups (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'stopped', 'completed')),
        touches_sent INTEGER NOT NULL DEFAULT 0,
        touches_total INTEGER NOT NULL,
        next_due_at TEXT,
        stop_reason TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX followups_one_active ON followups(user_id) WHERE status = 'active';
    CREATE INDEX followups_user ON followups(user_id, id);

    CREATE TABLE opt_outs (
        user_id INTEGER PRIMARY KEY REFERENCES users(id),
        reason TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL
    );
    """,
    # 6: human handoff (issue 13). users.ownership says who answers the customer (bot, pending:
    # waiting for a person, human: a named person took it); a handover row is the reason. Only
    # shared.store.handovers changes either, both in one transaction; at most one open
    # (pending/active) handover per customer. users.conversation is the lifecycle (open/closed).
    """
    ALTER TABLE users ADD COLUMN ownership TEXT NOT NULL DEFAULT 'bot'
        CHECK (ownership IN ('bot', 'pending', 'human'));
    ALTER TABLE users ADD COLUMN conversation TEXT NOT NULL DEFAULT 'open'
        CHECK (conversation IN ('open', 'closed'));
    ALTER TABLE users ADD COLUMN conversation_changed_at TEXT;
    CREATE TABLE handovers (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        customer TEXT NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'active', 'resolved', 'expired')),
        assignee TEXT,
        question TEXT NOT NULL DEFAULT '',
        desk_topic_id TEXT,
        created_at TEXT NOT NULL,
        taken_at TEXT,
        closed_at TEXT,
        closed_by TEXT,
        acked_at TEXT,
        renotified_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX handovers_one_open ON handovers(user_id)
        WHERE status IN ('pending', 'active');
    CREATE INDEX handovers_status ON handovers(status, created_at);
    """,
]

#: The version a database written by this code has (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)
#: The first version with the ``identities`` table (readers of older files fall back).
IDENTITIES_VERSION = 4
#: The first version with the ``jobs``, ``followups`` and ``opt_outs`` tables.
JOBS_VERSION = 5
#: The first version with ``handovers`` and ``users.ownership`` (found by content, not by number).
HANDOVERS_VERSION = next(
    n for n, script in enumerate(MIGRATIONS, start=1) if "CREATE TABLE handovers" in script
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's ``user_version``.

    Args:
        conn: an open connection in autocommit mode.

    Returns:
        The schema version after migrating.

    Raises:
        RuntimeError: the file is newer than this code.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this code ({len(MIGRATIONS)})"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' instead (no ';' inside strings).
    return [part.strip() for part in script.split(";") if part.strip()]
