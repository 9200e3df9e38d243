"""Consent as a state machine with a history (issue 13 §3): nobody who left comes back
without confirming, every change is logged, and the log replays to the current state."""

from __future__ import annotations

import ast
import re
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from digest import db
from digest.config import NewsletterConfig
from digest.web.optin import subscribe
from subscribers import consent, lists, privacy, service
from subscribers import io as csv_io
from subscribers.consent import By
from subscribers.errors import ConsentRefused, NotResubscribable, Suppressed
from subscribers.models import (
    ConsentSource,
    MailingList,
    Membership,
    Status,
    Subscriber,
    SuppressionReason,
)
from subscribers.tokens import make_token
from tests.support import web as support
from tests.support.web import client_for, page_csrf, web_world
from tests.support.world import World

sqlite_template = support.sqlite_template
fast_db_url = support.fast_db_url

SECRET = "test-secret-key-of-some-length"


@pytest.fixture
def world(fast_db_url: str, tmp_path: Path) -> World:
    return web_world(fast_db_url, tmp_path)


def sign_up(client: TestClient, address: str) -> None:
    token = page_csrf(client, "/subscribe/weekly")
    response = client.post("/subscribe/weekly", data={"csrf": token, "email": address})
    assert response.status_code == 200


def recipients(world: World) -> list[str]:
    with world.app.transaction() as s:
        return [sub.email for sub in s.scalars(service.recipients(s, "weekly"))]


def test_an_import_never_brings_back_someone_who_unsubscribed(world: World) -> None:
    """The reproduction: one-click unsubscribe, anyone types the address into the form,
    then a CSV import that contains it.  The import must not make them active again."""
    with world.app.transaction() as s:
        sid = service.add_subscriber(s, "reader@example.net", "weekly").subscriber.id
    with client_for(world) as client:
        token = make_token(SECRET, sid, "unsubscribe")
        one_click = client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        sign_up(client, "reader@example.net")
    with world.app.transaction() as s:
        report = csv_io.import_csv(s, b"email\nreader@example.net\n", "weekly")
    (row,) = report.rows
    assert row.outcome == "rejected", row
    assert "unsubscribed on" in row.reason
    assert "only the reader can resubscribe by confirming" in row.reason
    assert recipients(world) == []
    with world.app.transaction() as s:
        who = service.find_subscriber(s, "reader@example.net")
        assert who is not None and who.status is Status.UNSUBSCRIBED


# ---------------------------------------------------------------------------
# The state machine, driven at random against the real library (SQLite)

EMAILS = ("ann@example.net", "bob@example.net")
#: A double opt-in list and a single opt-in one.
LISTS = ("weekly", "daily")
SECTIONS = ["Policy", "Data", "Care"]


def newsletter(list_name: str) -> NewsletterConfig:
    return NewsletterConfig(
        name=list_name,
        title=f"The {list_name.title()}",
        list=list_name,
        sender="News <news@example.org>",
        categories=[{"name": c} for c in SECTIONS],
    )


