"""Tests for the local Stripe stand-in, driven by the official `stripe` Python library.

Run:  python -m pytest tests/stripe_standin -q
The server is started on a free port as a subprocess and killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep tests/stripe_standin free of __pycache__
import server as standin  # noqa: E402  (pure helpers only: decode_form, add_period, ...)
import shapes  # noqa: E402  (async-stripe rc.10's JSON shapes, from required_fields.json)

API_KEY = "sk_test_standin_tests"
WH_SECRET = "whsec_test_suite_secret"


# --------------------------------------------------------------------------- fixtures


@contextlib.contextmanager
def run_standin(*args: str, env: dict | None = None):
    """A stand-in on a free port (extra CLI `args`, extra `env`); yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0", "--exit-on-stdin-eof", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, **(env or {})})
    line_box: list[str] = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(timeout=15)
    if not line_box or not line_box[0].startswith("READY "):
        proc.kill()
        pytest.fail(f"stand-in did not print READY (got {line_box!r})")
    url = line_box[0].split()[1].strip()
    try:
        yield url
    finally:
        proc.stdin.close()  # --exit-on-stdin-eof: the server exits on EOF
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("stand-in did not exit on stdin EOF")
    assert code == 0


@pytest.fixture(scope="session")
def base_url():
    # pm_card_refundFail refunds fail only through the control route here, so the tests
    # decide when; the tests of the deferred failure start their own stand-ins.
    with run_standin("--refund-fail-after", "-1") as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(base_url):
    stripe.api_key = API_KEY
    stripe.api_base = base_url
    stripe.max_network_retries = 0
    control(base_url, "POST", "/_standin/webhook", {"url": None, "secret": WH_SECRET})
    control(base_url, "POST", "/_standin/reset")
    yield


