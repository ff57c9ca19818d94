"""Tests for the local Stripe stand-in, driven by the official `stripe` Python library.

Run:  python -m pytest tests/stripe_standin -q
The server is started on a free port as a subprocess and killed at the end.
"""

from __future__ import annotations

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
import server as standin  # noqa: E402  (pure helpers only: decode_form, add_period)

API_KEY = "sk_test_standin_tests"
WH_SECRET = "whsec_test_suite_secret"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def base_url():
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line_box: list[str] = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()),
                              daemon=True)
    reader.start()
    reader.join(timeout=15)
    if not line_box or not line_box[0].startswith("READY "):
        proc.kill()
        pytest.fail(f"stand-in did not print READY (got {line_box!r})")
    url = line_box[0].split()[1].strip()
    yield url
    proc.stdin.close()  # --exit-on-stdin-eof: the server exits on EOF
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("stand-in did not exit on stdin EOF")
    assert code == 0


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


# ------------------------------------------------- shapes async-stripe insists on
# Non-optional fields of async-stripe 1.0 (stripe_shared) structs: a missing one makes
# the Rust client (and Webhook::construct_event) fail to parse the object.

REQUIRED = {
    "payment_intent": ["amount", "amount_capturable", "amount_received", "capture_method",
                       "confirmation_method", "created", "currency", "id", "livemode",
                       "metadata", "payment_method_types", "status"],
    "charge": ["amount", "amount_captured", "amount_refunded", "billing_details", "captured",
               "created", "currency", "disputed", "id", "livemode", "metadata", "paid",
               "refunded", "status"],
    "refund": ["amount", "created", "currency", "id"],
    "dispute": ["amount", "balance_transactions", "charge", "created", "currency",
                "enhanced_eligibility_types", "evidence", "evidence_details", "id",
                "is_charge_refundable", "livemode", "metadata", "reason", "status"],
    "customer": ["created", "id", "livemode"],
    "product": ["active", "created", "id", "images", "livemode", "marketing_features",
                "metadata", "name", "type", "updated"],
    "price": ["active", "billing_scheme", "created", "currency", "id", "livemode", "metadata",
              "product", "type"],
    "plan": ["active", "billing_scheme", "created", "currency", "id", "interval",
             "interval_count", "livemode", "usage_type"],
    "subscription": ["automatic_tax", "billing_cycle_anchor", "billing_mode",
                     "cancel_at_period_end", "collection_method", "created", "currency",
                     "customer", "discounts", "id", "invoice_settings", "items", "livemode",
                     "metadata", "start_date", "status"],
    "subscription_item": ["created", "current_period_end", "current_period_start",
                          "discounts", "id", "metadata", "plan", "price", "subscription"],
    "invoice": ["amount_due", "amount_overpaid", "amount_paid", "amount_remaining",
                "amount_shipping", "attempt_count", "attempted", "automatic_tax",
                "collection_method", "created", "currency", "default_tax_rates", "discounts",
                "issuer", "lines", "livemode", "payment_settings", "period_end",
                "period_start", "post_payment_credit_notes_amount",
                "pre_payment_credit_notes_amount", "starting_balance", "status_transitions",
                "subtotal", "total"],
    "line_item": ["amount", "currency", "discountable", "discounts", "id", "livemode",
                  "metadata", "period"],
    "test_helpers.test_clock": ["created", "deletes_after", "frozen_time", "id", "livemode",
                                "status", "status_details"],
    "payment_method": ["billing_details", "created", "id", "livemode", "type"],
    "event": ["created", "data", "id", "livemode", "pending_webhooks", "type"],
    "list": ["data", "has_more", "url"],
}
NESTED = {
    "subscription": {"automatic_tax": ["enabled"], "billing_mode": ["type"],
                     "invoice_settings": ["issuer"]},
    "invoice": {"automatic_tax": ["enabled"], "issuer": ["type"]},
    "dispute": {"evidence": ["enhanced_evidence"],
                "evidence_details": ["enhanced_eligibility", "has_evidence", "past_due",
                                     "submission_count"]},
    "price": {"recurring": ["interval", "interval_count", "usage_type"]},
    "line_item": {"period": ["start", "end"]},
    "payment_method": {"card": ["brand", "exp_month", "exp_year", "funding", "last4"]},
}


def assert_shape(node, where="$", seen=None):
    seen = seen if seen is not None else set()
    if isinstance(node, list):
        for i, v in enumerate(node):
            assert_shape(v, f"{where}[{i}]", seen)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("object")
    if isinstance(kind, str) and kind in REQUIRED:
        seen.add(kind)
        for f in REQUIRED[kind]:
            assert node.get(f) is not None, f"{where}: {kind}.{f} missing/null"
        for f, subs in NESTED.get(kind, {}).items():
            if node.get(f) is not None:
                for sf in subs:
                    assert node[f].get(sf) is not None, f"{where}: {kind}.{f}.{sf} missing"
    for k, v in node.items():
        assert_shape(v, f"{where}.{k}", seen)


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
    assert body["payment_method"]["id"] == "pm_card_chargeDeclined"
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
    assert dp.status == outcome
    assert dp.evidence.uncategorized_text == text
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
    sub = stripe.Subscription.create(
        customer=cus.id, default_payment_method="pm_card_visa",
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
    cus = stripe.Customer.create(invoice_settings={"default_payment_method": "pm_card_visa"})
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
    sub = stripe.Subscription.create(
        customer=cus.id, default_payment_method="pm_card_chargeDeclined",
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


def test_objects_carry_fields_async_stripe_requires(base_url):
    """Every object we emit parses under async-stripe's strict (non-optional) fields."""
    seen: set = set()
    card_pi("pm_card_visa")
    pi = card_pi("pm_card_createDispute")
    stripe.Refund.create(payment_intent=card_pi("pm_card_visa").id, amount=100)
    with pytest.raises(stripe.CardError) as ei:
        card_pi("pm_card_chargeDeclined")
    assert_shape(ei.value.json_body["error"]["payment_intent"], "decline.pi", seen)
    assert_shape(ei.value.json_body["error"]["payment_method"], "decline.pm", seen)
    dp = stripe.Dispute.list(payment_intent=pi.id).data[0]
    stripe.Dispute.modify(dp.id, evidence={"uncategorized_text": "winning_evidence"})
    clock = stripe.test_helpers.TestClock.create(frozen_time=_utc(2031, 1, 1))
    cus = stripe.Customer.create(test_clock=clock.id)
    prod = stripe.Product.create(name="P")
    price = stripe.Price.create(currency="usd", unit_amount=900, product=prod.id,
                                recurring={"interval": "month"})
    sub = stripe.Subscription.create(customer=cus.id, default_payment_method="pm_card_visa",
                                     items=[{"price": price.id}],
                                     expand=["latest_invoice.payment_intent.latest_charge"])
    assert_shape(sub.to_dict_recursive() if hasattr(sub, "to_dict_recursive")
                 else sub.to_dict(), "sub", seen)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=_utc(2031, 2, 2))
    stripe.Subscription.cancel(sub.id)
    status, _, listing = raw(base_url, "GET", "/v1/events?limit=100")
    assert status == 200
    assert_shape(listing, "events", seen)
    assert {"payment_intent", "charge", "refund", "dispute", "customer", "product", "price",
            "plan", "subscription", "subscription_item", "invoice", "line_item",
            "test_helpers.test_clock", "payment_method", "event", "list"} <= seen