class ConsentMachine(RuleBasedStateMachine):
    """Random sequences of what readers, admins, imports and providers do.  After each
    step: nobody who left (a list, or everything), bounced or complained is sendable
    unless a confirmation of theirs was accepted since; a confirmation is accepted
    exactly when it should be; an erased address never comes back; and every reader's
    consent log replays to their current statuses through allowed changes only."""

    #: Set by the test: a migrated SQLite file to copy, and a folder to copy it to.
    template: Path
    folder: Path

    def __init__(self) -> None:
        super().__init__()
        path = self.folder / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        self.engine = db.make_engine(f"sqlite:///{path}")
        self.sessions = db.session_factory(self.engine)
        with self.sessions() as s, s.begin():
            lists.create_list(s, "weekly", double_opt_in=True)
            lists.create_list(s, "daily", double_opt_in=False)
        #: (email, list): left or bounced; sendable again only through a confirmation
        self.blocked: set[tuple[str, str]] = set()
        #: blocked pairs whose confirmation email was asked for since they were blocked
        self.asked: set[tuple[str, str]] = set()
        #: confirm links sent: (email, list, subscriber id)
        self.links: list[tuple[str, str, int]] = []
        self.suppressed: set[str] = set()
        self.erased: set[str] = set()

    def teardown(self) -> None:
        self.engine.dispose()

    def _sid(self, session: Session, email: str) -> int | None:
        found = service.find_subscriber(session, email)
        return found.id if found is not None else None

    # -- readers -----------------------------------------------------------

    @rule(email=st.sampled_from(EMAILS), list_name=st.sampled_from(LISTS))
    def form(self, email: str, list_name: str) -> None:
        with self.sessions() as s, s.begin():
            sid = subscribe(s, newsletter(list_name), email, name="Typed", ip="192.0.2.1")
        if sid is not None:
            self.links.append((email, list_name, sid))
            if (email, list_name) in self.blocked:
                self.asked.add((email, list_name))

    @precondition(lambda self: bool(self.links))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        email, list_name, sid = data.draw(st.sampled_from(self.links))
        with self.sessions() as s:
            if self._sid(s, email) != sid:
                return  # erased since: the link belongs to no one
        pair = (email, list_name)
        expected = email not in self.suppressed and (pair not in self.blocked or pair in self.asked)
        try:
            with self.sessions() as s, s.begin():
                service.confirm(s, sid, list_name, by=By(ConsentSource.CONFIRM, "192.0.2.2"))
            accepted = True
        except (NotResubscribable, Suppressed):
            accepted = False
        assert accepted == expected, (pair, self.blocked, self.asked)
        if accepted:
            assert email in self.sendable(list_name)
            self.blocked = {p for p in self.blocked if p[0] != email}
            self.asked = {p for p in self.asked if p[0] != email}
            with self.sessions() as s:
                self.observe(s)

    @rule(email=st.sampled_from(EMAILS), list_name=st.sampled_from(LISTS))
    def one_click(self, email: str, list_name: str) -> None:
        with self.sessions() as s, s.begin():
            sid = self._sid(s, email)
            if sid is not None:
                by = By(ConsentSource.ONE_CLICK, "192.0.2.3")
                service.unsubscribe(s, sid, list_name, by=by)

    @rule(email=st.sampled_from(EMAILS))
    def leave_all(self, email: str) -> None:
        with self.sessions() as s, s.begin():
            sid = self._sid(s, email)
            if sid is not None:
                by = By(ConsentSource.UNSUBSCRIBE_PAGE, "192.0.2.3")
                service.unsubscribe(s, sid, None, by=by)

    @rule(
        email=st.sampled_from(EMAILS),
        keep=st.sets(st.sampled_from(LISTS)),
        sections=st.lists(st.sampled_from(SECTIONS), unique=True),
    )
    def preferences(self, email: str, keep: set[str], sections: list[str]) -> None:
        by = By(ConsentSource.PREFERENCES, "192.0.2.4")
        with self.sessions() as s, s.begin():
            sid = self._sid(s, email)
            if sid is None:
                return
            service.update_subscriber(s, sid, categories=sections, known_categories=SECTIONS)
            for list_name in LISTS:
                if list_name not in keep:
                    service.unsubscribe(s, sid, list_name, by=by)

    # -- admins and imports --------------------------------------------------

    @rule(emails=st.sets(st.sampled_from(EMAILS), min_size=1), list_name=st.sampled_from(LISTS))
    def import_csv(self, emails: set[str], list_name: str) -> None:
        text = "email,categories\n" + "".join(f"{e},Policy;Data;Care\n" for e in sorted(emails))
        with self.sessions() as s, s.begin():
            report = csv_io.import_csv(
                s,
                text.encode(),
                list_name,
                known_categories=[*SECTIONS, "Other"],
                everything=SECTIONS,
                actor="the test",
            )
        taken = {r.email for r in report.rows if r.outcome != "rejected"}
        with self.sessions() as s:
            for email in emails & self.erased:
                assert email not in taken
                assert service.find_subscriber(s, email) is None, f"import brought back {email}"
            for email in taken:
                found = service.find_subscriber(s, email)
                assert found is not None and found.categories == []  # "everything"

    @rule(
        email=st.sampled_from(EMAILS),
        list_name=st.sampled_from(LISTS),
        resubscribe=st.booleans(),
    )
    def admin_add(self, email: str, list_name: str, resubscribe: bool) -> None:
        try:
            with self.sessions() as s, s.begin():
                added = service.add_subscriber(
                    s,
                    email,
                    list_name,
                    name="Admin",
                    resubscribe=resubscribe,
                    by=By(ConsentSource.ADMIN, "the admin"),
                )
        except (NotResubscribable, Suppressed):
            return
        if added.asked:
            self.links.append((email, list_name, added.subscriber.id))
            self.asked.add((email, list_name))

    @rule(email=st.sampled_from(EMAILS), name=st.sampled_from(["A", "B"]))
    def admin_edit(self, email: str, name: str) -> None:
        with self.sessions() as s, s.begin():
            sid = self._sid(s, email)
            if sid is not None:
                service.update_subscriber(s, sid, name=name, attributes={"edited": "yes"})

    # -- providers and erasure ------------------------------------------------

    @rule(email=st.sampled_from(EMAILS), complaint=st.booleans())
    def bounce_or_complaint(self, email: str, complaint: bool) -> None:
        reason = SuppressionReason.SPAM_REPORT if complaint else SuppressionReason.HARD_BOUNCE
        with self.sessions() as s, s.begin():
            service.suppress(s, email, reason, "550", by=By(ConsentSource.WEBHOOK, "sendgrid"))
        self.suppressed.add(email)

    @rule(email=st.sampled_from(EMAILS))
    def erase(self, email: str) -> None:
        with self.sessions() as s, s.begin():
            privacy.forget(s, email)
        self.erased.add(email)
        self.suppressed.add(email)

    # -- what must always hold ------------------------------------------------

    def sendable(self, list_name: str, session: Session | None = None) -> set[str]:
        """Who a send to ``list_name`` would reach (recipients, and the send loop's
        re-check agreeing with it)."""
        if session is None:
            with self.sessions() as s:
                return self.sendable(list_name, s)
        listed = {
            sub.id: sub.email for sub in session.scalars(service.recipients(session, list_name))
        }
        everyone = list(session.scalars(select(Subscriber.id)))
        assert set(service.sendable_names(session, everyone, list_name)) == set(listed)
        return set(listed.values())

    def observe(self, session: Session) -> None:
        """Block every pair that is now gone (left, bounced, complained, erased)."""
        statuses = {
            (email, name): status
            for email, name, status in session.execute(
                select(Subscriber.email_key, MailingList.name, Membership.status)
                .join(Membership, Membership.subscriber_id == Subscriber.id)
                .join(MailingList, MailingList.id == Membership.list_id)
            )
        }
        people = dict(session.execute(select(Subscriber.email_key, Subscriber.status)).all())
        for email in EMAILS:
            for list_name in LISTS:
                pair = (email, list_name)
                if email not in people:
                    gone = email in self.erased
                else:
                    member = statuses.get(pair)
                    gone = people[email] in consent.GONE or member is Status.UNSUBSCRIBED
                if gone and pair not in self.blocked:
                    self.blocked.add(pair)
                    self.asked.discard(pair)

    @invariant()
    def holds(self) -> None:
        with self.sessions() as s:
            # nobody who left is sendable without a confirmation of theirs
            for list_name in LISTS:
                sendable = self.sendable(list_name, s)
                for email, blocked_list in self.blocked:
                    assert not (blocked_list == list_name and email in sendable), (
                        f"{email} left {list_name} and is sendable without confirming"
                    )
            # the log explains every state
            members: dict[int, dict[str, Status]] = {}
            for sid, name, status in s.execute(
                select(Membership.subscriber_id, MailingList.name, Membership.status).join(
                    MailingList, MailingList.id == Membership.list_id
                )
            ):
                members.setdefault(sid, {})[name] = status
            for sub in s.scalars(select(Subscriber)):
                replayed = consent.replay(consent.history(s, sub.id))
                assert replayed.problems == []
                assert replayed.reader is sub.status
                logged = {k: v for k, v in replayed.memberships.items() if v is not None}
                assert logged == members.get(sub.id, {})
            self.observe(s)