def control(base_url: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def raw(base_url: str, method: str, path: str, body: str | None = None,
        headers: dict | None = None):
    """A raw HTTP call; returns (status, headers, parsed JSON)."""
    hdrs = {"Authorization": f"Bearer {API_KEY}"}
    hdrs.update(headers or {})
    data = body.encode() if body is not None else None
    if data is not None:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    req = urllib.request.Request(base_url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def wait_until(fn, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        val = fn()
        if val:
            return val
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def events(type_: str | None = None) -> list:
    params = {"limit": 100}
    if type_:
        params["type"] = type_
    return list(stripe.Event.list(**params).auto_paging_iter())


def header(obj, name: str):
    for k, v in obj.last_response.headers.items():
        if k.lower() == name.lower():
            return v
    return None


def card_pi(pm: str, amount: int = 1000, **kw):
    return stripe.PaymentIntent.create(amount=amount, currency="usd", payment_method=pm,
                                       payment_method_types=["card"], confirm=True, **kw)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """A tiny webhook endpoint recording (headers, raw body); answers scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, on_hit=None):
        self.hits: list[tuple[dict, bytes]] = []
        self.statuses = list(statuses or [])
        self.on_hit = on_hit
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = rec.statuses.pop(0) if rec.statuses else 200
                if rec.on_hit:
                    rec.on_hit(json.loads(body))
                rec.hits.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/stripe/webhook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self):
        return [json.loads(b) for _, b in self.hits]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver(base_url):
    rec = Receiver()
    control(base_url, "POST", "/_standin/webhook", {"url": rec.url, "secret": WH_SECRET})
    yield rec
    control(base_url, "POST", "/_standin/webhook", {"url": None})
    rec.close()


# --------------------------------------------------------------------------- unit


def test_form_decoding_bracket_notation():
    body = ("metadata%5Bentity_id%5D=e-1&expand%5B%5D=latest_charge&expand%5B%5D=customer"
            "&payment_method_types%5B0%5D=card&automatic_payment_methods%5Benabled%5D=true"
            "&items%5B0%5D%5Bprice_data%5D%5Brecurring%5D%5Binterval%5D=month"
            "&items%5B0%5D%5Bquantity%5D=2&items%5B1%5D%5Bprice%5D=price_x&metadata%5Bempty%5D=")
    got = standin.decode_form(body)
    assert got == {
        "metadata": {"entity_id": "e-1", "empty": ""},
        "expand": ["latest_charge", "customer"],
        "payment_method_types": ["card"],
        "automatic_payment_methods": {"enabled": "true"},
        "items": [{"price_data": {"recurring": {"interval": "month"}}, "quantity": "2"},
                  {"price": "price_x"}],
    }


def test_add_period_clamps_month_end():
    jan31 = int(dt.datetime(2030, 1, 31, tzinfo=dt.timezone.utc).timestamp())
    feb = standin.add_period(jan31, "month", 1, 1)
    mar = standin.add_period(jan31, "month", 1, 2)
    assert dt.datetime.fromtimestamp(feb, dt.timezone.utc).date() == dt.date(2030, 2, 28)
    assert dt.datetime.fromtimestamp(mar, dt.timezone.utc).date() == dt.date(2030, 3, 31)


# --------------------------------------------------------------------------- payment intents


def test_pi_create_then_confirm_visa(base_url):
    pi = stripe.PaymentIntent.create(amount=999, currency="usd", payment_method_types=["card"],
                                     metadata={"entity_id": "e-1", "user_id": "u-1"},
                                     receipt_email="a@example.com", description="tier ct-1")
    assert pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(pi.id + "_secret_")
    assert pi.latest_charge is None
    pi = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert pi.status == "succeeded"
    assert pi.amount_received == 999
    assert isinstance(pi.latest_charge, str) and pi.latest_charge.startswith("ch_")
    again = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge"])
    ch = again.latest_charge
    assert ch.object == "charge" and ch.payment_intent == pi.id
    assert (ch.amount, ch.amount_refunded, ch.refunded, ch.paid) == (999, 0, False, True)
    assert ch.metadata["entity_id"] == "e-1"
    assert again.metadata.to_dict() == {"entity_id": "e-1", "user_id": "u-1"}
    types = [e.type for e in events() if e.data.object["id"] in (pi.id, ch.id)]
    assert types == ["payment_intent.succeeded", "charge.succeeded", "payment_intent.created"]
    pm = stripe.PaymentMethod.retrieve("pm_card_visa")
    assert (pm.type, pm.card.brand, pm.card.last4) == ("card", "visa", "4242")


def test_pi_decline_error_shape(base_url):
    with pytest.raises(stripe.CardError) as ei:
        card_pi("pm_card_chargeDeclined", metadata={"entity_id": "e-1"})
    err = ei.value
    assert err.http_status == 402
    assert err.code == "card_declined"
    body = err.json_body["error"]
    assert body["type"] == "card_error"
    assert body["decline_code"] == "generic_decline"
    assert body["charge"].startswith("ch_")
    # the test token was cloned into a fresh PaymentMethod, as at Stripe
    assert body["payment_method"]["id"].startswith("pm_1")
    assert body["payment_method"]["card"]["last4"] == "0002"
    embedded = body["payment_intent"]
    assert embedded["status"] == "requires_payment_method"
    assert embedded["last_payment_error"]["decline_code"] == "generic_decline"
    pi = stripe.PaymentIntent.retrieve(embedded["id"])
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "card_declined"
    failed = [e for e in events("payment_intent.payment_failed")
              if e.data.object.id == pi.id]
    assert len(failed) == 1
    ch = stripe.Charge.retrieve(body["charge"])
    assert (ch.status, ch.paid, ch.failure_code) == ("failed", False, "card_declined")
    # a retry with a good card succeeds on the same intent
    ok = stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert ok.status == "succeeded"


def test_pi_3ds_requires_action_then_authenticate(base_url):
    pi = card_pi("pm_card_authenticationRequired")
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    assert not [e for e in events("payment_intent.succeeded") if e.data.object.id == pi.id]
    done = control(base_url, "POST", f"/_standin/payment_intents/{pi.id}/authenticate", {})
    assert done["status"] == "succeeded"
    assert stripe.PaymentIntent.retrieve(pi.id).status == "succeeded"
    assert [e for e in events("payment_intent.succeeded") if e.data.object.id == pi.id]
    # off-session: no customer present to authenticate -> declined
    with pytest.raises(stripe.CardError) as ei:
        card_pi("pm_card_authenticationRequired", off_session=True)
    assert ei.value.code == "authentication_required"


def test_pi_3ds_authentication_failure(base_url):
    pi = card_pi("pm_card_authenticationRequired")
    out = control(base_url, "POST", f"/_standin/payment_intents/{pi.id}/authenticate",
                  {"outcome": "fail"})
    assert out["status"] == "requires_payment_method"
    assert out["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_pi_create_dispute_card(base_url):
    pi = card_pi("pm_card_createDispute")
    assert pi.status == "succeeded"
    disputes = stripe.Dispute.list(payment_intent=pi.id).data
    assert len(disputes) == 1
    dp = disputes[0]
    assert (dp.status, dp.charge, dp.amount) == ("needs_response", pi.latest_charge, 1000)
    assert stripe.Charge.retrieve(pi.latest_charge).disputed is True
    created = [e for e in events("charge.dispute.created") if e.data.object.id == dp.id]
    assert len(created) == 1


def test_automatic_payment_methods_need_return_url_or_no_redirects(base_url):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=1000, currency="usd", payment_method="pm_card_visa",
                                    confirm=True)
    assert ei.value.http_status == 400 and ei.value.param == "return_url"
    pi = stripe.PaymentIntent.create(
        amount=1000, currency="usd", payment_method="pm_card_visa", confirm=True,
        automatic_payment_methods={"enabled": True, "allow_redirects": "never"})
    assert pi.status == "succeeded"
    pi2 = stripe.PaymentIntent.create(amount=1000, currency="usd",
                                      payment_method="pm_card_visa", confirm=True,
                                      return_url="https://example.com/done")
    assert pi2.status == "succeeded"


def test_pi_validation_and_cancel(base_url):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(amount=10, currency="usd")
    assert ei.value.code == "amount_too_small" and ei.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.create(currency="usd")
    assert ei.value.code == "parameter_missing" and ei.value.param == "amount"
    pi = stripe.PaymentIntent.create(amount=1000, currency="usd", payment_method_types=["card"])
    pi = stripe.PaymentIntent.modify(pi.id, amount=1500, metadata={"k": "v"})
    assert (pi.amount, pi.metadata["k"]) == (1500, "v")
    pi = stripe.PaymentIntent.cancel(pi.id)
    assert pi.status == "canceled" and pi.canceled_at
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentIntent.confirm(pi.id, payment_method="pm_card_visa")
    assert ei.value.code == "payment_intent_unexpected_state"
    assert [e for e in events("payment_intent.canceled") if e.data.object.id == pi.id]


# --------------------------------------------------------------------------- idempotency


def test_idempotent_replay_and_mismatch(base_url):
    a = stripe.PaymentIntent.create(amount=1200, currency="usd", payment_method_types=["card"],
                                    idempotency_key="order-42")
    assert header(a, "Idempotent-Replayed") is None
    b = stripe.PaymentIntent.create(amount=1200, currency="usd", payment_method_types=["card"],
                                    idempotency_key="order-42")
    assert b.id == a.id
    assert header(b, "Idempotent-Replayed") == "true"
    assert len(stripe.PaymentIntent.list(limit=100).data) == 1
    with pytest.raises(stripe.IdempotencyError) as ei:
        stripe.PaymentIntent.create(amount=1300, currency="usd", payment_method_types=["card"],
                                    idempotency_key="order-42")
    assert ei.value.http_status == 400
    assert ei.value.json_body["error"]["type"] == "idempotency_error"
    # keys are scoped per API key
    c = stripe.PaymentIntent.create(amount=1200, currency="usd", payment_method_types=["card"],
                                    idempotency_key="order-42", api_key="sk_test_other_account")
    assert c.id != a.id
    # a replayed decline is the same 402 (same charge), not a second attempt
    errs = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as ei:
            card_pi("pm_card_chargeDeclined", idempotency_key="decline-1")
        errs.append(ei.value.json_body["error"]["charge"])
    assert errs[0] == errs[1]
    assert len(events("charge.failed")) == 1
    logged = control(base_url, "GET", "/_standin/requests?path=/v1/payment_intents&method=POST")
    assert [r["idempotency_key"] for r in logged].count("order-42") == 4
    assert sum(1 for r in logged if r.get("idempotent_replayed")) == 2


# --------------------------------------------------------------------------- refunds


def test_refunds_partial_then_full(base_url):
    pi = card_pi("pm_card_visa", amount=1000)
    r1 = stripe.Refund.create(payment_intent=pi.id, amount=300)
    assert (r1.amount, r1.status, r1.charge) == (300, "succeeded", pi.latest_charge)
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert (ch.amount_refunded, ch.refunded) == (300, False)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id, amount=800)
    assert ei.value.param == "amount"
    r2 = stripe.Refund.create(charge=pi.latest_charge)  # the rest
    assert r2.amount == 700
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert (ch.amount_refunded, ch.refunded) == (1000, True)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id)
    assert ei.value.code == "charge_already_refunded"
    refunded = [e for e in events("charge.refunded") if e.data.object.id == ch.id]
    assert [e.data.object.amount_refunded for e in reversed(refunded)] == [300, 1000]
    assert refunded[0].data.previous_attributes.amount_refunded == 300
    unpaid = stripe.PaymentIntent.create(amount=1000, currency="usd",
                                         payment_method_types=["card"])
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Refund.create(payment_intent=unpaid.id)


# --------------------------------------------------------------------------- disputes


@pytest.mark.parametrize("text,outcome", [("winning_evidence", "won"),
                                          ("losing_evidence", "lost")])
def test_dispute_closes_won_or_lost(base_url, text, outcome):
    pi = card_pi("pm_card_createDispute")
    dp = stripe.Dispute.list(payment_intent=pi.id).data[0]
    dp = stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": text})
    assert dp.status == "under_review"  # the response; the outcome follows
    assert dp.evidence.uncategorized_text == text
    assert stripe.Dispute.retrieve(dp.id).status == outcome
    closed = [e for e in events("charge.dispute.closed") if e.data.object.id == dp.id]
    assert len(closed) == 1 and closed[0].data.object.status == outcome
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": "again"})


def test_dispute_other_evidence_goes_under_review(base_url):
    pi = card_pi("pm_card_createDispute")
    dp = stripe.Dispute.list(payment_intent=pi.id).data[0]
    dp = stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": "see receipt"},
                               submit=False)
    assert dp.status == "needs_response" and dp.evidence_details.has_evidence
    dp = stripe.Dispute.modify(dp.id, evidence={"product_description": "credits"})
    assert dp.status == "under_review"
    assert not [e for e in events("charge.dispute.closed") if e.data.object.id == dp.id]


# --------------------------------------------------------------------------- customers, subs


def test_customer_defaults_to_clock_default(base_url):
    cus = stripe.Customer.create(email="u@example.com", metadata={"user_id": "u-1"})
    assert cus.test_clock == "clock_default"
    clock = stripe.test_helpers.TestClock.retrieve("clock_default")
    assert clock.status == "ready" and clock.frozen_time > 0
    own = stripe.test_helpers.TestClock.create(frozen_time=1_900_000_000, name="mine")
    cus2 = stripe.Customer.create(test_clock=own.id)
    assert cus2.test_clock == own.id
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Customer.create(test_clock="clock_nope")
    assert ei.value.code == "resource_missing"


def _utc(y, m, d):
    return int(dt.datetime(y, m, d, tzinfo=dt.timezone.utc).timestamp())


def test_subscription_clock_cycles_and_cancel_at_period_end(base_url):
    t0 = _utc(2030, 1, 15)
    clock = stripe.test_helpers.TestClock.create(frozen_time=t0)
    cus = stripe.Customer.create(email="sub@example.com", test_clock=clock.id)
    prod = stripe.Product.create(name="Pro credits")
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=cus.id)
    sub = stripe.Subscription.create(
        customer=cus.id, default_payment_method=card.id,
        items=[{"price_data": {"currency": "usd", "product": prod.id, "unit_amount": 1500,
                               "recurring": {"interval": "month"}}}],
        metadata={"entity_id": "e-1", "user_id": "u-1", "credit_tier_id": "ct-pro"},
        payment_behavior="allow_incomplete", expand=["latest_invoice.payment_intent"])
    assert sub.status == "active"
    assert (sub.start_date, sub.items.data[0].current_period_end) == (t0, _utc(2030, 2, 15))
    inv = sub.latest_invoice
    assert inv.object == "invoice" and inv.status == "paid" and inv.amount_paid == 1500
    assert inv.payment_intent.object == "payment_intent"
    assert inv.payment_intent.status == "succeeded"

    def paid_for_sub():
        return sorted((e.data.object for e in events("invoice.paid")
                       if e.data.object.subscription == sub.id), key=lambda i: i.created)

    first = paid_for_sub()
    assert len(first) == 1
    assert first[0].billing_reason == "subscription_create"
    assert first[0].subscription_details.metadata.to_dict() == sub.metadata.to_dict()
    assert first[0].parent.subscription_details.metadata["credit_tier_id"] == "ct-pro"

    clock = stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2030, 3, 20))
    assert clock.status == "ready" and clock.frozen_time == _utc(2030, 3, 20)
    paid = paid_for_sub()
    assert [i.billing_reason for i in paid] == ["subscription_create", "subscription_cycle",
                                                "subscription_cycle"]
    assert len({i.id for i in paid}) == 3
    lines = [i.lines.data[0].period for i in paid]
    assert [(p.start, p.end) for p in lines] == [
        (_utc(2030, 1, 15), _utc(2030, 2, 15)), (_utc(2030, 2, 15), _utc(2030, 3, 15)),
        (_utc(2030, 3, 15), _utc(2030, 4, 15))]
    assert all(i.amount_paid == 1500 for i in paid)

    sub = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert sub.cancel_at_period_end is True and sub.status == "active"
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2030, 6, 1))
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "canceled" and sub.ended_at == _utc(2030, 4, 15)
    assert len(paid_for_sub()) == 3  # cancel_at_period_end stopped the next renewal
    deleted = [e for e in events("customer.subscription.deleted")
               if e.data.object.id == sub.id]
    assert len(deleted) == 1


def test_subscription_cancel_now_and_inline_price_validation(base_url):
    cus = stripe.Customer.create(payment_method="pm_card_visa",
                                 invoice_settings={"default_payment_method": "pm_card_visa"})
    prod = stripe.Product.create(name="Basic")
    price = stripe.Price.create(currency="usd", unit_amount=500, product=prod.id,
                                recurring={"interval": "month"})
    sub = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}])
    assert sub.status == "active" and sub.items.data[0].price.id == price.id
    sub = stripe.Subscription.cancel(sub.id)
    assert sub.status == "canceled"
    assert [e for e in events("customer.subscription.deleted") if e.data.object.id == sub.id]
    with pytest.raises(stripe.InvalidRequestError) as ei:  # Stripe wants a product id here
        stripe.Subscription.create(customer=cus.id, items=[{"price_data": {
            "currency": "usd", "unit_amount": 500, "recurring": {"interval": "month"}}}])
    assert ei.value.param == "items[0][price_data][product]"


def test_subscription_declined_card_is_incomplete(base_url):
    cus = stripe.Customer.create()
    prod = stripe.Product.create(name="Basic")
    declining = stripe.PaymentMethod.attach("pm_card_chargeDeclined", customer=cus.id)
    sub = stripe.Subscription.create(
        customer=cus.id, default_payment_method=declining.id,
        items=[{"price_data": {"currency": "usd", "product": prod.id, "unit_amount": 700,
                               "recurring": {"interval": "month"}}}],
        expand=["latest_invoice.payment_intent"])
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    assert sub.latest_invoice.payment_intent.status == "requires_payment_method"
    assert not [e for e in events("invoice.paid") if e.data.object.subscription == sub.id]
    # paying the open invoice's intent with a good card activates the subscription
    stripe.PaymentIntent.confirm(sub.latest_invoice.payment_intent.id,
                                 payment_method="pm_card_visa")
    assert stripe.Subscription.retrieve(sub.id).status == "active"
    assert [e for e in events("invoice.paid") if e.data.object.subscription == sub.id]


# --------------------------------------------------------------------------- webhooks


def test_webhook_delivery_is_signed_and_resendable(base_url, receiver):
    pi = card_pi("pm_card_visa")

    def got_succeeded():
        return [(h, b) for h, b in receiver.hits
                if json.loads(b)["type"] == "payment_intent.succeeded"
                and json.loads(b)["data"]["object"]["id"] == pi.id]

    hits = wait_until(got_succeeded, what="payment_intent.succeeded delivery")
    headers, body = hits[0]
    sig = headers["Stripe-Signature"]
    evt = stripe.Webhook.construct_event(body.decode(), sig, WH_SECRET)
    assert evt.type == "payment_intent.succeeded" and evt.data.object.id == pi.id
    assert evt.livemode is False and evt.api_version
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), sig, "whsec_wrong")
    # deliveries arrive in creation order
    order = [e["type"] for e in receiver.events() if e["data"]["object"].get("id")
             in (pi.id, pi.latest_charge)]
    assert order == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    deliveries = wait_until(lambda: [d for d in control(base_url, "GET", "/_standin/deliveries")
                                     if d["event_id"] == evt.id], what="delivery record")
    assert deliveries[0]["delivered"] is True and deliveries[0]["status"] == 200
    # duplicate delivery on demand
    control(base_url, "POST", f"/_standin/events/{evt.id}/resend", {})
    wait_until(lambda: sum(1 for e in receiver.events() if e["id"] == evt.id) == 2,
               what="resent delivery")
    recs = wait_until(lambda: [d for d in control(base_url, "GET", "/_standin/deliveries")
                               if d["event_id"] == evt.id and d["resend"]],
                      what="resend record")
    assert recs[0]["delivered"] is True


def test_webhook_retries_after_failure(base_url, receiver):
    receiver.statuses = [500]
    cus = stripe.Customer.create(email="r@example.com")
    rec = wait_until(lambda: [d for d in control(base_url, "GET", "/_standin/deliveries")
                              if d["event_type"] == "customer.created"],
                     what="customer.created delivery")[0]
    assert rec["delivered"] is True
    assert [a["status"] for a in rec["attempts"]] == [500, 200]
    bodies = [e for e in receiver.events() if e["data"]["object"]["id"] == cus.id]
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]


def test_concurrent_requests_and_webhook_handler_calling_back(base_url):
    """The service's webhook handler calls the API while deliveries are in flight."""
    seen_status = []

    def on_hit(evt):
        if evt["type"] == "payment_intent.succeeded":  # like Q7: look the intent up
            seen_status.append(stripe.PaymentIntent.retrieve(
                evt["data"]["object"]["id"]).status)

    rec = Receiver(on_hit=on_hit)
    control(base_url, "POST", "/_standin/webhook", {"url": rec.url, "secret": WH_SECRET})
    try:
        results, errors = [], []

        def pay(i):
            try:
                results.append(card_pi("pm_card_visa", amount=1000 + i).id)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=pay, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert not errors and len(set(results)) == 12
        wait_until(lambda: len(seen_status) == 12, what="12 succeeded deliveries")
        assert set(seen_status) == {"succeeded"}
        assert len({e.data.object.id for e in events("payment_intent.succeeded")}) == 12
    finally:
        control(base_url, "POST", "/_standin/webhook", {"url": None})
        rec.close()


# --------------------------------------------------------------------------- control & errors


def test_fault_switch_answers_api_error(base_url):
    control(base_url, "POST", "/_standin/faults", {"status": 500, "count": 2})
    for _ in range(2):
        with pytest.raises(stripe.APIError) as ei:
            stripe.Customer.create()
        assert ei.value.http_status == 500
        assert ei.value.json_body["error"]["type"] == "api_error"
    assert stripe.Customer.create().object == "customer"
    assert control(base_url, "GET", "/_standin/faults")["count"] == 0
    logged = control(base_url, "GET", "/_standin/requests?path=/v1/customers")
    assert [r["status"] for r in logged] == [500, 500, 200]
    # scoped to a path prefix, with Stripe-Should-Retry (async-stripe retries only then)
    control(base_url, "POST", "/_standin/faults", {"status": 503, "count": 1,
                                                   "path_prefix": "/v1/payment_intents",
                                                   "should_retry": True})
    assert stripe.Customer.create().object == "customer"  # other paths unaffected
    status, hdrs, body = raw(base_url, "POST", "/v1/payment_intents",
                             "amount=1000&currency=usd")
    assert status == 503 and body["error"]["type"] == "api_error"
    assert hdrs.get("Stripe-Should-Retry") == "true"
    status, _, _ = raw(base_url, "POST", "/v1/payment_intents", "amount=1000&currency=usd")
    assert status == 200


def test_unknown_ids_are_404_resource_missing(base_url):
    for call in (lambda: stripe.PaymentIntent.retrieve("pi_missing"),
                 lambda: stripe.Customer.retrieve("cus_missing"),
                 lambda: stripe.Subscription.retrieve("sub_missing"),
                 lambda: stripe.Dispute.retrieve("dp_missing"),
                 lambda: stripe.Event.retrieve("evt_missing")):
        with pytest.raises(stripe.InvalidRequestError) as ei:
            call()
        assert ei.value.http_status == 404
        assert ei.value.code == "resource_missing"
    status, _, body = raw(base_url, "GET", "/v1/payment_intents/pi_missing")
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "No such payment_intent: 'pi_missing'"
    assert body["error"]["param"] == "intent"
    status, _, body = raw(base_url, "GET", "/v1/no_such_endpoint")
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]


def test_auth_rules(base_url):
    status, _, body = raw(base_url, "GET", "/v1/customers", headers={"Authorization": ""})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    status, _, body = raw(base_url, "GET", "/v1/customers",
                          headers={"Authorization": "Bearer sk_live_1234567890abcdef"})
    assert status == 401
    assert body["error"]["message"].startswith("Invalid API Key provided: ")
    assert "1234567890" not in body["error"]["message"]
    status, _, _ = raw(base_url, "GET", "/v1/customers",
                       headers={"Authorization": "Bearer pk_test_abc"})
    assert status == 200
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="sk_live_nope_nope_nope")


def test_request_log_records_headers_and_parsed_body(base_url):
    body = ("amount=2000&currency=usd&payment_method_types%5B0%5D=card"
            "&metadata%5Bentity_id%5D=e-9&automatic_payment_methods%5Benabled%5D=true")
    status, _, err = raw(base_url, "POST", "/v1/payment_intents", body,
                         headers={"Idempotency-Key": "idem-log-1"})
    assert status == 400  # both payment_method_types and automatic_payment_methods
    assert err["error"]["param"] == "automatic_payment_methods"
    status, hdrs, pi = raw(base_url, "POST", "/v1/payment_intents",
                           "amount=2000&currency=usd&payment_method_types%5B0%5D=card"
                           "&metadata%5Bentity_id%5D=e-9&expand%5B%5D=customer",
                           headers={"Idempotency-Key": "idem-log-1"})
    assert status == 200 and pi["metadata"] == {"entity_id": "e-9"}
    assert hdrs.get("Request-Id", "").startswith("req_")
    logged = control(base_url, "GET", "/_standin/requests")
    last = logged[-1]
    assert last["method"] == "POST" and last["path"] == "/v1/payment_intents"
    assert last["idempotency_key"] == "idem-log-1"
    assert last["headers"]["Idempotency-Key"] == "idem-log-1"
    assert last["body"] == {"amount": "2000", "currency": "usd",
                            "payment_method_types": ["card"],
                            "metadata": {"entity_id": "e-9"}, "expand": ["customer"]}
    assert last["status"] == 200
    control(base_url, "DELETE", "/_standin/requests")
    assert control(base_url, "GET", "/_standin/requests") == []


def test_events_list_filter_and_pagination(base_url):
    for i in range(3):
        stripe.Customer.create(email=f"c{i}@example.com")
    page1 = stripe.Event.list(type="customer.created", limit=2)
    assert len(page1.data) == 2 and page1.has_more is True
    assert page1.data[0].data.object.email == "c2@example.com"  # newest first
    page2 = stripe.Event.list(type="customer.created", limit=2,
                              starting_after=page1.data[-1].id)
    assert [e.data.object.email for e in page2.data] == ["c0@example.com"]
    assert page2.has_more is False
    assert {e.type for e in stripe.Event.list(type="customer.*", limit=100).data} == \
        {"customer.created"}
    one = stripe.Event.retrieve(page1.data[0].id)
    assert one.id == page1.data[0].id and one.request.id.startswith("req_")


# --------------------------------------------------------------------------- lifecycle helpers


def all_delivered(base_url, receiver) -> list[dict]:
    """Every event created so far, as delivered to `receiver` (signature-checked), in
    delivery order. Waits until each stored event has arrived."""
    total = len(events())
    wait_until(lambda: len(receiver.hits) >= total, what=f"{total} deliveries")
    out = []
    for hdrs, body in receiver.hits:
        evt = stripe.Webhook.construct_event(body.decode(), hdrs["Stripe-Signature"], WH_SECRET)
        out.append(json.loads(body))
        assert evt.id == out[-1]["id"]
    assert [e["id"] for e in out] == [e.id for e in reversed(events())]  # creation order
    return out


def about(evts: list[dict], *ids: str) -> list[dict]:
    """The events whose object is, or points at (charge / payment_intent), one of `ids`."""
    keep = set(ids)
    return [e for e in evts if keep & {e["data"]["object"].get(k)
                                       for k in ("id", "charge", "payment_intent")}]


def dispute_view(e: dict) -> tuple:
    o = e["data"]["object"]
    card = (o.get("payment_method_details") or {}).get("card") or {}
    return (e["type"], o["status"], card.get("case_type"),
            [(t["amount"], t["fee"], t["net"]) for t in o["balance_transactions"]])


def the_dispute(pi) -> stripe.Dispute:
    found = stripe.Dispute.list(payment_intent=pi.id).data
    assert len(found) == 1
    return found[0]


# --------------------------------------------------------------------------- payment method clones


def test_attach_clones_a_test_payment_method(base_url):
    cus = stripe.Customer.create(email="pm@example.com")
    pm = stripe.PaymentMethod.attach("pm_card_visa", customer=cus.id)
    assert pm.id.startswith("pm_1") and pm.id != "pm_card_visa"
    assert (pm.customer, pm.card.last4, pm.card.brand) == (cus.id, "4242", "visa")
    again = stripe.PaymentMethod.attach("pm_card_visa", customer=cus.id)
    assert again.id != pm.id  # every use of the token is a new clone
    listed = stripe.Customer.list_payment_methods(cus.id).data
    assert {p.id for p in listed} == {pm.id, again.id}
    assert {p.id for p in stripe.PaymentMethod.list(customer=cus.id).data} == {pm.id, again.id}
    assert stripe.PaymentMethod.retrieve("pm_card_visa").customer is None  # the token itself
    attached = [e.data.object.id for e in events("payment_method.attached")]
    assert sorted(attached) == sorted([pm.id, again.id])
    other = stripe.Customer.create()
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.PaymentMethod.attach(pm.id, customer=other.id)
    assert ei.value.http_status == 400
    # the default must be attached to that customer: the clone is, the token is not
    cus = stripe.Customer.modify(cus.id, invoice_settings={"default_payment_method": pm.id})
    assert cus.invoice_settings.default_payment_method == pm.id
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Customer.modify(cus.id, invoice_settings={"default_payment_method": "pm_card_visa"})
    assert ei.value.code == "resource_missing"
    assert ei.value.param == "invoice_settings[default_payment_method]"
    detached = stripe.PaymentMethod.detach(pm.id)
    assert detached.customer is None
    assert stripe.Customer.retrieve(cus.id).invoice_settings.default_payment_method is None
    assert [e.data.object.id for e in events("payment_method.detached")] == [pm.id]


def test_customer_create_with_payment_method_defaults_to_the_clone(base_url):
    cus = stripe.Customer.create(payment_method="pm_card_visa",
                                 invoice_settings={"default_payment_method": "pm_card_visa"})
    default = cus.invoice_settings.default_payment_method
    assert default.startswith("pm_1") and default != "pm_card_visa"
    pm = stripe.PaymentMethod.retrieve(default)
    assert (pm.customer, pm.card.last4) == (cus.id, "4242")
    types = [e.type for e in reversed(events()) if e.data.object.id in (cus.id, default)]
    assert types == ["customer.created", "payment_method.attached"]
    # attached, but not the default, when only `payment_method` is given
    plain = stripe.Customer.create(payment_method="pm_card_mastercard")
    assert plain.invoice_settings.default_payment_method is None
    assert [p.card.last4 for p in stripe.Customer.list_payment_methods(plain.id).data] == \
        ["4444"]
    # a default that is not the payment method being attached cannot be attached yet
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Customer.create(invoice_settings={"default_payment_method": "pm_card_visa"})
    assert ei.value.code == "resource_missing"
    assert "does not have a payment method with the ID pm_1" in ei.value.user_message


def test_subscription_refuses_an_unattached_test_token_and_uses_the_clone(base_url):
    cus = stripe.Customer.create(payment_method="pm_card_visa",
                                 invoice_settings={"default_payment_method": "pm_card_visa"})
    clone = cus.invoice_settings.default_payment_method
    price = stripe.Price.create(currency="usd", unit_amount=700,
                                product=stripe.Product.create(name="Monthly").id,
                                recurring={"interval": "month"})
    before = len(events())
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}],
                                   default_payment_method="pm_card_visa")
    err = ei.value
    assert (err.http_status, err.code, err.param) == (400, "resource_missing",
                                                      "default_payment_method")
    assert err.json_body["error"]["type"] == "invalid_request_error"
    assert err.user_message.startswith("The customer does not have a payment method with the "
                                       "ID pm_1")
    assert err.user_message.endswith("The payment method must be attached to the customer.")
    assert len(events()) == before and not stripe.Subscription.list(customer=cus.id).data
    # with the clone: the subscription, its invoice's intent and the charge all name it
    sub = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}],
                                     default_payment_method=clone,
                                     expand=["latest_invoice.payment_intent.latest_charge"])
    assert sub.status == "active" and sub.default_payment_method == clone
    intent = sub.latest_invoice.payment_intent
    assert intent.payment_method == clone and intent.latest_charge.payment_method == clone
    line = sub.latest_invoice.lines.data[0]
    assert (line.subtotal, line.amount) == (700, 700)
    # falling back to the customer's default (the clone) works too
    sub2 = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}],
                                      expand=["latest_invoice.payment_intent"])
    assert sub2.default_payment_method is None
    assert sub2.latest_invoice.payment_intent.payment_method == clone
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Subscription.modify(sub.id, default_payment_method="pm_card_visa")
    assert ei.value.code == "resource_missing"


