"""Peewee models and the database they are bound to, chosen from a URL at start-up.

Models know nothing of HTTP, sockets or the hub.  The database is reached
through ``database_proxy`` so the same models serve SQLite (the default, one
file in WAL mode) and PostgreSQL (several processes sharing one database).
"""

from __future__ import annotations

import datetime
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse as parse_db_url
from playhouse.pool import PooledPostgresqlDatabase

SCHEMA_VERSION = 5
# pg_advisory_xact_lock key taken while creating the schema ("tp" + schema).
SCHEMA_LOCK_KEY = 0x7470_5343

database_proxy = peewee.DatabaseProxy()


def utcnow() -> datetime.datetime:
    """Naive UTC now: what every timestamp column stores."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def iso(moment: datetime.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, as every API and socket message shows times."""
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds") + "Z"


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """One row: the schema version the tables were created or migrated to."""

    version = peewee.IntegerField()


class User(BaseModel):
    """A citizen or an admin; the password is kept only as a KDF hash."""

    email = peewee.CharField(max_length=254, unique=True)
    name = peewee.CharField(max_length=100)
    role = peewee.CharField(max_length=16, default="citizen")
    password_hash = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField(default=utcnow)
    # False once the user unsubscribed (the link in every mail, or PATCH /api/me).
    email_updates = peewee.BooleanField(default=True)
    # False from a registration with email verification on until its link (or a reset) is used.
    # Accounts from before verification existed, and create-user's, are verified.
    email_verified = peewee.BooleanField(default=True, constraints=[peewee.SQL("DEFAULT TRUE")])

    def to_dict(self) -> dict:
        return {
            "user_id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "email_verified": bool(self.email_verified),
        }


class AuthToken(BaseModel):
    """A bearer or session token, stored only as its SHA-256 hash."""

    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    revoked_at = peewee.DateTimeField(null=True)


class AccountLink(BaseModel):
    """A mailed link that verifies an email or resets a password: single-use, expiring, kept only as a hash."""

    user = peewee.ForeignKeyField(User, backref="links", on_delete="CASCADE")
    purpose = peewee.CharField(max_length=8)  # verify | reset
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)


class Petition(BaseModel):
    """A petition; ``version`` counts status changes, for the admins' optimistic check."""

    title = peewee.CharField(max_length=200)
    description = peewee.TextField()
    category = peewee.CharField(max_length=100, null=True, index=True)
    location = peewee.CharField(max_length=100, null=True)
    author = peewee.ForeignKeyField(User, backref="petitions", index=True)
    status = peewee.CharField(max_length=16, default="submitted", index=True)
    signature_count = peewee.IntegerField(default=0)
    version = peewee.IntegerField(default=1)
    response = peewee.TextField(null=True)
    submitted_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    # Where the count stands in the log, for resume (never shown): ``count_seq`` is
    # the newest lifecycle seq when the count last changed, ``count_version``
    # orders count changes of one petition between processes, and
    # ``count_changed_at`` lets a resume resend counts still in flight.
    count_seq = peewee.BigIntegerField(default=0, index=True, constraints=[peewee.SQL("DEFAULT 0")])
    count_version = peewee.BigIntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])
    count_changed_at = peewee.DateTimeField(null=True, index=True)
    # Signing stops at this time (submitted_at + --signing-days); None: never (rows from before it existed).
    closes_at = peewee.DateTimeField(null=True)
    # JSON text: [{"milestone": "response" | "debate", "at": ISO}], in the order reached.
    milestones = peewee.TextField(default="[]")
    # From the response milestone until an admin's next status change with a note.
    awaiting_response = peewee.BooleanField(default=False)
    # One of lifecycle.REJECTION_REASONS while the petition is rejected.
    rejection_reason = peewee.CharField(max_length=32, null=True)
    # JSON text {"GB": 1234, ...} and {"region": n}: validated signatures by country and by
    # region, folded with every count change (never recounted).
    country_counts = peewee.TextField(default="{}", constraints=[peewee.SQL("DEFAULT '{}'")])
    region_counts = peewee.TextField(default="{}", constraints=[peewee.SQL("DEFAULT '{}'")])
    # When the signers' names, emails, addresses and postcodes were erased (``--anonymize-days``).
    signers_erased_at = peewee.DateTimeField(null=True)
    # False while a petition filed under --premoderation awaits a moderator (``visibility``);
    # rows from before it existed were all public, so the column arrives True.
    published = peewee.BooleanField(default=True, constraints=[peewee.SQL("DEFAULT TRUE")])


