"""Checks infra/template.yaml against the sources it must agree with.

- cfn-lint finds no error;
- routes: the root Cargo.toml's `[workspace.metadata.lambda.watch.router]` table (what
  `cargo lambda watch` serves locally) is exactly the HTTP API's routes, method ANY, and
  /admin routes alone need IAM authorization; every operation of docs/openapi.json (made from
  the routes' declarations) reaches the function that declares it;
- functions: every crate under functions/ is one template function and vice versa;
- table: key schema, attributes, GSIs, TTL and billing equal `create-table --print-schema`;
- IAM: each function may perform exactly the DynamoDB actions its crate declares in
  `[package.metadata.credits] dynamodb-actions`, on the table only, and nothing on `*` but
  dynamodb:ListStreams for the stream's consumer (why: LIST_STREAMS below);
- secrets: only Secrets Manager dynamic references (every STRIPE_* variable included), never a
  secret in a parameter, and no STRIPE_* variable in Globals (only on the functions using it).
This is the template as written; test_rehearsal.py checks it as CloudFormation receives it.

Inputs (environment; read by infra_sources.py, which holds the readers these tests share with
test_rehearsal.py):
  TABLE_SCHEMA_JSON     file holding `cargo run -q -p shared --bin create-table -- --print-schema`
                        output (default: <workspace>/target/table-schema.json). Required by the
                        table test; these tests never run cargo.
  INFRA_TEMPLATE        template to check (default: infra/template.yaml next to this file).
  INFRA_WORKSPACE_ROOT  Cargo workspace root (default: the parent of infra/).
The last two exist so the tests can be pointed at deliberately broken copies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# make test imports test modules by path (--import-mode=importlib): the shared readers sit here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from infra_sources import (  # noqa: E402
    ROOT,
    SERVERLESS_FUNCTION,
    TEMPLATE,
    as_list,
    attribute_set,
    binary_of,
    declared_dynamodb_actions,
    declared_routes,
    documented_operation_problems,
    function_crates,
    function_props,
    global_function_props,
    gsi_shape,
    key_set,
    lower_keys,
    resources,
    table_logical_id,
    table_schema,
    template,
    template_functions,
    watch_router,
)

SECRETSMANAGER_REF = "{{resolve:secretsmanager:"
# Environment variables and parameters whose names say they hold a secret.
SECRET_NAME = re.compile(r"SECRET|TOKEN|KEY", re.IGNORECASE)
# Parameters that name a secret (where it is kept), as opposed to holding one.
SECRET_REFERENCE_PARAM = re.compile(r"(Name|Arn|Id)$")
# Shapes of real secret values that must never be a parameter default.
SECRET_VALUE = re.compile(r"^(sk|rk|pk)_(test|live)_|^whsec_|^-----BEGIN|^eyJ")
SECRET_NAME_OR_ARN = re.compile(r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}$")


# --------------------------------------------------------------------------------------------
# cfn-lint
# --------------------------------------------------------------------------------------------


def test_cfn_lint_reports_no_errors():
    # cfn-lint has no `python -m cfnlint` entry point; run its console entry with this Python.
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Exit code is a bitmask: 2 error, 4 warning, 8 informational; 1 = cfn-lint itself failed.
    assert run.returncode & 0b11 == 0, f"cfn-lint exit {run.returncode}:\n{run.stdout}\n{run.stderr}"


# --------------------------------------------------------------------------------------------
# Routes and functions
# --------------------------------------------------------------------------------------------


def http_api_routes() -> list[dict]:
    """Every HttpApi event of every function, with its effective authorizer."""
    apis = resources("AWS::Serverless::HttpApi")
    routes = []
    for lid in resources(SERVERLESS_FUNCTION):
        for name, event in (function_props(lid).get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api_ref = (props.get("ApiId") or {}).get("Ref")
            api_auth = (apis.get(api_ref, {}).get("Properties") or {}).get("Auth") or {}
            authorizer = (props.get("Auth") or {}).get("Authorizer") or api_auth.get("DefaultAuthorizer") or "NONE"
            routes.append(
                {
                    "where": f"{lid}.Events.{name}",
                    "api": api_ref,
                    "path": props.get("Path"),
                    "method": str(props.get("Method", "")).upper(),
                    "binary": binary_of(lid),
                    "authorizer": authorizer,
                    "payload": str(props.get("PayloadFormatVersion", "2.0")),
                }
            )
    return routes


def test_routes_match_the_watch_router():
    expected = set(declared_routes().items())
    routes = http_api_routes()
    actual = {(r["path"], r["binary"]) for r in routes}

    problems = [f"in the watch router but no HttpApi event: {p} -> {f}" for p, f in sorted(expected - actual)]
    problems += [f"HttpApi event not in the watch router: {p} -> {f}" for p, f in sorted(actual - expected)]
    assert not problems, "routes differ (paths in API Gateway syntax):\n  " + "\n  ".join(problems)

    for r in routes:
        assert r["method"] == "ANY", f"{r['where']}: Method {r['method']!r}, expected ANY (the function answers 405)"
        assert r["payload"] == "2.0", f"{r['where']}: payload format {r['payload']}, cargo lambda watch emits 2.0"
        assert r["api"] in resources("AWS::Serverless::HttpApi"), f"{r['where']}: ApiId must !Ref the HttpApi"
    paths = [r["path"] for r in routes]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    assert not dupes, f"paths routed more than once: {dupes}"


def test_every_documented_operation_reaches_its_function():
    routes = {r["path"]: r["binary"] for r in http_api_routes()}
    problems = documented_operation_problems(routes)
    assert not problems, "template routes and declarations differ:\n  " + "\n  ".join(problems)


def test_admin_routes_need_iam_and_the_rest_do_not():
    for r in http_api_routes():
        wants = "AWS_IAM" if r["path"].startswith("/admin/") or r["path"] == "/admin" else "NONE"
        assert r["authorizer"] == wants, f"{r['where']} ({r['path']}): authorizer {r['authorizer']}, expected {wants}"


def test_every_function_crate_has_a_template_function_and_vice_versa():
    crates = set(function_crates())
    funcs = set(template_functions())
    assert not crates - funcs, f"function crates with no template function: {sorted(crates - funcs)}"
    assert not funcs - crates, f"template functions with no crate under functions/: {sorted(funcs - crates)}"
    routed = set(watch_router().values())
    assert not routed - crates, f"watch router names functions with no crate: {sorted(routed - crates)}"


def test_functions_build_and_run_as_rust_on_lambda():
    arch_param = template().get("Parameters", {}).get("Architecture", {})
    assert arch_param.get("Default") == "arm64", "parameter Architecture must default to arm64"
    assert sorted(arch_param.get("AllowedValues", [])) == ["arm64", "x86_64"]
    log_groups = resources("AWS::Logs::LogGroup")
    for binary, lid in template_functions().items():
        props = function_props(lid)
        meta = resources()[lid].get("Metadata", {})
        assert meta.get("BuildMethod") == "rust-cargolambda", f"{lid}: BuildMethod"
        assert props.get("Runtime") == "provided.al2023", f"{lid}: Runtime"
        assert props.get("Handler") == "bootstrap", f"{lid}: Handler"
        assert props.get("Architectures") == [{"Ref": "Architecture"}], f"{lid}: Architectures"
        assert props.get("CodeUri") == "..", f"{lid}: CodeUri must be the workspace root"
        assert isinstance(props.get("MemorySize"), int) and isinstance(props.get("Timeout"), int), f"{lid}: sizes"
        group = ((props.get("LoggingConfig") or {}).get("LogGroup") or {}).get("Ref")
        assert group in log_groups, f"{lid}: LoggingConfig.LogGroup must !Ref a log group of this stack"
        group_props = log_groups[group]["Properties"]
        assert group_props.get("RetentionInDays") == {"Ref": "LogRetentionDays"}, f"{group}: retention"
        assert group_props.get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{binary}"}, group
        assert props.get("FunctionName") == {"Fn::Sub": f"${{AWS::StackName}}-{binary}"}, f"{lid}: FunctionName"


def test_every_function_has_error_and_throttle_alarms():
    alarms = resources("AWS::CloudWatch::Alarm").values()
    for lid in template_functions().values():
        watched = {
            a["Properties"].get("MetricName")
            for a in alarms
            if a["Properties"].get("Namespace") == "AWS/Lambda"
            and {"Name": "FunctionName", "Value": {"Ref": lid}} in a["Properties"].get("Dimensions", [])
        }
        assert {"Errors", "Throttles"} <= watched, f"{lid}: alarms on {sorted(watched)}, need Errors and Throttles"
    table = table_logical_id()
    table_metrics = {
        a["Properties"].get("MetricName")
        for a in alarms
        if a["Properties"].get("Namespace") == "AWS/DynamoDB"
        and {"Name": "TableName", "Value": {"Ref": table}} in a["Properties"].get("Dimensions", [])
    }
    assert {"ReadThrottleEvents", "WriteThrottleEvents"} <= table_metrics, f"table alarms: {sorted(table_metrics)}"


# --------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------


def test_http_functions_time_out_after_the_request_budget():
    """Their answers are due within the budget (shared/src/deadline.rs); the timeout is that
    budget plus room for a cold start, as the Rust code prints it."""
    expected = table_schema()["functionTimeoutSeconds"]
    for binary, lid in template_functions().items():
        if binary == "events-dispatcher":
            continue
        assert function_props(lid).get("Timeout") == expected, f"{lid}: Timeout must be {expected}"


def test_table_matches_the_schema():
    schema = table_schema()
    table = resources()[table_logical_id()]["Properties"]

    assert key_set(table.get("KeySchema")) == key_set(schema["keySchema"]), (
        f"KeySchema {table.get('KeySchema')} != schema {schema['keySchema']}"
    )
    hash_first = lower_keys(table.get("KeySchema"))[0]["keyType"]
    assert hash_first == "HASH", "KeySchema must list the HASH key first"
    attributes = attribute_set(table.get("AttributeDefinitions"))
    assert attributes == attribute_set(schema["attributeDefinitions"]), (
        f"AttributeDefinitions {table.get('AttributeDefinitions')} != schema {schema['attributeDefinitions']}"
    )
    assert gsi_shape(table.get("GlobalSecondaryIndexes")) == gsi_shape(schema.get("globalSecondaryIndexes")), (
        f"GSIs {table.get('GlobalSecondaryIndexes')} != schema {schema.get('globalSecondaryIndexes')}"
    )
    ttl = table.get("TimeToLiveSpecification") or {}
    assert ttl.get("AttributeName") == schema["ttlAttribute"] and ttl.get("Enabled") is True, (
        f"TTL {ttl} != schema attribute {schema['ttlAttribute']!r} enabled"
    )
    assert table.get("BillingMode") == schema.get("billingMode", "PAY_PER_REQUEST"), "BillingMode"
    stream = (table.get("StreamSpecification") or {}).get("StreamViewType")
    assert stream == schema.get("streamViewType"), f"StreamSpecification {stream} != schema {schema.get('streamViewType')}"


def test_table_is_protected():
    lid = table_logical_id()
    resource = resources()[lid]
    props = resource["Properties"]
    assert resource.get("DeletionPolicy") == "Retain", f"{lid}: DeletionPolicy must be Retain"
    assert resource.get("UpdateReplacePolicy") == "Retain", f"{lid}: UpdateReplacePolicy must be Retain"
    assert props.get("DeletionProtectionEnabled") is True, f"{lid}: DeletionProtectionEnabled"
    pitr = props.get("PointInTimeRecoverySpecification") or {}
    assert pitr.get("PointInTimeRecoveryEnabled") is True, f"{lid}: point-in-time recovery"


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------


def function_statements(lid: str) -> list[tuple[str, dict]]:
    """(where, statement) for every IAM statement that applies to a function's role."""
    props = function_props(lid)
    out: list[tuple[str, dict]] = []
    for i, policy in enumerate(as_list(props.get("Policies") or [])):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"{lid}.Policies[{i}] = {policy!r}: managed policies and SAM policy templates are not checkable "
            "least privilege; write IAM statements"
        )
        out += [(f"{lid}.Policies[{i}]", s) for s in as_list(policy["Statement"])]
    role_ref = props.get("Role")
    if role_ref is not None:
        role_lid = (role_ref.get("Fn::GetAtt") or [None])[0] if isinstance(role_ref, dict) else None
        if isinstance(role_lid, str) and "." in role_lid:
            role_lid = role_lid.split(".")[0]
        assert role_lid in resources("AWS::IAM::Role"), f"{lid}: Role must be !GetAtt <a role of this stack>.Arn"
        role = resources()[role_lid]["Properties"]
        assert not role.get("ManagedPolicyArns"), f"{role_lid}: managed policies are not least privilege"
        for policy in role.get("Policies") or []:
            doc = policy.get("PolicyDocument") or {}
            out += [(f"{role_lid}.{policy.get('PolicyName')}", s) for s in as_list(doc.get("Statement", []))]
        for plid, pol in {**resources("AWS::IAM::Policy"), **resources("AWS::IAM::ManagedPolicy")}.items():
            if {"Ref": role_lid} in as_list(pol["Properties"].get("Roles", [])):
                doc = pol["Properties"].get("PolicyDocument") or {}
                out += [(plid, s) for s in as_list(doc.get("Statement", []))]
    return out


