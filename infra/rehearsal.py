"""Deploy rehearsal without AWS: the template as CloudFormation receives it from `sam deploy`,
checked as a deploy would check it, created in moto, and what was created checked against the
code. test_rehearsal.py runs it; infra/README.md ("Deploy rehearsal") says what it proves and
what only a real deploy proves.

Stages, in order; each returns the problems it finds (`rehearse` runs them):
  transform  aws-sam-translator, as CloudFormation runs it on what `sam deploy` submits: the
             template with each CodeUri replaced by the S3 URI of the zip `sam package` uploaded
  validate   what CloudFormation rejects before creating anything and moto does not model: a Ref,
             GetAtt, Sub variable or DependsOn naming nothing, a GetAtt of an attribute the
             resource type lacks, a dependency cycle (moto raises KeyError or recurses forever)
  create     moto's CloudFormation creates the stack (the zips put in moto's S3 first), and what
             was created is read back through the AWS APIs (`Created`)
  check      `CHECKS`, on what was created; for the types moto skips (`MOTO_SKIPS`) the
             transformed template stands in
  lint       cfn-lint on the transformed template (the slowest stage: it starts in a second
             process as soon as the template is transformed, and is collected last)
"""

from __future__ import annotations

import ast
import copy
import io
import json
import logging
import multiprocessing
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache

import boto3
import networkx
from botocore.config import Config
from botocore.exceptions import ClientError
from cfnlint.config import ConfigMixIn
from cfnlint.runner import Runner
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER, ResourceNotFoundError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from infra_sources import (
    HERE,
    SERVERLESS_FUNCTION,
    as_list,
    attribute_set,
    binary_of,
    declared_dynamodb_actions,
    declared_routes,
    documented_operation_problems,
    function_crates,
    function_props,
    gsi_shape,
    key_set,
    resources,
    table_schema,
)

REGION = "eu-west-1"
ARTIFACT_BUCKET = "credits-sam-artifacts"
README = HERE / "README.md"

# Resource types moto's CloudFormation does not create (it warns and goes on), and where the
# rehearsal checks them instead. The create check fails when a type is skipped that is not listed
# here, and when a listed type is created after all (then check it as created).
MOTO_SKIPS = {
    "AWS::ApiGatewayV2::Api": "the HTTP API: routes and authorization are read from its transformed OpenAPI body",
    "AWS::ApiGatewayV2::Stage": "its $default stage: read from the transformed template",
    "AWS::CloudWatch::Alarm": "the alarms: read from the transformed template",
}

# Length limits of the names this template builds from the stack name. CloudFormation keeps the
# names it generates within limits itself; a name the template sets fails the deploy when too long.
NAME_LIMITS = {
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::DynamoDB::Table", "TableName"): 255,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
}
STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}")

# Actions with no resource-level permissions (the Service Authorization Reference lists no
# resource type for them): IAM authorizes them against "*", so a statement granting one on any
# ARN grants nothing.
NO_RESOURCE_LEVEL_ACTIONS = {"dynamodb:ListStreams"}
STREAM_READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
LIST_STREAMS = "dynamodb:ListStreams"
# Event source mapping settings the template sets and the created mapping must carry.
MAPPING_SETTINGS = (
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "FilterCriteria",
)

PSEUDO_PARAMETERS = {
    "AWS::AccountId": DEFAULT_ACCOUNT_ID,
    "AWS::NotificationARNs": None,
    "AWS::NoValue": None,
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::StackId": None,
    "AWS::StackName": None,  # the rehearsal's own
    "AWS::URLSuffix": "amazonaws.com",
}
SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


# --------------------------------------------------------------------------------------------
# The rehearsal
# --------------------------------------------------------------------------------------------


@dataclass
class Created:
    """What moto's CloudFormation created, as the AWS APIs describe it (by logical id)."""

    physical: dict[str, str | None]
    types: dict[str, str]
    functions: dict[str, dict]
    invoke_policies: dict[str, list[dict]]
    roles: dict[str, dict]
    tables: dict[str, dict]
    queue_arns: dict[str, str]
    mappings: list[dict]
    rules: dict[str, dict]


@dataclass
class Rehearsal:
    sam: dict
    stack_name: str
    transformed: dict | None = None
    created: Created | None = None
    # Stage -> what it reported; a stage whose prerequisites failed is absent.
    problems: dict[str, list[str]] = field(default_factory=dict)
    # Whether cfn-lint starts as soon as the template is transformed (see transform_stage).
    lint_ahead: bool = False
    lint: Future | None = None

    @property
    def failed(self) -> bool:
        return any(self.problems.values())

    def report(self) -> list[str]:
        return [f"{stage}: {problem}" for stage, found in self.problems.items() for problem in found]

    def parameters(self) -> dict[str, str]:
        """The values the stack is created with: every parameter's default, as CloudFormation
        hands them to resources (strings)."""
        params = (self.transformed or self.sam).get("Parameters") or {}
        return {name: cfn_string(p["Default"]) for name, p in params.items() if "Default" in p}