class Signature(BaseModel):
    """One person's signature on one petition, from an account (``user``) or confirmed by mail.

    A person is a canonical email (``signers.canonical_email``): one row per
    petition and ``email``, whoever signed.  ``state`` is one of the
    ``signature_states`` constants and only ``validated`` rows count.  The
    client address, email domain, country and times are what limits, blocks,
    trending and invalidations query; names, emails, addresses and postcodes
    are erased once the petition has been closed long enough (country,
    region and state stay, so counts never change).
    """

    # Not indexed alone: every index below leads with the petition.
    petition = peewee.ForeignKeyField(Petition, backref="signatures", on_delete="CASCADE", index=False)
    user = peewee.ForeignKeyField(User, backref="signatures", on_delete="CASCADE", null=True)
    state = peewee.CharField(
        max_length=12, default="validated", constraints=[peewee.SQL("DEFAULT 'validated'")]
    )
    name = peewee.CharField(max_length=100, null=True)
    email = peewee.CharField(max_length=254, null=True)  # canonical
    email_domain = peewee.CharField(max_length=254, null=True)
    address = peewee.CharField(max_length=45, null=True)  # the client's IP address
    country = peewee.CharField(max_length=2, null=True)  # ISO 3166-1 alpha-2
    postcode = peewee.CharField(max_length=16, null=True)
    region = peewee.CharField(max_length=100, null=True)  # from --regions-file, kept after erasure
    # SHA-256 of the confirmation link's token; the link is good until token_expires_at.
    token_hash = peewee.CharField(max_length=64, null=True)
    token_expires_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    validated_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("petition", "user"), True),
            (("petition", "email"), True),
            # Per-address limits, trending and invalidations by address or domain, over time.
            (("petition", "address", "created_at"), False),
            (("petition", "email_domain", "created_at"), False),
        )


# Partial indexes: only the rows each one serves are in it, so an account's signature
# (validated at once, no link) costs one index entry here, not three.
Signature.add_index(
    Signature.index(Signature.token_hash, unique=True).where(Signature.token_hash.is_null(False))
)
# The timeline (count per minute, hour or day of validation).
Signature.add_index(
    Signature.index(Signature.petition, Signature.validated_at).where(Signature.state == "validated")
)
# Unconfirmed signatures past their link's life, for the daily purge.
Signature.add_index(Signature.index(Signature.token_expires_at).where(Signature.state == "pending"))


class EventCounter(BaseModel):
    """One row holding the last seq handed out.

    Incrementing it inside the writing transaction locks the row until
    commit, so seqs are gapless and commit order equals seq order even with
    concurrent writers on PostgreSQL (a rolled-back transaction gives its
    number back).
    """

    value = peewee.BigIntegerField(default=0)


class PetitionEvent(BaseModel):
    """The append-only event log; ``seq`` is the global order every process agrees on.

    ``petition_json`` is the petition as it stood right after the change, so a
    replay shows exactly what the live message showed.
    """

    seq = peewee.BigIntegerField(primary_key=True)
    petition = peewee.ForeignKeyField(Petition, backref="events", on_delete="CASCADE")
    author_id = peewee.IntegerField()
    kind = peewee.CharField(max_length=32)
    actor = peewee.ForeignKeyField(User, backref="actions")
    from_status = peewee.CharField(max_length=16, null=True)
    to_status = peewee.CharField(max_length=16, null=True)
    note = peewee.TextField(null=True)
    milestone = peewee.CharField(max_length=16, null=True)  # "response" or "debate" on a milestone
    petition_json = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)
    # Whether the petition was public right after this event: the public feed carries only these.
    public = peewee.BooleanField(default=True, constraints=[peewee.SQL("DEFAULT TRUE")])


class MailOutbox(BaseModel):
    """One mail to send, written in the same transaction as the change that causes it.

    ``(change_key, user)`` is unique, so one change never mails one person
    twice.  The sender leases pending rows (``lease_owner``/``lease_until``)
    so several processes never send the same row, and marks each row
    ``sent`` only after the SMTP server accepted it.
    """

    change_key = peewee.CharField(max_length=64)
    # The account mailed; None for a signer without one, mailed at ``to_email`` as ``to_name``.
    user = peewee.ForeignKeyField(User, backref="mail", on_delete="CASCADE", null=True)
    to_email = peewee.CharField(max_length=254, null=True)
    to_name = peewee.CharField(max_length=100, null=True)
    # None for mail about the account itself (verification, password reset).
    petition = peewee.ForeignKeyField(Petition, backref="mail", on_delete="CASCADE", null=True)
    # status_changed | milestone | sign_confirm | sign_again (already signed)
    # | verify_email | account_exists | password_reset
    kind = peewee.CharField(max_length=16)
    # mail_outbox.TRANSACTIONAL (someone is waiting for it) or NOTIFICATION (paced).
    lane = peewee.SmallIntegerField(default=1, constraints=[peewee.SQL("DEFAULT 1")])
    # The link token an account mail carries, only until the mail is sent (the link keeps its hash).
    secret = peewee.CharField(max_length=64, null=True)
    title = peewee.CharField(max_length=200)
    status = peewee.CharField(max_length=16)
    note = peewee.TextField(null=True)
    milestone = peewee.CharField(max_length=16, null=True)
    state = peewee.CharField(max_length=8, default="pending")  # pending | sent | failed | skipped
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    lease_owner = peewee.CharField(max_length=32, null=True)
    lease_until = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    error = peewee.TextField(null=True)

    class Meta:
        indexes = (
            (("change_key", "user"), True),
            (("state", "next_attempt_at"), False),
        )