# Reading the table's stream: granted only to a function the stream feeds (its event source
# mapping reads with the function's role), on the stream only.
STREAM_READ_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
# dynamodb:ListStreams, the one stream action granted on "*" (alone in its statement, and only to a
# function a stream feeds). Why:
# - Lambda's documentation lists it, with the three read actions, among the permissions the
#   execution role of a DynamoDB stream event source needs (the managed policy
#   AWSLambdaDynamoDBExecutionRole grants all four on "*"). The mapping is handed the stream's ARN
#   and reads it with the read actions, so it likely does without: AWS's own SAM grants it only
#   where it grants nothing (its DynamoDB -> Lambda connector and DynamoDBStreamReadPolicy, on
#   `<table>/stream/*`), as CDK did until aws-cdk#10631, and those mappings read. But that is not
#   documented, only a real deploy could show it, and a mapping short of a permission fails the
#   deploy or reads nothing; a list-only action costs nothing to grant, so it is granted, where
#   it works.
# - It has no resource-level permissions (the Service Authorization Reference lists no resource
#   type for it): it is authorized against "*", so on the stream's ARN or on `<table>/stream/*`
#   (as the DynamoDB guide's example has it) it grants nothing. "*" is the only place it works.
# - It reads no data: it lists the stream ARNs of the account's tables in the region.
# test_rehearsal.py checks the same on the roles as created: the grant is on "*" and nowhere else.
LIST_STREAMS = "dynamodb:ListStreams"
STREAM_ACTIONS = STREAM_READ_ACTIONS | {LIST_STREAMS}


