"""Petitions over HTTP: list, file, read, history, lifecycle moves and signatures.

Each change runs as one transaction in ``petition_store`` and is published
to the hub only after that call returned, that is, after the commit.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from .. import moderation, petition_store, search, signature_store, signers, visibility
from ..errors import ApiError
from ..events import Event
from ..lifecycle import STATUSES
from ..models import utcnow
from ..rate_limit import Rule
from ..roles import Permission
from ..signature_store import BUCKETS, SignatureRequest
from .base import BaseHandler, ServiceMixin
from .routing import Route


class ChangeHandler(BaseHandler):
    """Handlers that change petitions: commit first, publish after."""

    async def commit(self, change: Callable[..., tuple[dict, Event]], *args) -> dict:
        """Run one change transaction, then publish its event (only once it committed)."""
        petition, event = await self.runner.run(change, *args)
        self.publisher.publish(event)
        return petition


class PetitionsHandler(ChangeHandler):
    """``GET /api/petitions`` (filters, search, four orders, cursor pages) and ``POST`` (file one).

    Filing is limited per user and per client address in a window of its
    own (a day by default): every filing is a row kept for good and an event
    pushed to every socket.  A slot is taken before the commit, so
    concurrent filings cannot pass the limit, and given back if the commit
    fails; a refused body (422) takes none.
    """

    async def get(self) -> None:
        query = self._list_query()
        query["public_only"] = not visibility.sees_everything(await self.viewer())
        page, next_cursor = await self.runner.run(lambda: petition_store.list_petitions(**query))
        self.write_json({"petitions": page, "next_cursor": next_cursor})

    async def post(self) -> None:
        identity = await self.current_identity()
        body = self.read_body("NewPetition")
        rates = self.config.rate_limits
        filing = await self.rate_limiter.hit_all(
            Rule(f"file-user:{identity.user_id}", rates.filings_per_user, rates.filing_window_seconds),
            Rule(
                f"file-address:{self.client_address()}",
                rates.filings_per_address,
                rates.filing_window_seconds,
            ),
        )
        try:
            petition = await self.commit(
                petition_store.create_petition,
                identity,
                body.title,
                body.description,
                body.category,
                body.location,
                self.config.signing_days,
                self.config.premoderation,
            )
        except BaseException:
            await self.rate_limiter.undo_all(filing)
            raise
        self.write_json(petition, 201)

    def _list_query(self) -> dict:
        errors: dict[str, str] = {}
        query: dict = {}

        def integer(name: str, low: int, high: int) -> int | None:
            raw = self.get_query_argument(name, None, strip=False)
            if raw is None or raw == "":
                return None
            # ASCII digits only ("²".isdigit() holds, int("²") raises), and few enough for int().
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
                errors[name] = f"must be an integer from {low} to {high}"
                return None
            return int(raw)

        query["limit"] = integer("limit", 1, self.config.limits.page_size_max) or 20
        query["cursor"] = integer("cursor", 1, 10**15)
        query["author"] = integer("author", 1, 10**15)
        status = self.get_query_argument("status", None, strip=False) or None
        if status is not None and status not in STATUSES:
            errors["status"] = "must be one of " + ", ".join(STATUSES)
        query["status"] = status
        for name, limit in (("category", self.config.limits.category_max), ("q", 200)):
            # Limited as sent, then trimmed (Tornado has already turned control characters to spaces).
            value = self.get_query_argument(name, None, strip=False)
            if value is not None and len(value) > limit:
                errors[name] = f"must be at most {limit} characters"
            query["text" if name == "q" else name] = (value or "").strip() or None
        sort = self.get_query_argument("sort", None, strip=False) or "newest"
        if sort not in search.SORTS:
            errors["sort"] = "must be one of " + ", ".join(search.SORTS)
        query["sort"] = sort
        for name in ("limit", "cursor", "author", "status", "category", "q", "sort"):
            if len(self.get_query_arguments(name, strip=False)) > 1:
                errors[name] = "must be given at most once"
        if errors:
            raise ApiError(
                422, "invalid_fields", "invalid query: " + ", ".join(sorted(errors)), fields=errors
            )
        return query


class SimilarPetitionsHandler(BaseHandler):
    """``GET /api/petitions/similar?title=``: petitions a new one may duplicate, for the filing form."""

    async def get(self) -> None:
        title = self.get_query_argument("title", None, strip=False)
        limit = self.config.limits.title_max
        problem = None
        if title is None:
            problem = "is required"
        elif len(title) > limit:
            problem = f"must be at most {limit} characters"
        elif len(self.get_query_arguments("title", strip=False)) > 1:
            problem = "must be given at most once"
        if problem:
            raise ApiError(422, "invalid_fields", "invalid query: title", fields={"title": problem})
        petitions = await self.runner.run(petition_store.similar_petitions, title)
        self.write_json({"petitions": petitions})


class MyPetitionsHandler(BaseHandler):
    """``GET /api/petitions/my``: the caller's own petitions, newest first."""

    async def get(self) -> None:
        identity = await self.current_identity()
        petitions, _ = await self.runner.run(petition_store.user_petitions, identity.user_id)
        self.write_json({"petitions": petitions})


