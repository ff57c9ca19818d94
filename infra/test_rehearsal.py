"""The deploy rehearsal (rehearsal.py): the template as `sam deploy` has CloudFormation receive
it, transformed offline, validated, created in moto at the longest stack name infra/README.md
allows, checked against the code, and linted; and each fault of issue 29, injected into a copy of
the template, makes it fail. infra/README.md ("Deploy rehearsal") says what it proves and what
only a real deploy proves.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

# make test imports test modules by path (--import-mode=importlib): the modules they share sit here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rehearsal as rh  # noqa: E402
from infra_sources import template  # noqa: E402


def problems_text(problems: list[str]) -> str:
    return "\n  " + "\n  ".join(problems)


@pytest.fixture(scope="session")
def longest_stack_name() -> str:
    return rh.stack_name_of_length(rh.readme_stack_name_limit())


@pytest.fixture(scope="session")
def rehearsed(longest_stack_name) -> rh.Rehearsal:
    """The template rehearsed once per session, every stage it can reach run."""
    return rh.rehearse(template(), longest_stack_name)


def stage_problems(r: rh.Rehearsal, stage: str) -> list[str]:
    if stage not in r.problems:
        pytest.fail(f"the rehearsal did not reach {stage}, an earlier stage failed:{problems_text(r.report())}")
    return r.problems[stage]


def require_created(r: rh.Rehearsal) -> None:
    if stage_problems(r, "create"):
        pytest.fail(f"moto did not create the stack:{problems_text(r.problems['create'])}")


# --------------------------------------------------------------------------------------------
# The template as it is
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["transform", "validate", "create", "lint"])
def test_stage_passes(rehearsed, stage):
    problems = stage_problems(rehearsed, stage)
    assert not problems, f"{stage}:{problems_text(problems)}"


@pytest.mark.parametrize("check", rh.CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
def test_what_was_created(rehearsed, check):
    require_created(rehearsed)
    problems = check(rehearsed)
    assert not problems, f"{check.__name__}:{problems_text(problems)}"


def test_the_readme_allows_the_longest_stack_name_that_fits(rehearsed):
    """At the README's limit every name fits (check_every_name_fits_...); one character more and
    one would not: the README states the real limit, not a lower one."""
    require_created(rehearsed)
    room, limit = rh.name_room(rehearsed), len(rehearsed.stack_name)
    assert room >= 0, f"names outgrow their limits at the README's {limit} characters (see every_name_fits_...)"
    assert room == 0, f"every name has {room} characters to spare: infra/README.md could allow {limit + room}"


# --------------------------------------------------------------------------------------------
# Faults, each injected into a copy of the template
# --------------------------------------------------------------------------------------------


def env_var_on_a_queue_attribute_that_does_not_exist(sam: dict) -> None:
    variables = sam["Resources"]["EventsDispatcherFunction"]["Properties"]["Environment"]["Variables"]
    variables["DEAD_LETTER_QUEUE_URL"] = {"Fn::GetAtt": ["EventsDeadLetterQueue", "Url"]}


def role_statement_on_its_own_function(sam: dict) -> None:
    # The function needs the role first, and now the role needs the function.
    role_statements(sam, "AdminRole", "logs").append(
        {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": {"Fn::GetAtt": ["AdminFunction", "Arn"]}}
    )


def dangling_ref_in_globals(sam: dict) -> None:
    sam["Globals"]["Function"]["Environment"]["Variables"]["DEAD_LETTER_QUEUE"] = {"Ref": "DeadLetterQueue"}


def getatt_of_an_attribute_the_table_lacks(sam: dict) -> None:
    # The API's field name, not CloudFormation's attribute (StreamArn).
    events = sam["Resources"]["EventsDispatcherFunction"]["Properties"]["Events"]
    events["TableStream"]["Properties"]["Stream"] = {"Fn::GetAtt": ["Table", "LatestStreamArn"]}


def list_streams_on_the_stream_arn(sam: dict) -> None:
    for statement in role_statements(sam, "EventsDispatcherRole", "stream"):
        if "dynamodb:ListStreams" in statement["Action"]:
            statement["Resource"] = {"Fn::GetAtt": ["Table", "StreamArn"]}


def no_change(sam: dict) -> None:
    pass


def role_statements(sam: dict, role: str, policy_name: str) -> list[dict]:
    policies = sam["Resources"][role]["Properties"]["Policies"]
    return next(p for p in policies if p["PolicyName"] == policy_name)["PolicyDocument"]["Statement"]


# (inject, stack name length or None for the README's, what the rehearsal must report)
FAULTS = [
    pytest.param(
        env_var_on_a_queue_attribute_that_does_not_exist,
        None,
        "resource EventsDeadLetterQueue (AWS::SQS::Queue) does not support attribute type Url",
        id="env-var-getatt-queue-url",
    ),
    pytest.param(
        role_statement_on_its_own_function,
        None,
        "Circular dependency between resources: ['AdminFunction', 'AdminRole']",
        id="role-statement-on-its-function-makes-a-cycle",
    ),
    pytest.param(dangling_ref_in_globals, None, "unresolved reference 'DeadLetterQueue'", id="dangling-ref-in-globals"),
    pytest.param(
        getatt_of_an_attribute_the_table_lacks,
        None,
        "resource Table (AWS::DynamoDB::Table) does not support attribute type LatestStreamArn",
        id="getatt-of-a-missing-attribute",
    ),
    # The README's limit before issue 29: <stack>-events-dispatcher outgrows 64 characters.
    pytest.param(no_change, 49, "AWS::Lambda::Function allows 64", id="stack-name-too-long"),
    pytest.param(
        list_streams_on_the_stream_arn, None, "grants dynamodb:ListStreams on", id="list-streams-on-the-stream-arn"
    ),
]


@pytest.mark.parametrize("inject, stack_name_length, reported", FAULTS)
def test_a_fault_fails_the_rehearsal(inject, stack_name_length, reported):
    faulty = copy.deepcopy(template())
    inject(faulty)
    length = stack_name_length or rh.readme_stack_name_limit()
    r = rh.rehearse(faulty, rh.stack_name_of_length(length), stop_at_first_failure=True)
    assert r.failed, "the rehearsal passed the faulty template"
    assert any(reported in problem for problem in r.report()), (
        f"expected a problem containing {reported!r}; the rehearsal reported:{problems_text(r.report())}"
    )