def stream_resources(table: str) -> list:
    return [
        {"Fn::GetAtt": [table, "StreamArn"]},
        {"Fn::GetAtt": f"{table}.StreamArn"},
        {"Fn::Sub": f"${{{table}.Arn}}/stream/*"},
    ]


def stream_events(lid: str) -> dict[str, dict]:
    events = function_props(lid).get("Events") or {}
    return {name: e.get("Properties") or {} for name, e in events.items() if e.get("Type") == "DynamoDB"}


def test_each_function_gets_exactly_its_declared_dynamodb_actions():
    table = table_logical_id()
    has_gsis = bool(resources()[table]["Properties"].get("GlobalSecondaryIndexes"))
    allowed_resources = [{"Fn::GetAtt": [table, "Arn"]}, {"Fn::GetAtt": f"{table}.Arn"}]
    if has_gsis:
        allowed_resources.append({"Fn::Sub": f"${{{table}.Arn}}/index/*"})

    for binary, lid in template_functions().items():
        crate = function_crates().get(binary)
        assert crate, f"{lid}: no crate for binary {binary}"
        declared = declared_dynamodb_actions(crate)
        assert declared is not None, f"{crate['path']}: no [package.metadata.credits] dynamodb-actions"
        declared_set = {f"dynamodb:{a}" for a in declared}

        granted: set[str] = set()
        for where, st in function_statements(lid):
            actions = [str(a) for a in as_list(st.get("Action", []))]
            assert "NotAction" not in st and "NotResource" not in st, f"{where}: NotAction/NotResource"
            for res in as_list(st.get("Resource", [])):
                text = res.get("Fn::Sub") if isinstance(res, dict) else res
                text = text[0] if isinstance(text, list) else text
                allowed = allowed_resources + stream_resources(table) + (["*"] if actions == [LIST_STREAMS] else [])
                wildcard = isinstance(text, str) and "*" in text and res not in allowed
                assert not wildcard, f"{where}: wildcard Resource {res!r} is not allowed"
            assert not any("*" in a for a in actions), f"{where}: wildcard action in {actions}"
            dynamo = [a for a in actions if a.lower().startswith("dynamodb:")]
            if not dynamo or st.get("Effect") != "Allow":
                continue
            if set(dynamo) <= STREAM_ACTIONS:
                assert stream_events(lid), f"{where}: stream actions for a function no stream feeds"
                if LIST_STREAMS in dynamo:
                    assert dynamo == [LIST_STREAMS] and as_list(st.get("Resource")) == ["*"], (
                        f"{where}: {LIST_STREAMS} has no resource-level permissions (on anything but \"*\" it "
                        f"grants nothing): grant it alone, on \"*\""
                    )
                    continue
                for res in as_list(st.get("Resource", [])):
                    assert res in stream_resources(table), f"{where}: stream actions on {res}, not the table's stream"
                continue
            assert not set(dynamo) & STREAM_ACTIONS, f"{where}: stream actions mixed with table actions"
            for res in as_list(st.get("Resource", [])):
                assert res in allowed_resources, f"{where}: DynamoDB resource {res} is not the table" + (
                    "" if has_gsis else " (no GSIs, so no index ARNs)"
                )
            granted |= set(dynamo)

        extra = sorted(granted - declared_set)
        missing = sorted(declared_set - granted)
        assert not extra, f"{lid} is granted {extra}, not declared in {crate['path']}"
        assert not missing, f"{lid} lacks {missing}, declared in {crate['path']}"