class MySignaturesHandler(BaseHandler):
    """``GET /api/me/signatures``: which petitions the caller signed (for sign/withdraw buttons)."""

    async def get(self) -> None:
        identity = await self.current_identity()
        ids = await self.runner.run(petition_store.signed_petition_ids, identity.user_id)
        self.write_json({"petition_ids": ids})


class PetitionHandler(BaseHandler):
    """``GET /api/petitions/{id}``."""

    async def get(self, petition_id: str) -> None:
        self.write_json(await self.visible_petition(int(petition_id)))


class PetitionEventsHandler(BaseHandler):
    """``GET /api/petitions/{id}/events``: who changed what, when, with which note."""

    async def get(self, petition_id: str) -> None:
        await self.visible_petition(int(petition_id))
        history = await self.runner.run(petition_store.petition_history, int(petition_id))
        self.write_json({"events": history})


class PetitionStatusHandler(ChangeHandler):
    """``PATCH /api/petitions/{id}/status`` (moderators and admins): move along the lifecycle, audited."""

    async def patch(self, petition_id: str) -> None:
        identity = await self.require(Permission.CHANGE_STATUS)
        body = self.read_body("StatusChange")
        mail = self.config.smtp_url is not None
        petition = await self.commit(
            moderation.change_status,
            self.actor(identity),
            int(petition_id),
            body.status,
            body.note,
            body.version,
            body.reason,
            mail,
        )
        if mail:
            self.application.mail_queued()
        self.write_json(petition)


class SignaturesHandler(ChangeHandler):
    """``POST`` signs, ``DELETE`` withdraws the caller's signature on ``/api/petitions/{id}/signatures``.

    Signed in, a signature counts at once (201 with the petition); without
    credentials, and only when mail is on, the body names the signer, who is
    mailed a link that counts it (202 ``PENDING_ANSWER``).
    """

    async def post(self, petition_id: str) -> None:
        if self.bearer_token() is None and self.session_token() is None:
            await self._sign_without_account(int(petition_id))
            return
        identity = await self.current_identity()
        rates = self.config.rate_limits
        await self.rate_limiter.hit(
            Rule(f"sign:{identity.user_id}", rates.signatures_per_user, rates.window_seconds)
        )
        place = self._place(self.read_body("AccountSignature")) if self.request.body.strip() else {}
        address = self.client_address()
        fraudulent = self._screened(int(petition_id), address, identity.email)
        request = SignatureRequest(identity, int(petition_id), True, address, fraudulent=fraudulent, **place)
        petition = await self.signatures.submit(request)
        self.write_json(petition, 201)

    async def _sign_without_account(self, petition_id: int) -> None:
        if not self.config.smtp_url:
            raise ApiError(
                401, "sign_in_required", "sign in to sign: this service cannot mail a confirmation"
            )
        body = self.read_body("Signature")
        signers.refuse_disposable(body.email)
        # Each attempt mails the address: no one makes the service flood a mailbox.
        rates = self.config.rate_limits
        person = signers.canonical_email(body.email)
        await self.rate_limiter.hit(
            Rule(f"sign-mail:{person}", rates.signature_mails_per_email, rates.window_seconds)
        )
        change_key, token_hash = signers.new_confirmation(self.application.mail_key)
        expires = utcnow() + datetime.timedelta(hours=self.config.link_hours)
        address = self.client_address()
        request = SignatureRequest(
            None,
            petition_id,
            True,
            address,
            fraudulent=self._screened(petition_id, address, body.email),
            name=body.name,
            email=body.email,
            change_key=change_key,
            token_hash=token_hash,
            link_expires_at=expires,
            **self._place(body),
        )
        answer = await self.signatures.submit(request)
        self.application.mail_queued()
        self.write_json(answer, 202)

    def _screened(self, petition_id: int, address: str, email: str) -> bool:
        """Count the attempt; whether it must be stored fraudulent (blocked, or too many from its address)."""
        return self.screen.screen(
            petition_id, address, signers.canonical_email(email), signers.email_domain(email)
        )

    def _place(self, body: Any) -> dict:
        """Where the signer signs from: country as sent, postcode normalized, region looked up."""
        postcode = signers.normal_postcode(body.postcode)
        return {"country": body.country, "postcode": postcode, "region": self.regions.region(postcode)}

    async def delete(self, petition_id: str) -> None:
        identity = await self.current_identity()
        petition = await self.signatures.submit(SignatureRequest(identity, int(petition_id), signing=False))
        self.write_json(petition)


