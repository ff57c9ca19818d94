"""What infra/template.yaml must agree with, and how to read it: shared by test_infra.py (the
template as written) and test_rehearsal.py (the template as CloudFormation receives it).

Inputs (environment):
  TABLE_SCHEMA_JSON     file holding `cargo run -q -p shared --bin create-table -- --print-schema`
                        output (default: <workspace>/target/table-schema.json). Never run here.
  INFRA_TEMPLATE        template to check (default: infra/template.yaml next to this file).
  INFRA_WORKSPACE_ROOT  Cargo workspace root (default: the parent of infra/).
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import cache
from pathlib import Path

import pytest
from cfnlint.decode import decode

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("INFRA_WORKSPACE_ROOT") or HERE.parent).resolve()
TEMPLATE = Path(os.environ.get("INFRA_TEMPLATE") or HERE / "template.yaml").resolve()
SCHEMA_ENV = "TABLE_SCHEMA_JSON"
SCHEMA_DEFAULT = ROOT / "target" / "table-schema.json"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"


# --------------------------------------------------------------------------------------------
# The template
# --------------------------------------------------------------------------------------------


def plain(node):
    """cfn-lint's decoded nodes as plain dicts/lists/str (intrinsics stay as {"Ref": ...})."""
    return json.loads(json.dumps(node))


@cache
def template() -> dict:
    decoded, problems = decode(str(TEMPLATE))
    assert decoded is not None and not problems, f"{TEMPLATE} does not parse: {problems}"
    return plain(decoded)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# Each reader takes the template to read (a modified copy, say); the default is TEMPLATE's.


def resources(kind: str | None = None, tpl: dict | None = None) -> dict[str, dict]:
    res = (tpl or template()).get("Resources", {})
    return {lid: r for lid, r in res.items() if kind is None or r.get("Type") == kind}


def global_function_props(tpl: dict | None = None) -> dict:
    return (tpl or template()).get("Globals", {}).get("Function", {}) or {}


def function_props(logical_id: str, tpl: dict | None = None) -> dict:
    """A function's properties with SAM's Globals.Function merged in (env maps are merged)."""
    merged = dict(global_function_props(tpl))
    own = resources(tpl=tpl)[logical_id].get("Properties", {}) or {}
    for key, value in own.items():
        if key == "Environment":
            env = dict(merged.get("Environment", {}).get("Variables", {}))
            env.update(value.get("Variables", {}))
            merged["Environment"] = {"Variables": env}
        else:
            merged[key] = value
    return merged


def binary_of(logical_id: str, tpl: dict | None = None) -> str:
    meta = resources(tpl=tpl)[logical_id].get("Metadata", {}) or {}
    binary = (meta.get("BuildProperties") or {}).get("Binary")
    assert binary, f"function {logical_id} has no Metadata.BuildProperties.Binary"
    return binary


@cache
def template_functions() -> dict[str, str]:
    """binary name -> logical id."""
    out: dict[str, str] = {}
    for lid in resources(SERVERLESS_FUNCTION):
        binary = binary_of(lid)
        assert binary not in out, f"binary {binary!r} is built by both {out[binary]} and {lid}"
        out[binary] = lid
    return out


def table_logical_id(tpl: dict | None = None) -> str:
    tables = resources("AWS::DynamoDB::Table", tpl)
    assert len(tables) == 1, f"expected exactly one DynamoDB table, found {sorted(tables)}"
    return next(iter(tables))


# --------------------------------------------------------------------------------------------
# The code: Cargo manifests, routes, the OpenAPI document, the table schema
# --------------------------------------------------------------------------------------------


@cache
def workspace_manifest() -> dict:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())


@cache
def watch_router() -> dict[str, str]:
    router = (
        workspace_manifest().get("workspace", {}).get("metadata", {}).get("lambda", {}).get("watch", {}).get("router")
    )
    assert router, "root Cargo.toml has no [workspace.metadata.lambda.watch.router] table"
    return dict(router)