class AuditEntry(BaseModel):
    """One moderator's or admin's action, append-only (``audit.py``; triggers refuse UPDATE and DELETE).

    The actor's name and the target are copied in, so an entry reads as it
    did when written; ``prune-events`` never touches this table.
    """

    actor_id = peewee.IntegerField()
    actor_name = peewee.CharField(max_length=100)
    action = peewee.CharField(max_length=32)
    target_type = peewee.CharField(max_length=16)  # petition | user | invalidation
    target_id = peewee.BigIntegerField()
    details = peewee.TextField(default="{}")  # JSON object
    address = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        # The filters of GET /api/admin/audit, newest first.
        indexes = ((("actor_id", "id"), False), (("action", "id"), False))


# The sender's claim, one lane at a time (transactional mail first).
_MAIL_LANE_INDEX = MailOutbox.index(MailOutbox.lane, MailOutbox.state, MailOutbox.next_attempt_at)


class ServiceSecret(BaseModel):
    """Keys the service generates once and every process shares (the unsubscribe-link key)."""

    name = peewee.CharField(max_length=32, unique=True)
    value = peewee.CharField(max_length=128)


class Block(BaseModel):
    """An admin's block: new signatures from this address or network, domain or email are stored fraudulent."""

    kind = peewee.CharField(max_length=8)  # address (an address or a CIDR network), domain or email
    value = peewee.CharField(
        max_length=254
    )  # normalized: the network's text, lower-case domain, canonical email
    note = peewee.TextField(default="")
    created_by = peewee.ForeignKeyField(User, on_delete="SET NULL", null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "value"), True),)


class Invalidation(BaseModel):
    """One run of the office taking back signatures: its conditions, progress and state, kept for the record.

    ``max_signature_id`` bounds the run to the signatures that existed when
    it was asked for; ``last_signature_id`` is how far its batches have come,
    so a run interrupted by a restart resumes where it stopped.
    """

    conditions = peewee.TextField()  # JSON, as asked
    state = peewee.CharField(max_length=10, default="running")  # running, completed, cancelled
    matched = peewee.IntegerField(default=0)
    invalidated = peewee.IntegerField(default=0)
    max_signature_id = peewee.BigIntegerField(default=0)
    last_signature_id = peewee.BigIntegerField(default=0)
    created_by = peewee.ForeignKeyField(User, on_delete="SET NULL", null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)


MODELS = [
    SchemaVersion,
    User,
    AuthToken,
    AccountLink,
    Petition,
    Signature,
    EventCounter,
    PetitionEvent,
    MailOutbox,
    ServiceSecret,
    AuditEntry,
    Block,
    Invalidation,
]