def test_the_stream_feeds_the_dispatcher_with_partial_failures_a_dead_letter_queue_and_a_tick():
    table = table_logical_id()
    fed = {lid: events for lid in template_functions().values() if (events := stream_events(lid))}
    assert list(fed) == [template_functions().get("events-dispatcher")], f"stream consumers: {sorted(fed)}"
    for lid, events in fed.items():
        for name, props in events.items():
            where = f"{lid}.Events.{name}"
            assert props.get("Stream") in stream_resources(table)[:2], f"{where}: Stream must be the table's"
            assert "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []), f"{where}: partial failures"
            on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
            assert on_failure.get("Type") == "SQS", f"{where}: on-failure destination must be an SQS queue"
            queue = on_failure.get("Destination", {}).get("Fn::GetAtt")
            queue = queue[0] if isinstance(queue, list) else str(queue).split(".")[0]
            assert queue in resources("AWS::SQS::Queue"), f"{where}: dead-letter queue of this stack"
            assert isinstance(props.get("MaximumRetryAttempts"), int), f"{where}: bounded retries"
            sends = [
                st for _, st in function_statements(lid)
                if "sqs:SendMessage" in as_list(st.get("Action", []))
            ]
            assert sends and all(
                as_list(st.get("Resource")) == [{"Fn::GetAtt": [queue, "Arn"]}]
                or as_list(st.get("Resource")) == [{"Fn::GetAtt": f"{queue}.Arn"}]
                for st in sends
            ), f"{lid}: sqs:SendMessage on the dead-letter queue only"
        schedules = [e for e in (function_props(lid).get("Events") or {}).values() if e.get("Type") == "Schedule"]
        assert schedules, f"{lid}: a scheduled tick delivers retries that came due"