@cache
def function_crates() -> dict[str, dict]:
    """binary name -> that crate's Cargo.toml, for every crate under functions/."""
    crates: dict[str, dict] = {}
    for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        data = tomllib.loads(manifest.read_text())
        package = data.get("package", {})
        bins = [b["name"] for b in data.get("bin", []) if "name" in b] or [package.get("name")]
        for name in bins:
            crates[name] = {"path": manifest.relative_to(ROOT), **data}
    assert crates, f"no function crates found under {ROOT / 'functions'}"
    return crates


def declared_dynamodb_actions(crate: dict) -> list[str] | None:
    """A crate's `[package.metadata.credits] dynamodb-actions` (without the `dynamodb:` prefix)."""
    return (crate.get("package", {}).get("metadata", {}).get("credits", {}) or {}).get("dynamodb-actions")


def matchit_to_apigw(path: str) -> str:
    """`{param}` stays; a `{*rest}` catch-all (last segment only) becomes `{proxy+}`, and
    the root catch-all becomes the `$default` route."""
    if path.startswith("/{*") and path.count("/") == 1:
        return "$default"
    segments = path.split("/")
    out = []
    for i, seg in enumerate(segments):
        if seg.startswith("{*") and seg.endswith("}"):
            assert i == len(segments) - 1, f"catch-all must be the last segment: {path}"
            out.append("{proxy+}")
        else:
            assert "*" not in seg, f"unexpected wildcard in {path}"
            out.append(seg)
    return "/".join(out)


def declared_routes() -> dict[str, str]:
    """The routes the code declares: API Gateway path -> binary, from the watch router."""
    return {matchit_to_apigw(path): binary for path, binary in watch_router().items()}


def apigw_route_matches(route: str, path: str) -> bool:
    """Whether an API Gateway route (`{param}`, a final `{proxy+}`) matches a concrete path."""
    route_parts, path_parts = route.split("/"), path.split("/")
    if route_parts and route_parts[-1] == "{proxy+}":
        head = route_parts[:-1]
        return len(path_parts) > len(head) and apigw_route_matches("/".join(head), "/".join(path_parts[: len(head)]))
    return len(route_parts) == len(path_parts) and all(
        r == p or (r.startswith("{") and r.endswith("}")) for r, p in zip(route_parts, path_parts)
    )


def routed_binary(routes: dict[str, str], path: str) -> str | None:
    """The binary a concrete path reaches through `routes` (API Gateway path -> binary). The
    most specific route wins, as in API Gateway: fewer parameters, no greedy segment, `$default`
    last."""
    matching = sorted(
        (route for route in routes if route != "$default" and apigw_route_matches(route, path)),
        key=lambda route: (route.endswith("{proxy+}"), route.count("{")),
    )
    return routes[matching[0]] if matching else routes.get("$default")


def documented_operation_problems(routes: dict[str, str]) -> list[str]:
    """docs/openapi.json is made from the routes' declarations (tests/tests/openapi.rs checks
    it is current); each operation's path must reach, through `routes`, the function that
    declares it (`x-function`)."""
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    problems = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            binary = routed_binary(routes, path)
            if binary != operation["x-function"]:
                problems.append(f"{method.upper()} {path}: declared by {operation['x-function']}, routed to {binary}")
    return problems


def lower_keys(value):
    """{"AttributeName": ...} and {"attributeName": ...} compare equal."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def key_set(keys) -> frozenset:
    return frozenset((k["attributeName"], k["keyType"]) for k in lower_keys(keys or []))


def attribute_set(definitions) -> frozenset:
    return frozenset((d["attributeName"], d["attributeType"]) for d in lower_keys(definitions or []))


def gsi_shape(gsis) -> dict:
    out = {}
    for g in lower_keys(gsis or []):
        projection = g.get("projection") or {}
        out[g["indexName"]] = (
            key_set(g.get("keySchema")),
            projection.get("projectionType", "ALL"),
            tuple(sorted(projection.get("nonKeyAttributes") or [])),
        )
    return out


@cache
def table_schema() -> dict:
    path = Path(os.environ.get(SCHEMA_ENV) or SCHEMA_DEFAULT)
    if not path.is_file():
        pytest.fail(
            f"table schema JSON not found at {path}. Produce it with\n"
            f"  cargo run -q -p shared --bin create-table -- --print-schema > {SCHEMA_DEFAULT}\n"
            f"or point {SCHEMA_ENV} at such a file."
        )
    return json.loads(path.read_text())
