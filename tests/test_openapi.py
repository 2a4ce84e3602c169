"""The OpenAPI document: served as built, every documented operation routed, every HTTP route documented."""

from __future__ import annotations

import dataclasses
import re

import pytest
import schemathesis
import tornado.web
import tornado.websocket

from tornado_petitions.handlers.page import WebPageHandler
from tornado_petitions.openapi import build_document
from tornado_petitions.server import make_app
from tornado_petitions.settings import Limits, Settings

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def http_routes(app: tornado.web.Application) -> list[tuple[re.Pattern, type]]:
    """(regex, handler class) of every route the API should document.

    WebSocket channels, the web pages (``/``, ``/petitions/{id}``: HTML for
    people) and Tornado's static files are outside the HTTP JSON API.
    """
    routes = []
    for rule in app.wildcard_router.rules:
        target = rule.target
        if issubclass(
            target, tornado.websocket.WebSocketHandler | tornado.web.StaticFileHandler | WebPageHandler
        ):
            continue
        routes.append((rule.matcher.regex, target))
    return routes


def implemented_methods(handler: type) -> set[str]:
    """The HTTP methods a handler class defines itself (not Tornado's 405 defaults)."""
    return {
        method
        for method in HTTP_METHODS
        if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method)
    }


def sample_path(template: str) -> str:
    """A concrete path for an OpenAPI path template (each parameter becomes 7)."""
    return re.sub(r"\{[^}]+\}", "7", template)


@pytest.fixture
def offline_app(tmp_path):
    return make_app(Settings(db_url=f"sqlite:///{tmp_path / 'routes.db'}"))


def test_every_documented_operation_is_routed_to_a_handler_that_implements_it(offline_app):
    document = build_document(offline_app.config)
    routes = http_routes(offline_app)
    for template, item in document["paths"].items():
        path = sample_path(template)
        handlers = [handler for regex, handler in routes if regex.fullmatch(path)]
        assert handlers, f"{template} is documented but no route matches {path}"
        documented = {method for method in item if method in HTTP_METHODS}
        assert documented, f"{template} documents no operation"
        missing = documented - implemented_methods(handlers[0])
        assert not missing, f"{template}: {sorted(missing)} documented but {handlers[0].__name__} lacks them"


def test_every_http_route_and_method_is_documented(offline_app):
    document = build_document(offline_app.config)
    for regex, handler in http_routes(offline_app):
        templates = [t for t in document["paths"] if regex.fullmatch(sample_path(t))]
        assert templates, f"route {regex.pattern} ({handler.__name__}) is not in the OpenAPI document"
        item = document["paths"][templates[0]]
        undocumented = implemented_methods(handler) - set(item)
        assert not undocumented, f"{templates[0]}: {sorted(undocumented)} implemented but not documented"


def test_every_operation_loads_and_every_reference_resolves():
    schema = schemathesis.openapi.from_dict(build_document(Settings()))
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert "PATCH /api/petitions/{id}/status" in labels
    assert len(operations) == sum(
        len([m for m in item if m in HTTP_METHODS]) for item in build_document(Settings())["paths"].values()
    )
    for operation in operations:
        for status, response in operation.definition.raw["responses"].items():
            assert response.get("description"), f"{operation.label} {status} has no description"


def test_limits_in_the_document_are_the_servers_settings():
    settings = Settings(limits=dataclasses.replace(Limits(), title_max=50, note_max=77, page_size_max=30))
    document = build_document(settings)
    schemas = document["components"]["schemas"]
    assert schemas["NewPetition"]["properties"]["title"]["maxLength"] == 50
    assert schemas["StatusChange"]["properties"]["note"]["maxLength"] == 77
    parameters = {p["name"]: p for p in document["paths"]["/api/petitions"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["anyOf"][0]["maximum"] == 30


def test_protected_operations_declare_bearer_and_public_ones_none():
    document = build_document(Settings())
    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    public = {
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        # The mailed link's token is the credential.
        ("post", "/api/auth/verify"),
        ("post", "/api/auth/password-reset"),
        ("post", "/api/auth/password-reset/confirm"),
        ("get", "/api/petitions"),
        ("get", "/api/petitions/similar"),
        ("get", "/api/petitions/{id}"),
        ("get", "/api/petitions/{id}/events"),
        ("get", "/api/petitions/{id}/signatures/timeline"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
        ("get", "/api/asyncapi.json"),
        # The signed link is the credential.
        ("get", "/unsubscribe/{user_id}/{token}"),
        ("post", "/unsubscribe/{user_id}/{token}"),
        # The mailed link's token is the credential.
        ("post", "/api/signatures/confirm"),
    }
    # Signed in or not (without an account the signature waits for its mailed link).
    either = {("post", "/api/petitions/{id}/signatures")}
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            if (method, template) in public:
                assert operation["security"] == [], (method, template)
            elif (method, template) in either:
                assert operation["security"] == [{"bearerAuth": []}, {}], (method, template)
                assert "401" in operation["responses"], (method, template)
            else:
                assert "security" not in operation, (method, template)
                assert "401" in operation["responses"], (method, template)


@pytest.mark.gen_test
async def test_the_server_serves_the_document_it_builds(api, app, http_server):
    response = await api.get("/api/openapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.body == build_document(app.config)
    assert response.body["openapi"].startswith("3.")