def test_every_declared_dynamodb_action_is_used_by_its_function():
    """`make test` runs the Rust integration tests first; their harness notes every DynamoDB
    action each function performs in target/dynamodb-actions/<function> (and fails on any
    action a function performs without declaring it). Here: every declared - hence granted -
    action must have been performed, so no policy grants an action its function does not use."""
    used_dir = Path(os.environ.get("DYNAMODB_ACTIONS_DIR", ROOT / "target" / "dynamodb-actions"))
    if not used_dir.is_dir():
        pytest.skip("no record of used actions: run the Rust integration tests first (make test does)")
    for binary, crate in sorted(function_crates().items()):
        declared = declared_dynamodb_actions(crate) or []
        record = used_dir / binary
        used = set(record.read_text().split()) if record.exists() else set()
        unused = sorted(set(declared) - used)
        assert not unused, f"{binary} declares (and is granted) {unused} but never performed them in the integration tests"


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def test_no_parameter_holds_a_secret():
    for name, param in (template().get("Parameters") or {}).items():
        if not SECRET_NAME.search(name):
            continue
        assert SECRET_REFERENCE_PARAM.search(name), (
            f"parameter {name} looks like it carries a secret value; secrets come from Secrets Manager "
            f"(a parameter may only name the secret: ...SecretName / ...SecretArn)"
        )
        default = param.get("Default")
        if default is None:
            continue
        assert isinstance(default, str) and SECRET_NAME_OR_ARN.match(default) and not SECRET_VALUE.search(default), (
            f"parameter {name} has a Default that is not a secret name or ARN: it may be a secret value"
        )