def open_database(url: str, pool_size: int = 8) -> peewee.Database:
    """Build the database a URL names: ``sqlite:///file.db`` or ``postgresql://...``."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] or ":memory:"
        return peewee.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "synchronous": "normal",
                "foreign_keys": 1,
                "cache_size": -64000,
                "busy_timeout": 5000,
            },
            check_same_thread=False,
        )
    if scheme in ("postgres", "postgresql"):
        params = parse_db_url(url)
        name = params.pop("database")
        return PooledPostgresqlDatabase(name, max_connections=pool_size, stale_timeout=300, **params)
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def bind_database(db: peewee.Database) -> None:
    """Bind the models to ``db``, create missing tables and the search index, migrate older ones, record the schema version."""
    from . import search  # search builds on these models

    database_proxy.initialize(db)
    with db.connection_context(), db.atomic():
        if isinstance(db, peewee.PostgresqlDatabase):
            # Processes starting together would race to create the same tables
            # and counter row; the lock is released at commit.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        existing = set(db.get_tables())
        found = _schema_version() if "schema_version" in existing else SCHEMA_VERSION
        for model in MODELS:
            if model._meta.table_name in existing:
                _add_missing_columns(db, model)
            else:
                model._schema.create_table(safe=True)
        if found < 4:
            _migrate_to_4(db)
        for model in MODELS:
            model._schema.create_indexes(safe=True)
        _allow_null(db, MailOutbox.petition)
        # After the columns it covers exist in tables made by an older version.
        db.execute(MailOutbox._schema._create_index(_MAIL_LANE_INDEX, safe=True))
        search.install(db)
        _protect_audit_log(db)
        if not SchemaVersion.select().exists():
            SchemaVersion.create(version=SCHEMA_VERSION)
        SchemaVersion.update(version=SCHEMA_VERSION).execute()
        if not EventCounter.select().exists():
            EventCounter.create(id=1, value=0)


def _schema_version() -> int:
    row = SchemaVersion.select(SchemaVersion.version).tuples().first()
    return row[0] if row else SCHEMA_VERSION


def _migrator(db: peewee.Database):
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator

    return PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)


def _add_missing_columns(db: peewee.Database, model: type[BaseModel]) -> None:
    """Bring a table made by an older version up to date: add each column the model has and the table lacks.

    Every column added since version 1 is nullable or has a default, so
    adding it is most of the migration; indexes come after (``create_indexes``).
    """
    from playhouse.migrate import migrate

    table = model._meta.table_name
    present = {column.name for column in db.get_columns(table)}
    for field in model._meta.sorted_fields:
        if field.column_name in present:
            continue
        if isinstance(db, peewee.SqliteDatabase):
            # SQLite adds a NOT NULL column with its DEFAULT in place.  Peewee's
            # migrator would rebuild the table, and dropping the old one runs
            # every ON DELETE CASCADE: a petition's signatures and events would go.
            context = db.get_sql_context()
            column = context.sql(field.ddl(context)).query()[0]
            db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {column}')
        else:
            migrate(_migrator(db).add_column(table, field.column_name, field))


def _migrate_to_4(db: peewee.Database) -> None:
    """Signatures became people (version 4): each account signature is validated, under its account's email.

    Two accounts whose emails are one person (``a+x@`` and ``a@``) on one
    petition keep both rows and the count, the second without an email.
    An outbox row may now be for a signer without an account.
    """
    from playhouse.migrate import migrate

    from .signers import canonical_email, email_domain

    # Served now by the indexes that lead with the petition (the timeline's by validation time).
    db.execute_sql('DROP INDEX IF EXISTS "signature_petition_id"')
    db.execute_sql('DROP INDEX IF EXISTS "signature_petition_id_created_at"')
    if not {column.name: column for column in db.get_columns("mail_outbox")}["user_id"].null:
        migrate(_migrator(db).drop_not_null("mail_outbox", "user_id"))
    Signature.update(state="validated", validated_at=Signature.created_at).where(
        Signature.validated_at.is_null() & Signature.user.is_null(False)
    ).execute()
    seen: set[tuple[int, str]] = set()
    rows = (
        Signature.select(Signature.id, Signature.petition, User.email)
        .join(User, on=(Signature.user == User.id))
        .where(Signature.email.is_null())
        .order_by(Signature.id)
        .tuples()
    )
    for signature_id, petition_id, address in list(rows):
        person = canonical_email(address)
        if (petition_id, person) in seen:
            continue
        seen.add((petition_id, person))
        Signature.update(email=person, email_domain=email_domain(address)).where(
            Signature.id == signature_id
        ).execute()


def _protect_audit_log(db: peewee.Database) -> None:
    """Triggers that refuse any UPDATE or DELETE of audit entries, whoever connects."""
    table = AuditEntry._meta.table_name
    message = "the audit log is append-only"
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        db.execute_sql(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        return
    for operation in ("UPDATE", "DELETE"):
        db.execute_sql(
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def _allow_null(db: peewee.Database, field: peewee.Field) -> None:
    """Drop a NOT NULL that an older version had on ``field``'s column (mail_outbox.petition_id, version 2).

    On SQLite peewee rebuilds the table to do it, which is safe only for a
    table no other table references (the outbox).
    """
    from playhouse.migrate import migrate

    table = field.model._meta.table_name
    column = next(c for c in db.get_columns(table) if c.name == field.column_name)
    if not column.null:
        migrate(_migrator(db).drop_not_null(table, field.column_name))


def close_database(db: peewee.Database) -> None:
    """Close every connection the database holds (all pooled ones too)."""
    if isinstance(db, PooledPostgresqlDatabase):
        db.close_all()
    elif not db.is_closed():
        db.close()