def rehearse(sam: dict, stack_name: str, stop_at_first_failure: bool = False) -> Rehearsal:
    """Run the stages on a copy of `sam`, creating the stack as `stack_name`: every stage whose
    prerequisites passed, or, with `stop_at_first_failure`, up to the first that reports a
    problem (which changes nothing the earlier stages report; it only saves time, and does not
    start cfn-lint ahead)."""
    rehearsal = Rehearsal(copy.deepcopy(sam), stack_name, lint_ahead=not stop_at_first_failure)
    for name, run, needs in STAGES:
        if stop_at_first_failure and rehearsal.failed:
            break
        if all(rehearsal.problems.get(need) == [] for need in needs):
            rehearsal.problems[name] = run(rehearsal)
    return rehearsal


def transform_stage(r: Rehearsal) -> list[str]:
    try:
        r.transformed = transform(packaged(r.sam))
    except InvalidDocumentException as error:
        return [str(cause) for cause in error.causes] or [str(error)]
    if r.lint_ahead:
        # The slowest stage needs nothing but the transformed template: it runs in a process of
        # its own while moto creates the stack and the checks read it.
        r.lint = lint_pool().submit(lint_problems, r.transformed)
    return []


def validate_stage(r: Rehearsal) -> list[str]:
    return template_validation_problems(r.transformed)


def create_stage(r: Rehearsal) -> list[str]:
    r.created, problems = create_in_moto(r.transformed, r.stack_name)
    return problems


def check_stage(r: Rehearsal) -> list[str]:
    problems = []
    for check in CHECKS:
        try:
            problems += check(r)
        except (AssertionError, KeyError) as error:  # what was created is not what it expects
            problems.append(f"{check.__name__} could not finish: {type(error).__name__} {error}")
    return problems


def lint_stage(r: Rehearsal) -> list[str]:
    return r.lint.result() if r.lint else lint_problems(r.transformed)


# (name, stage, stages that must have passed first)
STAGES: list[tuple[str, Callable[[Rehearsal], list[str]], tuple[str, ...]]] = [
    ("transform", transform_stage, ()),
    ("validate", validate_stage, ("transform",)),
    # CloudFormation creates nothing from a template it rejects (and moto would crash on it).
    ("create", create_stage, ("validate",)),
    ("check", check_stage, ("create",)),
    ("lint", lint_stage, ("transform",)),
]


# --------------------------------------------------------------------------------------------
# transform: what `sam deploy` submits, transformed as CloudFormation transforms it
# --------------------------------------------------------------------------------------------