def test_secret_env_vars_are_secrets_manager_references():
    def resolved(value) -> str | None:
        text = value.get("Fn::Sub") if isinstance(value, dict) else value
        if isinstance(text, list):
            text = text[0]
        return text if isinstance(text, str) else None

    admin_binaries = {fn for path, fn in watch_router().items() if path.split("/")[1:2] == ["admin"]}
    params = template().get("Parameters") or {}
    global_env = (global_function_props().get("Environment") or {}).get("Variables") or {}
    stray = sorted(v for v in global_env if v.startswith("STRIPE_"))
    assert not stray, f"Globals.Function sets {stray}: Stripe secrets go on only the functions that need them"
    for binary, lid in template_functions().items():
        env = (function_props(lid).get("Environment") or {}).get("Variables") or {}
        assert env.get("TABLE_NAME") == {"Ref": table_logical_id()}, f"{lid}: TABLE_NAME must !Ref the table"
        required = {"TOKEN_SIGNING_KEY"} | ({"ADMIN_TOKEN"} if binary in admin_binaries else set())
        assert required <= set(env), f"{lid}: missing {sorted(required - set(env))}"
        if binary not in admin_binaries:
            assert "ADMIN_TOKEN" not in env, f"{lid} serves no /admin route but gets ADMIN_TOKEN"
        # STRIPE_API_BASE points at a local Stripe stand-in; in AWS it is never set, so every
        # STRIPE_* variable here is a secret.
        assert "STRIPE_API_BASE" not in env, f"{lid}: STRIPE_API_BASE is for local stand-ins only"
        for var, value in env.items():
            if not (SECRET_NAME.search(var) or var.startswith("STRIPE_")):
                continue
            text = resolved(value)
            assert text and text.startswith(SECRETSMANAGER_REF) and text.endswith("}}"), (
                f"{lid}: {var} must be a {{{{resolve:secretsmanager:...}}}} reference, got {value!r}"
            )
            for ref in re.findall(r"\$\{([A-Za-z0-9]+)\}", text):
                assert ref in params, f"{lid}: {var} references unknown parameter {ref}"
    assert "ssm-secure" not in TEMPLATE.read_text(), "ssm-secure references do not work in Lambda environments"


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def test_outputs():
    outputs = template().get("Outputs") or {}
    api = next(iter(resources("AWS::Serverless::HttpApi")))
    base = f"https://${{{api}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
    assert outputs.get("ApiUrl", {}).get("Value") == {"Fn::Sub": base}
    assert outputs.get("StripeWebhookUrl", {}).get("Value") == {"Fn::Sub": base + "/api/stripe/webhook"}
    assert outputs.get("TableName", {}).get("Value") == {"Ref": table_logical_id()}