def test_payment_intent_clones_the_token_and_saves_it_for_future_usage(base_url):
    cus = stripe.Customer.create()
    pi = card_pi("pm_card_visa", customer=cus.id)
    assert pi.payment_method.startswith("pm_1")
    assert stripe.PaymentMethod.retrieve(pi.payment_method).customer is None  # not saved
    saved = card_pi("pm_card_visa", customer=cus.id, setup_future_usage="off_session")
    pm = stripe.PaymentMethod.retrieve(saved.payment_method)
    assert pm.customer == cus.id
    assert [p.id for p in stripe.Customer.list_payment_methods(cus.id).data] == [pm.id]
    # a saved payment method needs its customer on the next intent
    with pytest.raises(stripe.InvalidRequestError) as ei:
        card_pi(pm.id)
    assert ei.value.param == "payment_method" and cus.id in ei.value.user_message
    assert card_pi(pm.id, customer=cus.id, off_session=True).status == "succeeded"


# --------------------------------------------------------------------------- dispute lifecycles


def test_chargeback_lifecycle_won_with_evidence(base_url, receiver):
    pi = card_pi("pm_card_createDispute", amount=4200)
    assert pi.status == "succeeded"
    dp = the_dispute(pi)
    assert (dp.status, dp.reason, dp.is_charge_refundable) == ("needs_response", "fraudulent",
                                                               False)
    assert dp.payment_method_details.card.case_type == "chargeback"
    assert stripe.Charge.retrieve(pi.latest_charge).disputed is True
    with pytest.raises(stripe.InvalidRequestError) as ei:  # charged back: no refund
        stripe.Refund.create(payment_intent=pi.id)
    assert ei.value.code == "charge_disputed"
    out = stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": "winning_evidence"})
    assert out.status == "under_review" and out.evidence_details.submission_count == 1
    won = stripe.Dispute.retrieve(dp.id)
    assert won.status == "won"
    assert [(t.amount, t.fee, t.net) for t in won.balance_transactions] == \
        [(-4200, 1500, -5700), (4200, 0, 4200)]
    got = about(all_delivered(base_url, receiver), pi.id)
    assert [e["type"] for e in got] == [
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.updated",
        "charge.dispute.closed", "charge.dispute.funds_reinstated"]
    assert [dispute_view(e) for e in got[3:]] == [
        ("charge.dispute.created", "needs_response", "chargeback", []),
        ("charge.dispute.funds_withdrawn", "needs_response", "chargeback",
         [(-4200, 1500, -5700)]),
        ("charge.dispute.updated", "under_review", "chargeback", [(-4200, 1500, -5700)]),
        ("charge.dispute.closed", "won", "chargeback", [(-4200, 1500, -5700)]),
        ("charge.dispute.funds_reinstated", "won", "chargeback",
         [(-4200, 1500, -5700), (4200, 0, 4200)]),
    ]
    assert got[5]["data"]["previous_attributes"]["status"] == "needs_response"
    assert got[3]["data"]["object"]["network_reason_code"] == "10.4"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Dispute.close(dp.id)


