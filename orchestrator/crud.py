"""Store operations behind the admin API (keyword-only, no HTTP here)."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.models import (
    AnswerProposal,
    AuditLog,
    BotInstance,
    KnowledgeBase,
    LLMProvider,
    RetiredId,
    TokenUsage,
    User,
    utcnow,
)
from orchestrator.schemas import (
    CHANNEL_FIELDS,
    COMMON_DEFAULTS,
    OFFICIAL_PROVIDER_URLS,
    SECRET_FIELDS,
    InstanceCreate,
    InstanceFields,
    UserCreate,
    UserUpdate,
    access_entry_for,
    check_base_url,
    provider_url_allowed,
)
from orchestrator.security import (
    PasswordPolicy,
    SecretBox,
    hash_password,
    is_mask,
    mask_secret,
)
from shared.channels import registry as channel_registry
from shared.store.files import bot_db_filename

if TYPE_CHECKING:
    from orchestrator.settings import Settings


logger = logging.getLogger(__name__)


class FieldError(Exception):
    """Input that passed the schema but not the store's rules; answered as 422 naming the field."""

    def __init__(self, loc: list[str | int], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


# ---------------------------------------------------------------- users


def get_user_by_username(*, session: Session, username: str) -> User | None:
    """The user with this username, if any."""
    return session.exec(select(User).where(User.username == username)).first()


def check_password(
    password: str, *, policy: PasswordPolicy, username: str = "", loc: str = "password"
) -> None:
    """Refuse a password the policy does not accept: a 422 on ``loc`` with zxcvbn's advice."""
    problem = policy.problem(password, user_inputs=(username,) if username else ())
    if problem:
        raise FieldError(["body", loc], problem)


def create_user(
    *, session: Session, user_in: UserCreate, policy: PasswordPolicy | None = None
) -> User:
    """Create a user; a taken username or a weak password is a 422 naming the field.

    ``policy`` defaults to the built-in one (length 10, zxcvbn score 3); the API, the CLI and
    first-run setup pass the configured one."""
    if get_user_by_username(session=session, username=user_in.username):
        raise FieldError(["body", "username"], "username already exists")
    check_password(user_in.password, policy=policy or PasswordPolicy(), username=user_in.username)
    user = User(
        username=user_in.username,
        password_hash=hash_password(user_in.password),
        role=user_in.role,
        active=user_in.active,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def revoke_tokens(user: User) -> None:
    """Make every token issued to ``user`` so far invalid (the caller commits)."""
    user.token_version = (user.token_version or 0) + 1


def update_user(
    *, session: Session, user: User, user_in: UserUpdate, policy: PasswordPolicy | None = None
) -> User:
    """Apply a PATCH to a user. A new password, another role or deactivation revokes the
    user's tokens (they sign in again)."""
    revoke = False
    if user_in.password is not None:
        check_password(
            user_in.password, policy=policy or PasswordPolicy(), username=user.username
        )
        user.password_hash = hash_password(user_in.password)
        revoke = True
    if user_in.role is not None and user_in.role != user.role:
        user.role = user_in.role
        revoke = True
    if user_in.active is not None and user_in.active != user.active:
        user.active = user_in.active
        revoke = revoke or not user_in.active
    if revoke:
        revoke_tokens(user)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def owned_by(*, session: Session, user_id: int) -> dict[str, list[str]]:
    """Ids of what ``user_id`` owns, by kind (``bots``, ``knowledge_bases``)."""
    bots = session.exec(
        select(BotInstance.id).where(BotInstance.owner_id == user_id).order_by(BotInstance.id)
    ).all()
    kbs = session.exec(
        select(KnowledgeBase.id)
        .where(KnowledgeBase.owner_id == user_id)
        .order_by(KnowledgeBase.id)
    ).all()
    return {"bots": list(bots), "knowledge_bases": list(kbs)}


def count_users(*, session: Session) -> int:
    """How many users exist."""
    return int(session.exec(select(func.count()).select_from(User)).one())


# ---------------------------------------------------------------- audit


def audit(
    *,
    session: Session,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: str = "",
    detail: dict[str, Any] | None = None,
    commit: bool = True,
) -> None:
    """Append to the audit log (never with secret values in ``detail``)."""
    session.add(
        AuditLog(
            actor_id=actor.id if actor else None,
            actor=actor.username if actor else "system",
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail or {},
        )
    )
    if commit:
        session.commit()


# ---------------------------------------------------------------- instances


def slugify(name: str) -> str:
    """``"Support Bot"`` → ``support-bot`` (ASCII, lower case, dashes)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:48].strip("-") or "bot"


#: What each kind of slug id names, for :func:`retire_id` and :func:`id_taken`.
ID_TABLES: dict[str, type[BotInstance] | type[KnowledgeBase] | type[LLMProvider]] = {
    "bot": BotInstance,
    "kb": KnowledgeBase,
    "provider": LLMProvider,
}


def id_taken(*, session: Session, kind: str, object_id: str) -> bool:
    """Whether ``object_id`` is held by a ``kind`` object now or was held by a deleted one."""
    if session.get(ID_TABLES[kind], object_id) is not None:
        return True
    return session.get(RetiredId, (kind, object_id)) is not None


def retire_id(*, session: Session, kind: str, object_id: str) -> None:
    """Record that a deleted ``kind`` object held ``object_id``: it is never given out again
    (the caller commits, with the delete)."""
    if session.get(RetiredId, (kind, object_id)) is None:
        session.add(RetiredId(kind=kind, id=object_id))


def _taken_with_prefix(*, session: Session, kind: str, base: str) -> set[str]:
    table = ID_TABLES[kind]
    live = session.exec(select(table.id).where(col(table.id).startswith(base))).all()
    retired = session.exec(
        select(RetiredId.id).where(RetiredId.kind == kind, col(RetiredId.id).startswith(base))
    ).all()
    return set(live) | set(retired)


def unique_slug(*, session: Session, name: str, kind: str = "bot") -> str:
    """A slug of ``name`` no ``kind`` object holds or ever held (``support-bot``,
    ``support-bot-2``, ...): a deleted object's id is never given to another one."""
    base = slugify(name)
    taken = _taken_with_prefix(session=session, kind=kind, base=base)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def new_random_id(*, session: Session, kind: str, nbytes: int = 6) -> str:
    """A random hex id no ``kind`` object holds or ever held (knowledge bases)."""
    while True:
        candidate = secrets.token_hex(nbytes)
        if not id_taken(session=session, kind=kind, object_id=candidate):
            return candidate


def list_instances(
    *, session: Session, kind: str | None = None, owner_id: int | None = None
) -> list[BotInstance]:
    """Instances of a kind (or all), optionally only one owner's, by name."""
    query = select(BotInstance)
    if kind:
        query = query.where(BotInstance.kind == kind)
    if owner_id is not None:
        query = query.where(BotInstance.owner_id == owner_id)
    return list(session.exec(query.order_by(BotInstance.name, BotInstance.id)).all())


@dataclass(frozen=True)
class InstanceRules:
    """What the store accepts for a bot beyond its schema (built from the settings): webhook
    ports only from the bot port range, provider base URLs only official or admin-allowed."""

    port_range: tuple[int, int]
    reserved_ports: frozenset[int] = frozenset()
    allowed_provider_urls: tuple[str, ...] = ()
    #: the sandbox providers' base URL when they run (``FLOTILLA_SANDBOX``), else ``None``.
    sandbox_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> InstanceRules:
        """The rules of this install: ``FLOTILLA_PORT_RANGE_*``, the orchestrator's (and the
        sandbox's) ports, ``FLOTILLA_ALLOWED_PROVIDER_URLS`` (plus the sandbox when it runs)."""
        reserved = {settings.port}
        if settings.sandbox:
            reserved.add(settings.sandbox_port)
        return cls(
            port_range=(settings.port_range_start, settings.port_range_end),
            reserved_ports=frozenset(reserved),
            allowed_provider_urls=tuple(settings.provider_url_allowlist()),
            sandbox_url=f"http://127.0.0.1:{settings.sandbox_port}" if settings.sandbox else None,
        )

    def port_in_range(self, port: int) -> bool:
        """Whether ``port`` is one a bot may listen on (in the range, not reserved)."""
        low, high = self.port_range
        return low <= port <= high and port not in self.reserved_ports


def _check_port(
    *, session: Session, port: int, instance_id: str | None, rules: InstanceRules
) -> None:
    low, high = rules.port_range
    if not low <= port <= high:
        raise FieldError(
            ["body", "webhook_port"],
            f"port {port} is outside the bot port range {low}-{high} "
            "(FLOTILLA_PORT_RANGE_START/END); choose one inside it or leave it empty",
        )
    if port in rules.reserved_ports:
        raise FieldError(["body", "webhook_port"], f"port {port} is reserved by the orchestrator")
    other = session.exec(select(BotInstance).where(BotInstance.webhook_port == port)).first()
    if other and other.id != instance_id:
        raise FieldError(["body", "webhook_port"], f"port {port} is taken by bot {other.id!r}")


def start_refusal(instance: BotInstance, rules: InstanceRules) -> str | None:
    """Why a stored bot may not start under today's rules (a row saved before the rules, or
    edited in the database): its port outside the bot port range, or a provider URL that is
    neither official nor allowed. ``None`` when it may start."""
    if not channel_registry.is_kind(instance.kind):
        return (
            f"no channel kind {instance.kind!r} is registered (a plugin channel needs its "
            "module in FLOTILLA_CHANNEL_PLUGINS)"
        )
    port = instance.webhook_port
    if port is not None and not rules.port_in_range(port):
        low, high = rules.port_range
        return (
            f"port {port} is outside the bot port range {low}-{high} "
            "(FLOTILLA_PORT_RANGE_START/END); choose one inside it or leave it empty"
        )
    config = instance.config or {}
    for key, official in OFFICIAL_PROVIDER_URLS.items():
        value = config.get(key)
        if value and not provider_url_allowed(key, str(value), rules.allowed_provider_urls):
            return _url_refusal(key, official)
    return None


def _url_refusal(key: str, official: str) -> str:
    if not official:  # a plugin channel's URL without an official API
        return f"{key} must be a URL an admin allowed in FLOTILLA_ALLOWED_PROVIDER_URLS"
    return (
        f"{key} must be {official}; other URLs (proxies, a sandbox) need an admin to "
        "allow them in FLOTILLA_ALLOWED_PROVIDER_URLS"
    )


def _check_provider_urls(fields: dict[str, Any], rules: InstanceRules) -> None:
    """Provider base URLs: the official API, or one an admin allowed (no fetches elsewhere)."""
    for key, official in OFFICIAL_PROVIDER_URLS.items():
        value = fields.get(key)
        if not value:
            continue  # empty: the bot uses the official URL
        if not provider_url_allowed(key, str(value), rules.allowed_provider_urls):
            raise FieldError(["body", key], _url_refusal(key, official))


def _check_declared_fields(kind: str, fields: dict[str, Any]) -> None:
    """A plugin channel's settings (keys :class:`InstanceFields` does not declare) against the
    kind's manifest: the type and length its :class:`ConfigField` gives."""
    manifest = channel_registry.get(kind)
    for key, value in list(fields.items()):
        if key in InstanceFields.model_fields:
            continue
        spec = manifest.field(key)
        if spec is None:
            raise FieldError(["body", key], f"{key!r} is not a setting of a {kind} bot")
        fields[key] = _declared_value(spec, value)


def _declared_value(spec: channel_registry.ConfigField, value: Any) -> Any:
    loc: list[str | int] = ["body", spec.name]
    if value is None:
        return "" if spec.secret else spec.default
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise FieldError(loc, "must be true or false")
        return value
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise FieldError(loc, "must be a whole number")
        return value
    if not isinstance(value, str):
        raise FieldError(loc, "must be a string")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise FieldError(loc, f"must be at most {spec.max_length} characters")
    if spec.type != "text" and any(ord(ch) < 32 for ch in value):
        raise FieldError(loc, "must be one line without control characters")
    if spec.type == "url" and value and not is_mask(value):
        try:
            check_base_url(value)
        except ValueError as exc:
            raise FieldError(loc, str(exc)) from None
        return value.rstrip("/")
    return value


def access_list(kind: str, key: str, entries: list[str]) -> list[str]:
    """An access list checked against the ids ``kind``'s channel gives (see
    :func:`orchestrator.schemas.access_entry_for`), normalized, duplicates dropped."""
    out: list[str] = []
    for index, entry in enumerate(entries):
        try:
            out.append(access_entry_for(kind, entry))
        except ValueError as exc:
            raise FieldError(["body", key, index], str(exc)) from None
    return list(dict.fromkeys(out))


def _check_funnel(funnel: dict[str, Any] | None) -> None:
    if funnel is None:
        return
    from shared.funnel import FunnelValidationError, load_funnel

    try:
        load_funnel(funnel)
    except FunnelValidationError as exc:
        first = exc.errors[0] if exc.errors else {"loc": [], "msg": str(exc)}
        raise FieldError(["body", "funnel", *first["loc"]], str(first["msg"])) from exc


def _check_knowledge_bases(*, session: Session, kb_ids: list[str], owner_id: int | None) -> None:
    """Each base must exist and belong to the bot's owner (an admin's bot may use any)."""
    owner = session.get(User, owner_id) if owner_id is not None else None
    for index, kb_id in enumerate(kb_ids):
        kb = session.get(KnowledgeBase, kb_id)
        loc: list[str | int] = ["body", "knowledge_base_ids", index]
        if kb is None:
            raise FieldError(loc, f"knowledge base {kb_id!r} does not exist")
        if not (owner is not None and (owner.role == "admin" or kb.owner_id == owner.id)):
            raise FieldError(loc, f"knowledge base {kb_id!r} belongs to another user")


def _funnel_from_template(
    fields: dict[str, Any], instance: BotInstance, *, default_template: bool
) -> None:
    """Make ``fields["funnel"]`` from ``fields["template"]`` and the business profile (sent, or
    stored on the bot; its name defaults to the bot's). A new bot without a funnel gets
    :data:`~shared.funnel.templates.DEFAULT_TEMPLATE` ("answer from my documents"), never the
    seed-004 sales funnel; an existing bot's ``funnel: null`` keeps meaning that default."""
    from pydantic import ValidationError

    from shared.funnel.templates import DEFAULT_TEMPLATE, TemplateError, render_template

    template = fields.get("template")
    if template is None:
        if not default_template or fields.get("funnel") is not None:
            fields.pop("template", None)
            return
        template = DEFAULT_TEMPLATE
    elif fields.get("funnel") is not None:
        raise FieldError(["body", "template"], "send a template or a funnel, not both")
    config = instance.config or {}
    business = dict(fields.get("business") or config.get("business") or {})
    if not business.get("name"):
        business["name"] = str(fields.get("name") or instance.name or "")[:80]
    current = config.get("funnel")
    faq = current.get("faq") if isinstance(current, dict) and "funnel" not in fields else None
    try:
        funnel = render_template(template, business, faq=faq if isinstance(faq, dict) else None)
    except TemplateError as exc:
        raise FieldError(["body", "template"], str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FieldError(["body", "business", *first["loc"]], str(first["msg"])) from None
    fields["template"] = template
    fields["business"] = business
    fields["funnel"] = funnel


def _apply(
    *,
    session: Session,
    instance: BotInstance,
    data: InstanceFields,
    box: SecretBox,
    rules: InstanceRules,
    default_template: bool = False,
) -> None:
    fields = data.model_dump(exclude_unset=True)
    kind = instance.kind
    _funnel_from_template(fields, instance, default_template=default_template)
    _check_declared_fields(kind, fields)
    allowed = set(COMMON_DEFAULTS) | set(CHANNEL_FIELDS[kind]) | set(SECRET_FIELDS[kind])
    allowed |= {"name", "webhook_port", "enabled", "auto_start", "owner_id"}
    for key in fields:
        if key not in allowed:
            raise FieldError(["body", key], f"{key!r} is not a setting of a {kind} bot")
    if "webhook_port" in fields:
        # A port the user chose is kept; an empty one is allocated (and may move) at start.
        instance.config = {**(instance.config or {}), "port_auto": fields["webhook_port"] is None}
    if fields.get("webhook_port") is not None:
        _check_port(
            session=session,
            port=fields["webhook_port"],
            instance_id=instance.id,
            rules=rules,
        )
    _check_provider_urls(fields, rules)
    for key in ("allowed_phones", "blocked_phones"):
        if fields.get(key):
            fields[key] = access_list(kind, key, fields[key])
    if "funnel" in fields:
        _check_funnel(fields["funnel"])
    if fields.get("knowledge_base_ids"):
        _check_knowledge_bases(
            session=session,
            kb_ids=fields["knowledge_base_ids"],
            owner_id=fields.get("owner_id", instance.owner_id),
        )
    config = dict(instance.config or {})
    if isinstance(fields.get("followups"), dict):
        # A partial ``followups`` (just ``enabled``) keeps the stored touches and hours.
        stored = config.get("followups")
        fields["followups"] = {
            **COMMON_DEFAULTS["followups"],
            **(stored if isinstance(stored, dict) else {}),
            **fields["followups"],
        }
    secrets = box.decrypt(instance.secrets_enc)
    for key, value in fields.items():
        if key in ("name", "webhook_port", "enabled", "auto_start", "owner_id"):
            if key in ("name", "enabled", "auto_start") and value is None:
                raise FieldError(["body", key], "may not be null")
            setattr(instance, key, value)
        elif key in SECRET_FIELDS[kind]:
            if value is None or is_mask(value):
                continue  # omitted or echoed mask: keep the stored secret
            if value == "":
                secrets.pop(key, None)
            else:
                secrets[key] = value
        else:
            config[key] = value
    instance.config = config
    instance.secrets_enc = box.encrypt(secrets)
    instance.updated_at = utcnow()


def create_instance(
    *,
    session: Session,
    kind: str,
    instance_in: InstanceCreate,
    owner_id: int | None,
    box: SecretBox,
    rules: InstanceRules,
) -> BotInstance:
    """Create a bot of ``kind`` with a slug id from its name."""
    instance = BotInstance(
        id=unique_slug(session=session, name=instance_in.name),
        kind=kind,
        name=instance_in.name,
        owner_id=owner_id,
        config={**COMMON_DEFAULTS, **CHANNEL_FIELDS[kind]},
    )
    _apply(
        session=session,
        instance=instance,
        data=instance_in,
        box=box,
        rules=rules,
        default_template=True,
    )
    _fill_sandbox_secrets(instance, box, rules)
    session.add(instance)
    session.commit()
    session.refresh(instance)
    return instance


def _fill_sandbox_secrets(instance: BotInstance, box: SecretBox, rules: InstanceRules) -> None:
    """A new bot wired to the sandbox providers (its provider URL under the sandbox's) gets the
    generated values its manifest declares for the sandbox (``sandbox_default`` with
    ``{random}``, e.g. a Telegram webhook secret) where the request left them empty, as the
    admin UI's "connect to the sandbox" does: a sandbox bot must not refuse every update."""
    manifest = channel_registry.get(instance.kind)
    config = instance.config or {}
    if rules.sandbox_url is None or manifest.sandbox is None:
        return
    base = str(config.get(manifest.sandbox.base_url_field) or "")
    if not base.startswith(rules.sandbox_url.rstrip("/") + "/"):
        return
    generated = channel_registry.sandbox_values(instance.kind, rules.sandbox_url)
    secrets = box.decrypt(instance.secrets_enc)
    changed = False
    for f in manifest.fields:
        if not f.secret or f.name not in generated or secrets.get(f.name):
            continue
        if "{random" not in (f.sandbox_default or ""):
            continue
        secrets[f.name] = generated[f.name]
        changed = True
    if changed:
        instance.secrets_enc = box.encrypt(secrets)


def update_instance(
    *,
    session: Session,
    instance: BotInstance,
    instance_in: InstanceFields,
    box: SecretBox,
    rules: InstanceRules,
) -> BotInstance:
    """Apply a PUT (fields not sent keep their values; secrets omitted or masked are kept)."""
    _apply(
        session=session,
        instance=instance,
        data=instance_in,
        box=box,
        rules=rules,
    )
    session.add(instance)
    session.commit()
    session.refresh(instance)
    return instance


def instance_settings(
    instance: BotInstance, box: SecretBox, *, reveal: bool, show_tail: bool = False
) -> dict[str, Any]:
    """The flat JSON of one bot; secrets masked unless ``reveal`` (internal API only).

    Masks are ``"****"``; ``show_tail`` (admins and users, never guests) adds the last four.
    """
    kind = instance.kind
    out: dict[str, Any] = {
        "id": instance.id,
        "kind": kind,
        "name": instance.name,
        "owner_id": instance.owner_id,
        "enabled": instance.enabled,
        "auto_start": instance.auto_start,
        "webhook_port": instance.webhook_port,
    }
    config = instance.config or {}
    # A kind no longer registered (its plugin not loaded) shows its common settings only.
    for key, default in {**COMMON_DEFAULTS, **CHANNEL_FIELDS.get(kind, {})}.items():
        out[key] = config.get(key, default)
    secrets = box.decrypt(instance.secrets_enc)
    for key in SECRET_FIELDS.get(kind, ()):
        value = secrets.get(key, "")
        out[key] = value if reveal else mask_secret(value, tail=show_tail)
    out["created_at"] = instance.created_at.isoformat()
    out["updated_at"] = instance.updated_at.isoformat()
    return out


def used_ports(*, session: Session) -> set[int]:
    """Every webhook port an instance holds."""
    ports = session.exec(select(BotInstance.webhook_port)).all()
    return {p for p in ports if p is not None}


# ---------------------------------------------------------------- deletion


def bot_files(*, data_dir: Path, logs_dir: Path, kind: str, instance_id: str) -> list[Path]:
    """Every file a bot leaves on disk: its database (with ``-wal``/``-shm``/``-journal``), its
    logs (rotated ones too) and its pid file."""
    db = data_dir / bot_db_filename(kind, instance_id)
    files = [db] + [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    log = logs_dir / f"{kind}_bot_{instance_id}.log"
    files.append(log)
    if logs_dir.is_dir():
        files += sorted(logs_dir.glob(f"{kind}_bot_{instance_id}.log.*"))
    files.append(data_dir / "run" / f"{kind}_bot_{instance_id}.json")
    return files


def purge_bot_files(*, data_dir: Path, logs_dir: Path, kind: str, instance_id: str) -> int:
    """Delete what :func:`bot_files` names (the bot must be stopped); returns how many went."""
    removed = 0
    files = bot_files(data_dir=data_dir, logs_dir=logs_dir, kind=kind, instance_id=instance_id)
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        logger.info("deleted bot files", extra={"bot_id": instance_id, "files": removed})
    return removed


def delete_instance_rows(*, session: Session, instance: BotInstance) -> None:
    """Delete a bot's row, its token-usage rows and suggested answers, and retire its id (the
    caller commits)."""
    for usage in session.exec(select(TokenUsage).where(TokenUsage.bot_id == instance.id)).all():
        session.delete(usage)
    proposals = select(AnswerProposal).where(AnswerProposal.bot_id == instance.id)
    for proposal in session.exec(proposals).all():
        session.delete(proposal)
    retire_id(session=session, kind="bot", object_id=instance.id)
    session.delete(instance)
