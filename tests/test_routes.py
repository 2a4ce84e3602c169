"""Each route is declared once (``handlers.ROUTES``): the router, the OpenAPI document and docs/api.md agree."""

from __future__ import annotations

import re
from pathlib import Path

import tornado.web

from tornado_petitions.handlers import ROUTES
from tornado_petitions.handlers.page import WebPageHandler
from tornado_petitions.openapi import _operations, build_document
from tornado_petitions.settings import Settings

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of each row of docs/api.md's route table, without query strings or bodies."""
    lines = API_DOC.read_text().splitlines()
    start = lines.index("| method and path | who | answer |")
    found: set[tuple[str, str]] = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first_cell = re.match(r"\| (.*?) \| ", line).group(1)
        found |= set(re.findall(r"`([A-Z]+) (/[^`?\s]*)", first_cell))
    return found


def test_the_documented_route_table_is_the_declared_routes():
    declared = {(method.upper(), route.path) for route in ROUTES for method in route.operations}
    declared |= {("GET", route.path) for route in ROUTES if issubclass(route.handler, WebPageHandler)}
    documented = documented_routes()
    assert declared - documented == set(), "routes missing from docs/api.md's route table"
    assert documented - declared == set(), "docs/api.md's route table names routes no handler serves"


def test_every_operation_is_served_by_one_route_and_every_route_operation_exists():
    operation_ids = [operation["operationId"] for operation in _operations(Settings())]
    assert len(set(operation_ids)) == len(operation_ids)
    routed = [operation_id for route in ROUTES for operation_id in route.operations.values()]
    assert sorted(routed) == sorted(operation_ids)


def test_the_document_has_a_path_for_each_api_route_and_no_other():
    paths = build_document(Settings())["paths"]
    assert list(paths) == [route.path for route in ROUTES if route.operations]
    for route in ROUTES:
        if route.operations:
            item = paths[route.path]
            assert [parameter["name"] for parameter in item.get("parameters", [])] == route.parameters
            assert {method for method in item if method != "parameters"} == set(route.operations)


def test_each_path_reaches_its_own_handler_in_the_router(tmp_path):
    app = tornado.web.Application([route.rule() for route in ROUTES])
    for route in ROUTES:
        sample = re.sub(r"\{[^}]+\}", "7", route.path)
        (matched,) = [rule for rule in app.wildcard_router.rules if rule.matcher.regex.fullmatch(sample)][:1]
        assert (matched.target, matched.target_kwargs) == (route.handler, {"route": route.path})
    assert len({route.path for route in ROUTES}) == len(ROUTES)