class ConfirmSignatureHandler(BaseHandler):
    """``POST /api/signatures/confirm`` {token}: count the signature the mailed link stands for."""

    async def post(self) -> None:
        body = self.read_body("SignatureConfirmation")
        self.write_json(await confirm_signature(self, body.token))


async def confirm_signature(handler: ServiceMixin, token: str) -> dict:
    """Confirm by the link's token, publish the count it changed (after commit), and answer.

    Shared by the JSON endpoint and the link's own page.  404 for an unknown
    or expired token; again for a confirmed one is the same answer, counted once.
    """
    answer, outcome = await handler.runner.run(
        signature_store.confirm,
        signers.token_hash(token),
        handler.application.milestones,  # type: ignore[attr-defined]
    )
    if outcome.counts:
        handler.publisher.publish_counts(outcome.counts)
    for event in outcome.events:
        handler.publisher.publish(event)
    if outcome.events and handler.config.smtp_url:
        handler.application.mail_queued()  # type: ignore[attr-defined]
    return answer


class TimelineHandler(BaseHandler):
    """``GET /api/petitions/{id}/signatures/timeline?bucket=minute|hour|day``: the count over time."""

    async def get(self, petition_id: str) -> None:
        bucket = self.get_query_argument("bucket", "hour", strip=False)
        if bucket not in BUCKETS or len(self.get_query_arguments("bucket")) > 1:
            raise ApiError(
                422,
                "invalid_fields",
                "invalid query: bucket",
                fields={"bucket": "must be one of " + ", ".join(BUCKETS)},
            )
        await self.visible_petition(int(petition_id))
        points = await self.runner.run(signature_store.timeline, int(petition_id), bucket)
        self.write_json({"bucket": bucket, "points": points})


routes = [
    Route("/api/petitions", PetitionsHandler, {"get": "listPetitions", "post": "filePetition"}),
    Route("/api/petitions/similar", SimilarPetitionsHandler, {"get": "similarPetitions"}),
    Route("/api/petitions/my", MyPetitionsHandler, {"get": "myPetitions"}),
    Route("/api/me/signatures", MySignaturesHandler, {"get": "mySignatures"}),
    Route("/api/petitions/{id}", PetitionHandler, {"get": "getPetition"}),
    Route("/api/petitions/{id}/events", PetitionEventsHandler, {"get": "petitionHistory"}),
    Route("/api/petitions/{id}/status", PetitionStatusHandler, {"patch": "changeStatus"}),
    Route(
        "/api/petitions/{id}/signatures", SignaturesHandler, {"post": "sign", "delete": "withdrawSignature"}
    ),
    Route("/api/petitions/{id}/signatures/timeline", TimelineHandler, {"get": "signatureTimeline"}),
    Route("/api/signatures/confirm", ConfirmSignatureHandler, {"post": "confirmSignature"}),
]