@cache
def aws_session() -> boto3.session.Session:
    # Fixed, fake credentials: nothing here may reach (or be pointed at) a real account. One
    # session, so the AWS service models are loaded once.
    return boto3.session.Session(aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal", region_name=REGION)


def packaged(sam: dict) -> dict:
    """The template `sam deploy` submits: each function's CodeUri is the S3 URI of its zip."""
    out = copy.deepcopy(sam)
    for lid in resources(SERVERLESS_FUNCTION, out):
        out["Resources"][lid]["Properties"]["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{lid}.zip"
    return out


def transform(template: dict) -> dict:
    return copy.deepcopy(transformed_json(json.dumps(template, sort_keys=True)))


@cache  # a template is transformed once, however many rehearsals submit it
def transformed_json(template: str) -> dict:
    translator = Translator(None, Parser(), boto_session=aws_session())
    # Parameters at their defaults; no managed policy is named (test_infra.py rejects them).
    return translator.translate(json.loads(template), parameter_values={}, get_managed_policy_map=lambda: {})


# --------------------------------------------------------------------------------------------
# validate: what CloudFormation rejects before it creates anything
# --------------------------------------------------------------------------------------------


def references(node) -> Iterator[tuple[str, str | None]]:
    """(name, attribute or None) for every Ref, Fn::GetAtt and Fn::Sub variable in `node`."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        if set(node) == {"Ref"} and isinstance(node["Ref"], str):
            yield node["Ref"], None
        elif set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            name, attribute = target.split(".", 1) if isinstance(target, str) else target
            yield name, str(attribute)
        elif set(node) == {"Fn::Sub"}:
            text, variables = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
            for variable in SUB_VARIABLE.findall(text):
                name, _, attribute = variable.partition(".")
                if name not in variables:
                    yield name, attribute or None
            yield from references(variables)
        else:
            for value in node.values():
                yield from references(value)


def has_attribute(resource_type: str, attribute: str) -> bool:
    """Whether Fn::GetAtt can read `attribute` of the type (cfn-lint's resource schemas)."""
    try:
        PROVIDER_SCHEMA_MANAGER.get_type_getatts(resource_type, REGION)[attribute]
    except ResourceNotFoundError:
        return resource_type.startswith("Custom::")
    except KeyError:
        return False
    return True


def reference_problems(where: str, node, template: dict) -> Iterator[str]:
    res = template.get("Resources", {})
    names = set(res) | set(template.get("Parameters") or {}) | set(PSEUDO_PARAMETERS)
    for name, attribute in references(node):
        if attribute is None and name not in names:
            yield f"{where}: unresolved reference {name!r} (no parameter, resource or pseudo parameter of that name)"
        elif attribute is not None and name not in res:
            yield f"{where}: Fn::GetAtt of {name!r}, which is no resource of the template"
        elif attribute is not None and not has_attribute(res[name]["Type"], attribute):
            kind = res[name]["Type"]
            yield f"{where}: resource {name} ({kind}) does not support attribute type {attribute} in Fn::GetAtt"


def dependency_graph(template: dict) -> networkx.DiGraph:
    """Resource -> the resources it needs first (references and DependsOn)."""
    res = template.get("Resources", {})
    graph = networkx.DiGraph()
    for lid, resource in res.items():
        graph.add_node(lid)
        needed = {name for name, _ in references(resource)} | set(as_list(resource.get("DependsOn", [])))
        graph.add_edges_from((lid, name) for name in needed if name in res)
    return graph


def template_validation_problems(template: dict) -> list[str]:
    res = template.get("Resources", {})
    problems = [p for lid, resource in res.items() for p in reference_problems(lid, resource, template)]
    problems += list(reference_problems("Outputs", template.get("Outputs") or {}, template))
    problems += [
        f"{lid}: DependsOn {name!r}, which is no resource of the template"
        for lid, resource in res.items()
        for name in as_list(resource.get("DependsOn", []))
        if name not in res
    ]
    problems += [
        f"Circular dependency between resources: {sorted(cycle)}"
        for cycle in networkx.simple_cycles(dependency_graph(template))
    ]
    return problems


# --------------------------------------------------------------------------------------------
# create: moto's CloudFormation, and what it created
# --------------------------------------------------------------------------------------------


def client(service: str):
    # Ignore AWS_ENDPOINT_URL_* (as `make dev` sets for the emulator): moto intercepts AWS's own.
    return aws_session().client(service, config=Config(ignore_configured_endpoint_urls=True))


def upload_packages(transformed: dict) -> None:
    """The zips `sam package` would have uploaded: moto's Lambda reads each function's code."""
    s3 = client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for resource in resources("AWS::Lambda::Function", transformed).values():
        code = resource["Properties"]["Code"]
        s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=bootstrap_zip())


@cache
def bootstrap_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\n")  # never run: moto does not invoke here
    return buffer.getvalue()


def create_in_moto(transformed: dict, stack_name: str) -> tuple[Created | None, list[str]]:
    with mock_aws(), moto_skips_quiet():
        upload_packages(transformed)
        cloudformation = client("cloudformation")
        try:
            cloudformation.create_stack(
                StackName=stack_name, TemplateBody=template_body(transformed), Capabilities=["CAPABILITY_IAM"]
            )
        except ClientError as error:
            return None, [f"CreateStack failed: {error}"]
        except Exception as error:  # noqa: BLE001 - moto's models raise what they raise on bad input
            return None, [f"moto could not create the stack: {type(error).__name__}: {error}"]
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            return None, [f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}"]
        return read_created(stack_name), []


def template_body(transformed: dict) -> str:
    # moto parses a body as YAML first, in pure Python (most of a create's time for this
    # template), then as JSON. A leading tab is JSON's whitespace and no YAML: straight to JSON.
    return "\t" + json.dumps(transformed)


@contextmanager
def moto_skips_quiet() -> Iterator[None]:
    """moto logs and warns for each resource it skips; MOTO_SKIPS accounts for them."""
    logger = logging.getLogger("moto")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


def read_created(stack_name: str) -> Created:
    entries = client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    # moto lists a skipped resource as an entry without logical id or type.
    created = [e for e in entries if e.get("LogicalResourceId") and e.get("ResourceType")]
    physical = {e["LogicalResourceId"]: e.get("PhysicalResourceId") for e in created}
    types = {e["LogicalResourceId"]: e["ResourceType"] for e in created}

    def of_type(kind: str) -> dict[str, str]:
        return {lid: physical[lid] for lid, t in types.items() if t == kind}

    lam, iam, events = client("lambda"), client("iam"), client("events")
    functions = {
        lid: lam.get_function_configuration(FunctionName=name) for lid, name in of_type("AWS::Lambda::Function").items()
    }
    return Created(
        physical=physical,
        types=types,
        functions=functions,
        invoke_policies={lid: invoke_policy(lam, c["FunctionName"]) for lid, c in functions.items()},
        roles={lid: role_as_created(iam, name) for lid, name in of_type("AWS::IAM::Role").items()},
        tables={
            lid: client("dynamodb").describe_table(TableName=name)["Table"]
            for lid, name in of_type("AWS::DynamoDB::Table").items()
        },
        queue_arns={lid: queue_arn(url) for lid, url in of_type("AWS::SQS::Queue").items()},
        mappings=lam.list_event_source_mappings()["EventSourceMappings"],
        rules={
            lid: {**events.describe_rule(Name=name), "Targets": events.list_targets_by_rule(Rule=name)["Targets"]}
            for lid, name in of_type("AWS::Events::Rule").items()
        },
    )


def queue_arn(url: str) -> str:
    return client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def invoke_policy(lam, function_name: str) -> list[dict]:
    """The function's resource policy statements (who may invoke it)."""
    try:
        return json.loads(lam.get_policy(FunctionName=function_name)["Policy"])["Statement"]
    except ClientError:
        return []


def policy_document(document) -> dict:
    """A policy document as moto returns it: a dict, JSON, or (inline role policies created by
    CloudFormation) a Python literal."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def role_as_created(iam, name: str) -> dict:
    role = iam.get_role(RoleName=name)["Role"]
    statements = []
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = policy_document(iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        statements += as_list(document.get("Statement", []))
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    return {
        "Arn": role["Arn"],
        "Trust": as_list(policy_document(role["AssumeRolePolicyDocument"]).get("Statement", [])),
        "Statements": statements,
        "Attached": [p["PolicyArn"] for p in attached],
    }


# --------------------------------------------------------------------------------------------
# check: what was created, against the template and the code
# --------------------------------------------------------------------------------------------


def cfn_string(value) -> str:
    """A scalar as CloudFormation passes it to a string property."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def resolved(value, r: Rehearsal) -> str | None:
    """What a property value becomes in the created stack, for the intrinsics the template uses
    in names and environments (Ref; Fn::Sub of parameters, pseudo parameters and resources);
    None for anything else."""
    if isinstance(value, (str, int, float, bool)):
        return cfn_string(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return lookup(value["Ref"], r)
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        parts = {name: lookup(name, r) for name in SUB_VARIABLE.findall(value["Fn::Sub"])}
        if None in parts.values():
            return None
        return SUB_VARIABLE.sub(lambda m: parts[m.group(1)], value["Fn::Sub"])
    return None


def lookup(name: str, r: Rehearsal) -> str | None:
    if name == "AWS::StackName":
        return r.stack_name
    if name in PSEUDO_PARAMETERS:
        return PSEUDO_PARAMETERS[name]
    parameters = r.parameters()
    if name in parameters:
        return parameters[name]
    return r.created.physical.get(name) if r.created else None


def getatt_target(value) -> str | None:
    """The logical id a `!GetAtt X.Attr` names."""
    target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
    if isinstance(target, str):
        return target.split(".", 1)[0]
    return target[0] if isinstance(target, list) else None


def allows(statements: list[dict], action: str, resource: str) -> bool:
    """Whether an Allow statement covers the action on the resource (IAM wildcards * and ?)."""
    return any(
        st.get("Effect") == "Allow"
        and any(fnmatchcase(action.lower(), str(a).lower()) for a in as_list(st.get("Action", [])))
        and any(fnmatchcase(resource, str(res)) for res in as_list(st.get("Resource", [])))
        for st in statements
    )


def sam_functions(r: Rehearsal) -> dict[str, str]:
    """logical id -> binary, for the functions of the rehearsed template."""
    return {lid: binary_of(lid, r.sam) for lid in resources(SERVERLESS_FUNCTION, r.sam)}


def sam_events(r: Rehearsal, lid: str, kind: str) -> dict[str, dict]:
    events = function_props(lid, r.sam).get("Events") or {}
    return {name: e.get("Properties") or {} for name, e in events.items() if e.get("Type") == kind}


def the_table(r: Rehearsal) -> dict:
    assert len(r.created.tables) == 1, f"expected one table to be created, found {sorted(r.created.tables)}"
    return next(iter(r.created.tables.values()))


def check_every_resource_is_created_or_a_moto_skip(r: Rehearsal) -> list[str]:
    wanted = {lid: res["Type"] for lid, res in r.transformed["Resources"].items()}
    missing = {lid: kind for lid, kind in wanted.items() if lid not in r.created.types}
    problems = [f"{lid} ({kind}) was not created" for lid, kind in sorted(missing.items()) if kind not in MOTO_SKIPS]
    problems += [
        f"moto created {kind} after all: drop it from MOTO_SKIPS and check it as created"
        for kind in sorted(set(MOTO_SKIPS) & (set(wanted.values()) - set(missing.values())))
    ]
    return problems


def check_the_table(r: Rehearsal) -> list[str]:
    schema, table = table_schema(), the_table(r)
    stream = table.get("StreamSpecification") or {}
    expected = {
        "keys": (key_set(table.get("KeySchema")), key_set(schema["keySchema"])),
        "attributes": (attribute_set(table.get("AttributeDefinitions")), attribute_set(schema["attributeDefinitions"])),
        "GSIs": (gsi_shape(table.get("GlobalSecondaryIndexes")), gsi_shape(schema.get("globalSecondaryIndexes"))),
        "billing": (
            (table.get("BillingModeSummary") or {}).get("BillingMode"),
            schema.get("billingMode", "PAY_PER_REQUEST"),
        ),
        "stream": ((stream.get("StreamEnabled"), stream.get("StreamViewType")), (True, schema.get("streamViewType"))),
        "deletion protection": (table.get("DeletionProtectionEnabled"), True),
    }
    return [
        f"table {table['TableName']}: {what} {got!r}, `create-table --print-schema` says {want!r}"
        for what, (got, want) in expected.items()
        if got != want
    ]


def check_each_function_as_created(r: Rehearsal) -> list[str]:
    problems = []
    for lid in sam_functions(r):
        config = r.created.functions.get(lid)
        if config is None:
            problems.append(f"{lid}: no function was created")
            continue
        declared = function_props(lid, r.sam)
        where = f"{lid} ({config['FunctionName']})"
        problems += [
            f"{where}: {key} {config.get(key)!r}, the template says {declared.get(key)!r}"
            for key in ("MemorySize", "Timeout", "Runtime", "Handler")
            if config.get(key) != declared.get(key)
        ]
        problems += [f"{where}: {p}" for p in environment_problems(r, config, declared)]
        problems += [f"{where}: {p}" for p in architecture_problems(r, lid)]
        role = r.created.roles.get(getatt_target(declared.get("Role")))
        if role is None or config.get("Role") != role["Arn"]:
            problems.append(f"{where}: runs as {config.get('Role')}, not as the role its template names")
    return problems


def environment_problems(r: Rehearsal, config: dict, declared: dict) -> list[str]:
    """Globals.Function's variables merged with the function's own (SAM's merge), each with the
    value it must have in the created stack."""
    got = {k: cfn_string(v) for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()}
    want = (declared.get("Environment") or {}).get("Variables") or {}
    problems = [f"environment lacks {name}" for name in sorted(set(want) - set(got))]
    problems += [f"environment has {name}, which the template does not set" for name in sorted(set(got) - set(want))]
    for name in sorted(set(want) & set(got)):
        value = resolved(want[name], r)
        if value is not None and got[name] != value:
            problems.append(f"environment {name}={got[name]!r}, expected {value!r}")
    return problems


def architecture_problems(r: Rehearsal, lid: str) -> list[str]:
    # moto does not keep Architectures (it reports x86_64 for every function): read the template.
    values = (r.transformed["Resources"][lid]["Properties"].get("Architectures")) or ["x86_64"]
    got = [resolved(v, r) for v in values]
    want = [r.parameters().get("Architecture")]
    if got == want:
        return []
    return [f"architectures {got} in the transformed template, the deploy's Architecture is {want}"]


def check_each_role_grants_what_its_function_needs(r: Rehearsal) -> list[str]:
    table_arn = the_table(r)["TableArn"]
    problems = []
    for lid, binary in sam_functions(r).items():
        role_lid = getatt_target(function_props(lid, r.sam).get("Role"))
        role = r.created.roles.get(role_lid)
        if role is None:
            problems.append(f"{lid}: its role {role_lid} was not created")
            continue
        if not any(lambda_may_assume(st) for st in role["Trust"]):
            problems.append(f"{role_lid}: Lambda may not assume it")
        declared = declared_dynamodb_actions(function_crates().get(binary, {})) or []
        problems += [
            f"{role_lid}: does not allow dynamodb:{action} on the table ({table_arn})"
            for action in declared
            if not allows(role["Statements"], f"dynamodb:{action}", table_arn)
        ]
        problems += [f"{role_lid}: {p}" for p in dynamodb_resources_outside_the_table(role["Statements"], table_arn)]
    for role_lid, role in r.created.roles.items():
        problems += [f"{role_lid}: managed policy {arn} attached" for arn in role["Attached"]]
        problems += [f"{role_lid}: {p}" for p in statements_granting_nothing(role["Statements"])]
    return problems


def lambda_may_assume(statement: dict) -> bool:
    principal = (statement.get("Principal") or {}).get("Service")
    return (
        statement.get("Effect") == "Allow"
        and "sts:AssumeRole" in as_list(statement.get("Action"))
        and "lambda.amazonaws.com" in as_list(principal)
    )


def dynamodb_resources_outside_the_table(statements: list[dict], table_arn: str) -> list[str]:
    """DynamoDB grants (as resolved) on anything but this stack's table, its indexes and stream."""
    problems = []
    for st in statements:
        actions = {str(a) for a in as_list(st.get("Action", [])) if str(a).startswith("dynamodb:")}
        actions -= NO_RESOURCE_LEVEL_ACTIONS
        problems += [
            f"grants {sorted(actions)} on {resource}, which is not this stack's table"
            for resource in as_list(st.get("Resource", []))
            if actions and resource != table_arn and not str(resource).startswith(f"{table_arn}/")
        ]
    return problems


def statements_granting_nothing(statements: list[dict]) -> list[str]:
    return [
        f"grants {action} on {st.get('Resource')!r}, where it grants nothing: the action has no "
        f'resource-level permissions, so only Resource "*" allows it'
        for st in statements
        for action in as_list(st.get("Action", []))
        if action in NO_RESOURCE_LEVEL_ACTIONS and as_list(st.get("Resource")) != ["*"]
    ]


def check_the_stream_feeds_the_dispatcher(r: Rehearsal) -> list[str]:
    """Table stream -> event source mapping -> function, failed batches to the dead-letter
    queue, and the role allowing the mapping each of those reads and sends."""
    stream_arn = the_table(r).get("LatestStreamArn")
    fed = {lid: events for lid in sam_functions(r) if (events := sam_events(r, lid, "DynamoDB"))}
    problems = []
    declared = sum(map(len, fed.values()))
    if len(r.created.mappings) != declared:
        problems.append(f"{len(r.created.mappings)} event source mappings created, the template has {declared}")
    for lid, events in fed.items():
        function_arn = r.created.functions[lid]["FunctionArn"]
        mappings = [m for m in r.created.mappings if m.get("FunctionArn") == function_arn]
        for name, declared in events.items():
            # The event is wired when one of the function's mappings carries it faithfully.
            found = [mapping_problems(r, lid, declared, mapping, stream_arn) for mapping in mappings]
            if not any(p == [] for p in found):
                closest = found[0] if found else ["no event source mapping feeds it"]
                problems += [f"{lid}.Events.{name}: {p}" for p in closest]
    return problems


def mapping_problems(r: Rehearsal, lid: str, declared: dict, mapping: dict, stream_arn: str) -> list[str]:
    problems = []
    if mapping.get("EventSourceArn") != stream_arn:
        problems.append(f"reads {mapping.get('EventSourceArn')}, not the table's stream {stream_arn}")
    problems += [
        f"mapping {key} is {mapping.get(key)!r}, the template says {declared[key]!r}"
        for key in MAPPING_SETTINGS
        if key in declared and mapping.get(key) != declared[key]
    ]
    dead_letters = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if dead_letters not in r.created.queue_arns.values():
        problems.append(f"failed batches go to {dead_letters!r}, not a queue of this stack")
    role = r.created.roles.get(getatt_target(function_props(lid, r.sam).get("Role")), {"Statements": []})
    needs = [(action, stream_arn) for action in STREAM_READ_ACTIONS] + [(LIST_STREAMS, "*")]
    needs += [("sqs:SendMessage", dead_letters)] if dead_letters else []
    problems += [
        f"the role does not allow {action} on {resource} (the mapping reads and sends with it)"
        for action, resource in needs
        if not allows(role["Statements"], action, resource)
    ]
    return problems


def check_the_schedules_invoke_their_functions(r: Rehearsal) -> list[str]:
    problems = []
    for lid in sam_functions(r):
        function_arn = r.created.functions[lid]["FunctionArn"]
        for name, declared in sam_events(r, lid, "Schedule").items():
            rules = [
                rule
                for rule in r.created.rules.values()
                if rule.get("ScheduleExpression") == declared.get("Schedule")
                and any(t.get("Arn") == function_arn for t in rule["Targets"])
            ]
            if not rules:
                problems.append(f"{lid}.Events.{name}: no rule runs it on {declared.get('Schedule')}")
            if not invocable_by(r, lid, "events.amazonaws.com"):
                problems.append(f"{lid}.Events.{name}: EventBridge may not invoke it")
    return problems


def invocable_by(r: Rehearsal, lid: str, service: str) -> bool:
    return any(
        (st.get("Principal") or {}).get("Service") == service and st.get("Action") == "lambda:InvokeFunction"
        for st in r.created.invoke_policies.get(lid, [])
    )


def transformed_api(r: Rehearsal) -> tuple[str, dict]:
    apis = resources("AWS::ApiGatewayV2::Api", r.transformed)
    assert len(apis) == 1, f"expected one HTTP API in the transformed template, found {sorted(apis)}"
    return next(iter(apis.items()))


def api_routes(r: Rehearsal) -> dict[str, list[dict]]:
    """API Gateway route path -> its operations, from the OpenAPI body SAM wrote (what API
    Gateway imports): method, the function the integration invokes, authorization, payload."""
    _, api = transformed_api(r)
    routes: dict[str, list[dict]] = {}
    for path, item in (api["Properties"].get("Body") or {}).get("paths", {}).items():
        route = "$default" if path == "/$default" else path
        for method, operation in item.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            uri = json.dumps(integration.get("uri"))
            invoked = re.findall(r"\$\{(\w+)\.Arn\}", uri)
            routes.setdefault(route, []).append(
                {
                    "method": method,
                    "function": invoked[0] if len(invoked) == 1 else None,
                    "auth": [name for requirement in operation.get("security", []) for name in requirement],
                    "payload": integration.get("payloadFormatVersion"),
                }
            )
    return routes


def check_the_api_routes_what_the_code_declares(r: Rehearsal) -> list[str]:
    functions = sam_functions(r)
    routes = api_routes(r)
    routed = {route: functions.get(ops[0]["function"]) for route, ops in routes.items()}
    declared = declared_routes()
    problems = [
        f"declared by the code, not routed by the API: {p} -> {b}"
        for p, b in sorted(declared.items() - routed.items())
    ]
    problems += [
        f"routed by the API, not declared by the code: {p} -> {b}"
        for p, b in sorted(routed.items() - declared.items())
    ]
    for route, operations in sorted(routes.items()):
        want_auth = ["AWS_IAM"] if route == "/admin" or route.startswith("/admin/") else ["NONE"]
        for op in operations:
            if op["method"] != "x-amazon-apigateway-any-method":
                problems.append(f"{route}: method {op['method']}, expected ANY (the functions answer 405 themselves)")
            if op["auth"] != want_auth:
                problems.append(f"{route}: authorization {op['auth']}, expected {want_auth} (IAM on /admin only)")
            if op["payload"] != "2.0":
                problems.append(f"{route}: payload format {op['payload']}, expected 2.0")
    problems += documented_operation_problems({route: b for route, b in routed.items() if b})
    problems += [
        f"{lid}: API Gateway may not invoke it (no permission for apigateway.amazonaws.com)"
        for lid in sorted({op["function"] for ops in routes.values() for op in ops} - {None})
        if not invocable_by(r, lid, "apigateway.amazonaws.com")
    ]
    return problems


def check_what_moto_skips_in_the_transformed_template(r: Rehearsal) -> list[str]:
    api_lid, api = transformed_api(r)
    problems = [] if api["Properties"].get("FailOnWarnings") is True else [f"{api_lid}: FailOnWarnings is not true"]
    stages = list(resources("AWS::ApiGatewayV2::Stage", r.transformed).items())
    stage = stages[0][1]["Properties"] if len(stages) == 1 else {}
    log_group = getatt_target((stage.get("AccessLogSettings") or {}).get("DestinationArn"))
    problems += [
        f"stage: {what}"
        for what, ok in {
            "one $default stage": len(stages) == 1 and stage.get("StageName") == "$default",
            f"of {api_lid}": stage.get("ApiId") == {"Ref": api_lid},
            "deployed automatically": stage.get("AutoDeploy") is True,
            "access logs to a created log group": r.created.types.get(log_group) == "AWS::Logs::LogGroup",
            "throttled": {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(stage.get("DefaultRouteSettings") or ()),
        }.items()
        if not ok
    ]
    table_lid = next(iter(r.created.tables))
    watched = alarm_metrics(r)
    wanted = {(lid, metric) for lid in r.created.functions for metric in ("Errors", "Throttles")}
    wanted |= {(table_lid, "ReadThrottleEvents"), (table_lid, "WriteThrottleEvents"), (api_lid, "5xx")}
    problems += [f"no {metric} alarm on {lid}" for lid, metric in sorted(wanted - watched)]
    return problems


def alarm_metrics(r: Rehearsal) -> set[tuple[str, str]]:
    """(logical id a dimension Refs, metric name) of every alarm in the transformed template."""
    watched = set()
    for alarm in resources("AWS::CloudWatch::Alarm", r.transformed).values():
        props = alarm.get("Properties") or {}
        for dimension in props.get("Dimensions") or []:
            if isinstance(dimension.get("Value"), dict) and "Ref" in dimension["Value"]:
                watched.add((dimension["Value"]["Ref"], props.get("MetricName")))
    return watched


def check_every_name_fits_at_the_longest_stack_name(r: Rehearsal) -> list[str]:
    problems = []
    if not STACK_NAME.fullmatch(r.stack_name):
        problems.append(f"stack name {r.stack_name!r} is not a valid CloudFormation stack name")
    for where, kind, limit, name in names_made_from_the_stack_name(r):
        if limit is None:
            problems.append(f"{where} is made from the stack name, and NAME_LIMITS has no limit for it ({kind})")
        elif name is None or len(name) > limit:
            problems.append(
                f"{where} {name!r} is {len(name or '')} characters with a {len(r.stack_name)}-character "
                f"stack name; {kind} allows {limit}"
            )
    return problems


def name_room(r: Rehearsal) -> int:
    """The fewest characters any name made from the stack name has to spare under its limit."""
    return min(limit - len(name) for _, _, limit, name in names_made_from_the_stack_name(r) if limit and name)


def names_made_from_the_stack_name(r: Rehearsal) -> Iterator[tuple[str, str, int | None, str | None]]:
    """(where, resource type, length limit, the name as created) for each name property whose
    value the template builds from the stack name; for the types moto skips, as resolved."""
    for lid, resource in r.transformed["Resources"].items():
        for prop, value in (resource.get("Properties") or {}).items():
            if prop.endswith("Name") and "AWS::StackName" in json.dumps(value):
                name = created_name(r, lid) if lid in r.created.physical else resolved(value, r)
                yield f"{lid}.{prop}", resource["Type"], NAME_LIMITS.get((resource["Type"], prop)), name


def created_name(r: Rehearsal, lid: str) -> str:
    physical = r.created.physical[lid] or ""
    # A queue's physical id is its URL, which ends with its name.
    return physical.rsplit("/", 1)[-1] if r.created.types[lid] == "AWS::SQS::Queue" else physical


CHECKS: list[Callable[[Rehearsal], list[str]]] = [
    check_every_resource_is_created_or_a_moto_skip,
    check_the_table,
    check_each_function_as_created,
    check_each_role_grants_what_its_function_needs,
    check_the_stream_feeds_the_dispatcher,
    check_the_schedules_invoke_their_functions,
    check_the_api_routes_what_the_code_declares,
    check_what_moto_skips_in_the_transformed_template,
    check_every_name_fits_at_the_longest_stack_name,
]


# --------------------------------------------------------------------------------------------
# lint
# --------------------------------------------------------------------------------------------


@cache
def lint_pool() -> ProcessPoolExecutor:
    # Forked: the worker starts with cfn-lint imported.
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))


@cache
def lint_runner() -> Runner:
    return Runner(ConfigMixIn(regions=[REGION]))


def lint_problems(transformed: dict) -> list[str]:
    """cfn-lint's errors (warnings and informational findings pass, as in test_infra.py)."""
    matches = lint_runner().validate_template(copy.deepcopy(transformed))
    return [f"{m.rule.id} at {m.path_string}: {m.message}" for m in matches if m.rule.id.startswith("E")]


# --------------------------------------------------------------------------------------------
# The stack name the README allows
# --------------------------------------------------------------------------------------------


def readme_stack_name_limit() -> int:
    """The longest stack name infra/README.md's deploy prompts allow ("at most N characters")."""
    match = re.search(r"^\|\s*Stack Name\s*\|.*?at most (\d+) characters", README.read_text(), re.MULTILINE)
    assert match, f"{README}: the `Stack Name` prompt states no limit ('at most N characters')"
    return int(match.group(1))


def stack_name_of_length(length: int) -> str:
    return ("credits-rehearsal-" + "x" * 128)[:length]