def test_consent_state_machine(sqlite_template: Path, tmp_path: Path) -> None:
    ConsentMachine.template = sqlite_template
    ConsentMachine.folder = tmp_path
    run_state_machine_as_test(
        ConsentMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# ---------------------------------------------------------------------------
# The state machine is the only place statuses change

ROOT = Path(__file__).resolve().parent.parent
#: What may write a reader's or a membership's status.
CONSENT_PACKAGE = ROOT / "subscribers" / "consent"
_SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE)\s+(subscriber|membership)\b", re.I)


def _mentions(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` names a member of the Status enum (``Status.ACTIVE``): a value
    being set, not one being read (``Status(row.status)``)."""
    return any(
        isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id in names
        and n.attr.isupper()
        for n in ast.walk(node)
    )


def status_writes(path: Path) -> list[str]:
    """Where ``path`` assigns a subscriber's or a membership's status: ``x.status = …``
    (anywhere in subscribers/, or with the subscribers' Status in digest/), ``status=``
    keywords and ``"status":`` keys with that Status, model constructors given a status,
    and SQL text that inserts or updates those tables' rows."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    models: dict[str, str] = {}  # local name -> subscribers.models name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "subscribers.models":
            for alias in node.names:
                models[alias.asname or alias.name] = alias.name
    status_names = {k for k, v in models.items() if v == "Status"}
    model_names = {k for k, v in models.items() if v in ("Subscriber", "Membership")}
    in_subscribers = "subscribers" in path.relative_to(ROOT).parts[:1]
    found: list[str] = []

    def note(node: ast.AST, what: str) -> None:
        found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        value: ast.AST | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets, value = [node.target], node.value
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "status"
                and (in_subscribers or (value is not None and _mentions(value, status_names)))
            ):
                note(node, "assigns .status")
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "status" and (
                    _mentions(kw.value, status_names)
                    or (isinstance(node.func, ast.Name) and node.func.id in model_names)
                    or (
                        in_subscribers
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "values"
                    )
                ):
                    note(node, "passes status=")
        if isinstance(node, ast.Dict):
            for key, val in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "status"
                    and _mentions(val, status_names)
                ):
                    note(node, 'writes "status":')
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _SQL_WRITE.search(node.value)
            and "status" in node.value
        ):
            note(node, "SQL writing a status")
    return found


def test_only_the_consent_package_changes_statuses() -> None:
    offenders: list[str] = []
    for folder in ("subscribers", "digest", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if CONSENT_PACKAGE in path.parents or "migrations" in path.parts:
                continue
            offenders += status_writes(path)
    assert offenders == [], "statuses change outside subscribers/consent:\n" + "\n".join(offenders)


def test_the_check_finds_direct_writes(tmp_path: Path) -> None:
    """The checker itself: each way of writing a status is caught."""
    sample = ROOT / "subscribers" / "_sample_for_the_test.py"
    sample.write_text(
        "from subscribers.models import Membership, Status\n"
        "sub.status = Status.ACTIVE\n"
        "update(Membership).values(status=Status.ACTIVE)\n"
        "Membership(subscriber_id=1, status=x)\n"
        "row = {'status': Status.ACTIVE}\n"
        "SQL = 'INSERT INTO subscriber (email, status) VALUES (1, 2)'\n",
        encoding="utf-8",
    )
    try:
        found = status_writes(sample)
    finally:
        sample.unlink()
    assert [f.split(": ", 1)[1] for f in found] == [
        "assigns .status",
        "passes status=",
        "passes status=",
        'writes "status":',
        "SQL writing a status",
    ]


def test_the_readme_lists_every_transition_and_who_may_cause_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert consent.rules_table() in readme


# ---------------------------------------------------------------------------
# The machine's rules, one by one


def test_only_the_readers_confirmation_moves_someone_who_left_back() -> None:
    M, R = consent.Level.MEMBERSHIP, consent.Level.READER
    for old in ("unsubscribed", "bounced", "complained"):
        assert consent.who_may(R, consent.State(old), consent.State.ACTIVE) == {
            ConsentSource.CONFIRM
        }
    assert consent.who_may(M, consent.State.UNSUBSCRIBED, consent.State.ACTIVE) == {
        ConsentSource.CONFIRM
    }
    # nobody at all may make a reader pending again
    assert consent.who_may(R, consent.State.UNSUBSCRIBED, consent.State.PENDING) == set()
    why = consent.explain(R, consent.State.UNSUBSCRIBED, consent.State.ACTIVE, ConsentSource.IMPORT)
    assert (
        why == "unsubscribed → active is for the reader alone, by confirming; import may not do it"
    )


def test_every_change_is_logged_with_who_and_from_where(session: Session) -> None:
    lists.create_list(session, "weekly")
    lists.create_list(session, "daily")
    sub = service.add_subscriber(
        session, "ann@example.org", "weekly", by=By(ConsentSource.ADMIN, "command line (ed)")
    ).subscriber
    service.add_subscriber(session, "ann@example.org", "daily")
    service.unsubscribe(session, sub.id, "weekly", by=By(ConsentSource.ONE_CLICK, "192.0.2.7"))
    service.suppress(
        session,
        "ann@example.org",
        SuppressionReason.HARD_BOUNCE,
        "550 5.1.1 no such user",
        by=By(ConsentSource.WEBHOOK, "sendgrid"),
    )
    session.commit()
    lines = [
        (ln.list_name, ln.from_status, ln.to_status, ln.source.value, ln.actor, ln.detail)
        for ln in consent.history(session, sub.id)
    ]
    A, U, B = Status.ACTIVE, Status.UNSUBSCRIBED, Status.BOUNCED
    assert lines == [
        (None, None, A, "admin", "command line (ed)", ""),
        ("weekly", None, A, "admin", "command line (ed)", ""),
        ("daily", None, A, "admin", None, ""),
        ("weekly", A, U, "one-click", "192.0.2.7", ""),
        (None, A, B, "webhook", "sendgrid", "550 5.1.1 no such user"),
    ]
    assert consent.replay(consent.history(session, sub.id)).problems == []


def test_removing_keeps_an_unsubscribe_and_deleting_a_list_is_logged(session: Session) -> None:
    lists.create_list(session, "weekly")
    sub = service.add_subscriber(session, "ann@example.org", "weekly").subscriber
    service.unsubscribe(session, sub.id, "weekly")
    with pytest.raises(ConsentRefused, match="that record stays"):
        service.remove_from_list(session, "ann@example.org", "weekly")
    assert lists.delete_list(session, "weekly") == 1
    session.commit()
    last = consent.history(session, sub.id)[-1]
    assert (last.list_id, last.list_name, last.from_status, last.to_status) == (
        None,
        "weekly",
        Status.UNSUBSCRIBED,
        None,
    )
    assert "deleted" in last.detail
    assert consent.replay(consent.history(session, sub.id)).problems == []


# ---------------------------------------------------------------------------
# A burst of unsubscribes in bulk (the web app's one-click posts, in batches)


def test_a_batch_of_unsubscribes_does_what_each_would_do_in_turn(session: Session) -> None:
    lists.create_list(session, "weekly")
    lists.create_list(session, "daily")
    ids = {}
    for name, on in (("ann", ("weekly", "daily")), ("bob", ("weekly",)), ("cy", ("weekly",))):
        for list_name in on:
            added = service.add_subscriber(session, f"{name}@example.org", list_name)
            ids[name] = added.subscriber.id
    session.commit()
    click = By(ConsentSource.ONE_CLICK, "192.0.2.7")
    page = By(ConsentSource.UNSUBSCRIBE_PAGE, "192.0.2.8")
    L = consent.Leaving
    results = service.unsubscribe_many(
        session,
        [
            L(ids["ann"], "weekly", click),
            L(ids["ann"], "weekly", click),  # the same post twice: nothing the second time
            L(ids["bob"], "daily", click),  # not on it: nothing, and bob stays active
            L(ids["cy"], "gone-list", click),  # no such list: nothing at all
            L(10**9, "weekly", click),  # no such reader
            L(ids["bob"], None, page),  # everything: off weekly, unsubscribed
            L(ids["ann"], "daily", click),  # ann's last list: unsubscribed as a whole
        ],
    )
    session.commit()
    assert results == [["weekly"], [], [], None, None, ["weekly"], ["daily"]]
    status = {n: session.get(Subscriber, i).status for n, i in ids.items()}  # type: ignore[union-attr]
    assert status == {"ann": Status.UNSUBSCRIBED, "bob": Status.UNSUBSCRIBED, "cy": Status.ACTIVE}
    assert recipients_of(session, "weekly") == ["cy@example.org"]
    A, U = Status.ACTIVE, Status.UNSUBSCRIBED
    lines = {
        n: [
            (ln.list_name, ln.from_status, ln.to_status, ln.source.value, ln.actor)
            for ln in consent.history(session, i)
        ][len(on) + 1 :]
        for n, i, on in (
            ("ann", ids["ann"], "wd"),
            ("bob", ids["bob"], "w"),
            ("cy", ids["cy"], "w"),
        )
    }
    assert lines == {
        "ann": [
            ("weekly", A, U, "one-click", "192.0.2.7"),
            ("daily", A, U, "one-click", "192.0.2.7"),
            (None, A, U, "one-click", "192.0.2.7"),
        ],
        "bob": [
            ("weekly", A, U, "unsubscribe-page", "192.0.2.8"),
            (None, A, U, "unsubscribe-page", "192.0.2.8"),
        ],
        "cy": [],
    }
    for i in ids.values():
        assert consent.replay(consent.history(session, i)).problems == []


def recipients_of(session: Session, list_name: str) -> list[str]:
    return sorted(sub.email for sub in session.scalars(service.recipients(session, list_name)))