def test_chargeback_lost_with_evidence_or_accepted(base_url, receiver):
    lost_pi = card_pi("pm_card_createDispute")
    lost = the_dispute(lost_pi)
    assert stripe.Dispute.modify(lost.id, evidence={"uncategorized_text": "losing_evidence"}
                                 ).status == "under_review"
    assert stripe.Dispute.retrieve(lost.id).status == "lost"
    accepted_pi = card_pi("pm_card_createDispute")
    accepted = stripe.Dispute.close(the_dispute(accepted_pi).id)
    assert accepted.status == "lost"
    evts = all_delivered(base_url, receiver)
    assert [dispute_view(e)[:2] for e in about(evts, lost.id)] == [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.updated", "under_review"), ("charge.dispute.closed", "lost")]
    assert [dispute_view(e)[:2] for e in about(evts, accepted.id)] == [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.closed", "lost")]
    assert not [e for e in evts if e["type"] == "charge.dispute.funds_reinstated"]


def test_inquiry_closes_without_escalation(base_url, receiver):
    pi = card_pi("pm_card_createDisputeInquiry", amount=1900)
    dp = the_dispute(pi)
    assert (dp.status, dp.is_charge_refundable, dp.balance_transactions) == \
        ("warning_needs_response", True, [])
    assert dp.payment_method_details.card.case_type == "inquiry"
    closed = control(base_url, "POST", f"/_standin/disputes/{dp.id}/close", {})
    assert closed["status"] == "warning_closed"
    # accepting another inquiry through the API closes it the same way
    pi2 = card_pi("pm_card_createDisputeInquiry")
    accepted = stripe.Dispute.close(the_dispute(pi2).id)
    assert accepted.status == "warning_closed"
    evts = all_delivered(base_url, receiver)
    assert [dispute_view(e) for e in about(evts, dp.id)] == [
        ("charge.dispute.created", "warning_needs_response", "inquiry", []),
        ("charge.dispute.closed", "warning_closed", "inquiry", [])]
    assert [dispute_view(e)[:2] for e in about(evts, accepted.id)] == [
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.closed", "warning_closed")]
    assert not [e for e in evts if e["type"].startswith("charge.dispute.funds_")]
    # no chargeback behind it: the charge can still be refunded
    assert stripe.Refund.create(payment_intent=pi.id).status == "succeeded"


def test_inquiry_escalates_to_a_chargeback(base_url, receiver):
    pi = card_pi("pm_card_createDisputeInquiry", amount=1900)
    dp = the_dispute(pi)
    escalated = control(base_url, "POST", f"/_standin/disputes/{dp.id}/escalate", {})
    assert escalated["status"] == "needs_response"
    assert escalated["payment_method_details"]["card"]["case_type"] == "chargeback"
    assert escalated["is_charge_refundable"] is False
    with pytest.raises(urllib.error.HTTPError) as ei:  # a chargeback cannot be escalated
        control(base_url, "POST", f"/_standin/disputes/{dp.id}/escalate", {})
    assert ei.value.code == 400
    stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": "winning_evidence"})
    got = about(all_delivered(base_url, receiver), dp.id)
    assert [dispute_view(e) for e in got] == [
        ("charge.dispute.created", "warning_needs_response", "inquiry", []),
        ("charge.dispute.updated", "needs_response", "chargeback", []),
        ("charge.dispute.funds_withdrawn", "needs_response", "chargeback",
         [(-1900, 1500, -3400)]),
        ("charge.dispute.updated", "under_review", "chargeback", [(-1900, 1500, -3400)]),
        ("charge.dispute.closed", "won", "chargeback", [(-1900, 1500, -3400)]),
        ("charge.dispute.funds_reinstated", "won", "chargeback",
         [(-1900, 1500, -3400), (1900, 0, 1900)]),
    ]
    prev = got[1]["data"]["previous_attributes"]
    assert prev["status"] == "warning_needs_response"
    assert prev["payment_method_details"]["card"]["case_type"] == "inquiry"


@pytest.mark.parametrize("text,steps", [
    ("winning_evidence", [("charge.dispute.created", "warning_needs_response"),
                          ("charge.dispute.updated", "warning_under_review"),
                          ("charge.dispute.closed", "warning_closed")]),
    ("losing_evidence", [("charge.dispute.created", "warning_needs_response"),
                         ("charge.dispute.updated", "warning_under_review"),
                         ("charge.dispute.updated", "needs_response"),
                         ("charge.dispute.funds_withdrawn", "needs_response")]),
])
def test_inquiry_evidence(base_url, receiver, text, steps):
    dp = the_dispute(card_pi("pm_card_createDisputeInquiry"))
    out = stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": text})
    assert out.status == "warning_under_review"
    got = about(all_delivered(base_url, receiver), dp.id)
    assert [dispute_view(e)[:2] for e in got] == steps


def test_control_route_opens_either_kind_of_dispute(base_url):
    pi = card_pi("pm_card_visa")
    dp = control(base_url, "POST", f"/_standin/charges/{pi.latest_charge}/dispute",
                 {"case_type": "inquiry", "reason": "product_not_received"})
    assert (dp["status"], dp["reason"]) == ("warning_needs_response", "product_not_received")
    with pytest.raises(urllib.error.HTTPError) as ei:  # one dispute per charge
        control(base_url, "POST", f"/_standin/charges/{pi.latest_charge}/dispute", {})
    assert ei.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as ei:  # an inquiry closes as warning_closed
        control(base_url, "POST", f"/_standin/disputes/{dp['id']}/close", {"status": "won"})
    assert ei.value.code == 400
    cb = control(base_url, "POST",
                 f"/_standin/charges/{card_pi('pm_card_visa').latest_charge}/dispute", {})
    assert cb["status"] == "needs_response" and len(cb["balance_transactions"]) == 1
    won = control(base_url, "POST", f"/_standin/disputes/{cb['id']}/close", {"status": "won"})
    assert won["status"] == "won" and len(won["balance_transactions"]) == 2


# --------------------------------------------------------------------------- refund lifecycles


FAILURE_EVENTS = ("charge.refund.updated", "refund.updated", "refund.failed")


def failure_events() -> list:
    return [e for e in events() if e.type in FAILURE_EVENTS]


def fail_refund(base_url, re_id: str, body: dict | None = None) -> dict:
    return control(base_url, "POST", f"/_standin/refunds/{re_id}/fail", body or {})


def test_refund_fail_lifecycle(base_url, receiver):
    # the session stand-in runs with --refund-fail-after -1: the refund stays `succeeded`
    # until the control route fails it (as Stripe does, later, outside the request)
    pi = card_pi("pm_card_refundFail", amount=1000)
    ch_id = pi.latest_charge
    re1 = stripe.Refund.create(payment_intent=pi.id, amount=400)
    assert re1.status == "succeeded"
    assert stripe.Refund.retrieve(re1.id).status == "succeeded"
    ch = stripe.Charge.retrieve(ch_id)
    assert (ch.amount_refunded, ch.refunded) == (400, False)
    assert failure_events() == []
    out = fail_refund(base_url, re1.id)
    assert (out["status"], out["failure_reason"]) == ("failed", "expired_or_canceled_card")
    failed = stripe.Refund.retrieve(re1.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert failed.failure_balance_transaction.startswith("txn_")
    ch = stripe.Charge.retrieve(ch_id)
    assert (ch.amount_refunded, ch.refunded) == (0, False)
    re2 = stripe.Refund.create(payment_intent=pi.id)  # the whole amount again: fails too
    assert (re2.amount, re2.status) == (1000, "succeeded")
    assert stripe.Refund.retrieve(re2.id).status == "succeeded"
    ch = stripe.Charge.retrieve(ch_id)
    assert (ch.amount_refunded, ch.refunded) == (1000, True)
    assert len(failure_events()) == 3  # only re1's
    assert fail_refund(base_url, re2.id)["status"] == "failed"
    assert stripe.Refund.retrieve(re2.id).status == "failed"
    assert stripe.Charge.retrieve(ch_id).amount_refunded == 0
    got = about(all_delivered(base_url, receiver), pi.id)

    def view(e):
        o = e["data"]["object"]
        if o["object"] == "charge":
            return (e["type"], o["amount_refunded"], o["refunded"])
        return (e["type"], o["id"], o["status"], o["failure_reason"])
    assert [view(e) for e in got[3:]] == [
        ("refund.created", re1.id, "succeeded", None),
        ("charge.refunded", 400, False),
        ("charge.refund.updated", re1.id, "failed", "expired_or_canceled_card"),
        ("refund.updated", re1.id, "failed", "expired_or_canceled_card"),
        ("refund.failed", re1.id, "failed", "expired_or_canceled_card"),
        ("refund.created", re2.id, "succeeded", None),
        ("charge.refunded", 1000, True),
        ("charge.refund.updated", re2.id, "failed", "expired_or_canceled_card"),
        ("refund.updated", re2.id, "failed", "expired_or_canceled_card"),
        ("refund.failed", re2.id, "failed", "expired_or_canceled_card"),
    ]
    assert got[5]["data"]["previous_attributes"] == {
        "failure_balance_transaction": None, "failure_reason": None, "status": "succeeded"}
    # the failure happens outside the refund's request
    assert got[4]["request"]["id"].startswith("req_")
    assert [e["request"] for e in got[5:8]] == [{"id": None, "idempotency_key": None}] * 3
    # failing it again: 200, the refund unchanged, no event
    again = fail_refund(base_url, re1.id, {"failure_reason": "lost_or_stolen_card"})
    assert again == out == raw(base_url, "GET", f"/v1/refunds/{re1.id}")[2]
    assert len(failure_events()) == 6


def test_several_partial_refunds_and_a_control_route_failure(base_url, receiver):
    pi = card_pi("pm_card_visa", amount=1000)
    refunds = [stripe.Refund.create(payment_intent=pi.id, amount=a) for a in (200, 300)]
    # make the second fail (Stripe: e.g. the card was closed); its 300 can be refunded again
    out = control(base_url, "POST", f"/_standin/refunds/{refunds[1].id}/fail",
                  {"failure_reason": "lost_or_stolen_card"})
    assert (out["status"], out["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert stripe.Charge.retrieve(pi.latest_charge).amount_refunded == 200
    refunds.append(stripe.Refund.create(payment_intent=pi.id, amount=300))
    refunds.append(stripe.Refund.create(charge=pi.latest_charge))  # what is left: 500
    assert [r.amount for r in refunds] == [200, 300, 300, 500]
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert (ch.amount_refunded, ch.refunded) == (1000, True)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id, amount=1)
    assert ei.value.code == "charge_already_refunded"
    listed = stripe.Refund.list(payment_intent=pi.id).data
    assert [r.status for r in reversed(listed)] == ["succeeded", "failed", "succeeded",
                                                    "succeeded"]
    got = about(all_delivered(base_url, receiver), pi.id)
    assert [(e["type"], e["data"]["object"].get("amount_refunded")) for e in got
            if e["type"] == "charge.refunded"] == [("charge.refunded", 200),
                                                  ("charge.refunded", 500),
                                                  ("charge.refunded", 500),
                                                  ("charge.refunded", 1000)]
    assert [e["type"] for e in got if e["type"].startswith("refund.")] == [
        "refund.created", "refund.created", "refund.updated", "refund.failed",
        "refund.created", "refund.created"]
    before = [e.id for e in events()]
    again = control(base_url, "POST", f"/_standin/refunds/{refunds[1].id}/fail", {})
    assert again == out  # already failed: answered unchanged, nothing emitted
    assert [e.id for e in events()] == before


def test_refund_fails_by_itself_after_the_delay():
    rec = Receiver()
    try:
        with run_standin("--refund-fail-after", "0.2") as url:
            stripe.api_base = url
            control(url, "POST", "/_standin/webhook", {"url": rec.url, "secret": WH_SECRET})
            pi = card_pi("pm_card_refundFail", amount=1000)
            started = time.monotonic()
            re1 = stripe.Refund.create(payment_intent=pi.id, amount=400)
            assert re1.status == "succeeded"
            failed_evt, = wait_until(lambda: events("refund.failed"), what="refund.failed")
            assert time.monotonic() - started >= 0.2
            assert failed_evt.data.object.id == re1.id
            failed = stripe.Refund.retrieve(re1.id)
            assert (failed.status, failed.failure_reason) == ("failed",
                                                              "expired_or_canceled_card")
            assert stripe.Charge.retrieve(pi.latest_charge).amount_refunded == 0
            assert control(url, "GET", "/_standin/refund_failures") == []
            got = about(all_delivered(url, rec), pi.id)  # delivered like any other event
            assert [(e["type"], e["data"]["object"].get("status")) for e in got[3:]] == [
                ("refund.created", "succeeded"), ("charge.refunded", "succeeded"),
                ("charge.refund.updated", "failed"), ("refund.updated", "failed"),
                ("refund.failed", "failed")]
            assert [(e["request"], e["api_version"]) for e in got[5:]] == \
                [({"id": None, "idempotency_key": None}, standin.DEFAULT_API_VERSION)] * 3
            # the timer won; the control route now answers the refund unchanged, emits nothing
            before = [e.id for e in events()]
            again = fail_refund(url, re1.id, {"failure_reason": "lost_or_stolen_card"})
            assert (again["status"], again["failure_reason"]) == ("failed",
                                                                  "expired_or_canceled_card")
            assert [e.id for e in events()] == before
    finally:
        rec.close()


def test_control_route_cancels_the_pending_failure():
    with run_standin(env={"STRIPE_STANDIN_REFUND_FAIL_AFTER": "1.0"}) as url:
        stripe.api_base = url
        pi = card_pi("pm_card_refundFail", amount=1000)
        t0 = time.time()
        re_a = stripe.Refund.create(payment_intent=pi.id, amount=400)
        t1 = time.time()
        pending = control(url, "GET", "/_standin/refund_failures")
        assert [p["refund"] for p in pending] == [re_a.id]
        assert t0 + 1.0 <= pending[0]["fails_at"] <= t1 + 1.0  # the env var's delay
        out = fail_refund(url, re_a.id, {"failure_reason": "lost_or_stolen_card"})
        assert (out["status"], out["failure_reason"]) == ("failed", "lost_or_stolen_card")
        assert control(url, "GET", "/_standin/refund_failures") == []  # timer cancelled
        # B's failure is due after A's would have been: once B failed, A's time has passed
        re_b = stripe.Refund.create(payment_intent=pi.id, amount=300)
        wait_until(lambda: any(e.data.object.id == re_b.id for e in events("refund.failed")),
                   what="the failure of the second refund")
        assert sorted((e.data.object.id, e.data.object.failure_reason)
                      for e in events("refund.failed")) == sorted(
            [(re_a.id, "lost_or_stolen_card"), (re_b.id, "expired_or_canceled_card")])
        assert len(failure_events()) == 6
        assert stripe.Refund.retrieve(re_a.id).failure_reason == "lost_or_stolen_card"
        # a reset cancels what is pending
        re_c = stripe.Refund.create(payment_intent=pi.id, amount=100)
        pending = control(url, "GET", "/_standin/refund_failures")
        assert [p["refund"] for p in pending] == [re_c.id]
        control(url, "POST", "/_standin/reset")
        assert control(url, "GET", "/_standin/refund_failures") == []


def test_refund_fail_after_option_parsing():
    assert standin.seconds_arg("0.25") == 0.25
    assert standin.seconds_arg("-1") == -1.0
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            standin.seconds_arg(bad)


# --------------------------------------------------------------------------- async-stripe shapes


class RecordingClient(type(stripe.new_default_http_client())):
    """The stripe library's HTTP client, keeping every response body."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.bodies: list[tuple[str, str, int, str]] = []

    def request(self, method, url, headers, post_data=None, *a, **kw):
        content, status, hdrs = super().request(method, url, headers, post_data, *a, **kw)
        self.bodies.append((method, url, status, content))
        return content, status, hdrs


def test_shapes_checker_catches_what_async_stripe_rejects():
    ok = {"id": "il_1", "object": "line_item", "amount": 1, "currency": "usd",
          "discountable": True, "discounts": [], "livemode": False, "metadata": {},
          "period": {"start": 1, "end": 2}, "subtotal": 1}
    assert shapes.check_tree(ok) == []
    no_subtotal = {k: v for k, v in ok.items() if k != "subtotal"}
    assert shapes.check_tree(no_subtotal) == [
        "$.subtotal: missing, required by InvoiceLineItem (i64)"]
    bad = dict(ok, period={"start": 1}, amount="1", discounts=None)
    assert sorted(shapes.check_tree(bad)) == [
        "$.amount: expected an integer (i64), got '1'",
        "$.discounts: missing, required by InvoiceLineItem (Vec<Expandable<Discount>>)",
        "$.period.end: missing, required by InvoiceLineItemPeriod (Timestamp)"]
    evt = {"id": "evt_1", "object": "event", "created": 1, "livemode": False,
           "pending_webhooks": 0, "type": "invoice.paid", "data": {"object": no_subtotal}}
    assert any("subtotal" in e for e in shapes.check_tree(evt))
    assert shapes.check_tree(dict(evt, type="no.such.event", data={"object": ok}))


def test_required_fields_json_matches_the_cargo_registry(tmp_path):
    """required_fields.json is what gen_required_fields.py extracts from async-stripe rc.10."""
    registry = os.path.expanduser("~/.cargo/registry/src")
    import glob
    if not glob.glob(os.path.join(registry, "*", "async-stripe-shared-1.0.0-rc.10")):
        pytest.skip("async-stripe rc.10 sources are not in the cargo registry")
    out = tmp_path / "required_fields.json"
    subprocess.run([sys.executable, os.path.join(HERE, "gen_required_fields.py"),
                    "--registry", registry, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(HERE, "required_fields.json"), encoding="utf-8") as f:
        assert json.loads(out.read_text()) == json.load(f)


def test_every_object_parses_as_async_stripe_rc10(base_url):
    """Run every lifecycle; every response body, error body and event (data.object
    included) must satisfy async-stripe rc.10's types (required_fields.json)."""
    rec = RecordingClient()
    stripe.default_http_client = rec
    try:
        _scenario(base_url)
    finally:
        stripe.default_http_client = None
    assert len(rec.bodies) > 40 and {b[2] for b in rec.bodies} >= {200, 400, 402}
    seen: set = set()
    problems = []
    for method, url, status, body in rec.bodies:
        parsed = json.loads(body)
        problems += shapes.check_tree(parsed.get("error", parsed), f"{method} {url} ({status})",
                                      seen)
    status, _, listing = raw(base_url, "GET", "/v1/events?limit=100")
    all_events = []
    while True:
        all_events += listing["data"]
        if not listing["has_more"]:
            break
        status, _, listing = raw(base_url, "GET", "/v1/events?limit=100&starting_after="
                                 + listing["data"][-1]["id"])
    for evt in all_events:
        problems += shapes.check_tree(evt, f"event {evt['type']}", seen)
    assert not problems, "\n".join(problems[:40])
    assert {"PaymentIntent", "Charge", "Refund", "Dispute", "BalanceTransaction", "Customer",
            "PaymentMethod", "Product", "Price", "Plan", "Subscription", "SubscriptionItem",
            "Invoice", "InvoiceLineItem", "TestHelpersTestClock", "Event",
            "DisputePaymentMethodDetailsCard", "PaymentMethodDetailsCard",
            "RefundDestinationDetails"} <= seen
    kinds = {e["type"] for e in all_events}
    assert {"charge.dispute.created", "charge.dispute.funds_withdrawn",
            "charge.dispute.updated", "charge.dispute.closed",
            "charge.dispute.funds_reinstated", "charge.refund.updated", "refund.failed",
            "refund.updated", "payment_method.attached", "payment_method.detached",
            "invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
            "invoice.payment_failed", "invoice.payment_action_required", "invoice.voided",
            "customer.subscription.created", "customer.subscription.updated",
            "customer.subscription.deleted"} <= kinds
    subs = {e["data"]["object"]["status"] for e in all_events
            if e["type"].startswith("customer.subscription.")}
    assert {"incomplete", "active", "past_due", "canceled", "incomplete_expired"} <= subs


def _scenario(base_url):
    card_pi("pm_card_visa")
    with pytest.raises(stripe.CardError):
        card_pi("pm_card_chargeDeclined")
    pi3 = card_pi("pm_card_authenticationRequired")
    control(base_url, "POST", f"/_standin/payment_intents/{pi3.id}/authenticate", {})
    manual = card_pi("pm_card_visa", capture_method="manual")
    stripe.PaymentIntent.capture(manual.id, amount_to_capture=500)
    for text in ("winning_evidence", "losing_evidence"):
        dp = stripe.Dispute.list(payment_intent=card_pi("pm_card_createDispute").id).data[0]
        stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": text})
    stripe.Dispute.close(stripe.Dispute.list(
        payment_intent=card_pi("pm_card_createDispute").id).data[0].id)
    inq = stripe.Dispute.list(payment_intent=card_pi("pm_card_createDisputeInquiry").id).data[0]
    control(base_url, "POST", f"/_standin/disputes/{inq.id}/escalate", {})
    inq2 = stripe.Dispute.list(payment_intent=card_pi("pm_card_createDisputeInquiry").id).data[0]
    control(base_url, "POST", f"/_standin/disputes/{inq2.id}/close", {})
    stripe.Dispute.list(limit=100)
    fail_pi = card_pi("pm_card_refundFail")
    fail_re = stripe.Refund.create(payment_intent=fail_pi.id, amount=300)
    assert stripe.Refund.retrieve(fail_re.id).status == "succeeded"  # fails later
    assert stripe.Charge.retrieve(fail_pi.latest_charge).amount_refunded == 300
    assert failure_events() == []
    assert control(base_url, "POST", f"/_standin/refunds/{fail_re.id}/fail",
                   {})["status"] == "failed"
    ok_pi = card_pi("pm_card_visa")
    stripe.Refund.create(payment_intent=ok_pi.id, amount=100)
    stripe.Refund.create(payment_intent=ok_pi.id)
    stripe.Refund.list(limit=100)
    clock = stripe.test_helpers.TestClock.create(frozen_time=_utc(2031, 1, 1))
    cus = stripe.Customer.create(test_clock=clock.id, payment_method="pm_card_visa",
                                 invoice_settings={"default_payment_method": "pm_card_visa"})
    extra = stripe.PaymentMethod.attach("pm_card_mastercard", customer=cus.id)
    stripe.Customer.list_payment_methods(cus.id)
    stripe.PaymentMethod.detach(extra.id)
    prod = stripe.Product.create(name="P")
    price = stripe.Price.create(currency="usd", unit_amount=900, product=prod.id,
                                recurring={"interval": "month"})
    sub = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}],
                                     metadata={"entity_id": "e-1"},
                                     expand=["latest_invoice.payment_intent.latest_charge"])
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2031, 2, 2))
    stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2031, 4, 2))
    # a declined first invoice left unpaid expires (invoice.voided); a 3-D Secure one waits
    declining = stripe.Customer.create(payment_method="pm_card_chargeDeclined",
                                       test_clock=clock.id,
                                       invoice_settings={"default_payment_method":
                                                         "pm_card_chargeDeclined"})
    stripe.Subscription.create(customer=declining.id, items=[{"price": price.id}])
    secure = stripe.Customer.create(payment_method="pm_card_authenticationRequired",
                                    invoice_settings={"default_payment_method":
                                                      "pm_card_authenticationRequired"})
    stripe.Subscription.create(customer=secure.id, items=[{"price": price.id}])
    # a renewal that declines: past_due, invoice.payment_failed
    renewing = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}])
    bad_card = stripe.PaymentMethod.attach("pm_card_chargeDeclinedInsufficientFunds",
                                           customer=cus.id)
    stripe.Subscription.modify(renewing.id, default_payment_method=bad_card.id)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2031, 5, 5))
    other = stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}])
    stripe.Subscription.cancel(other.id)
    stripe.Invoice.list(limit=100, expand=["data.payment_intent"])
    stripe.Subscription.list(status="all", limit=100)
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(customer=cus.id, items=[{"price": price.id}],
                                   default_payment_method="pm_card_visa")
    stripe.Customer.delete(declining.id)
