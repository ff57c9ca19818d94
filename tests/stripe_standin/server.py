#!/usr/bin/env python3
"""Local Stripe stand-in: a small HTTP server that speaks Stripe's wire format.

It replaces https://api.stripe.com in local runs and tests (point a Stripe client's
API base at ``http://127.0.0.1:<port>``). Standard library only (Python 3.11+).

See README.md next to this file for the supported endpoints, the test payment
methods, test clocks (``clock_default``) and the ``/_standin/*`` control routes.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import collections
import copy
import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import string
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_PORT = 12111
DEFAULT_WEBHOOK_SECRET = "whsec_standin_local_secret"
# async-stripe 1.0.0-rc.10 is generated for (and sends `Stripe-Version:`) 2026-09-30.endive
DEFAULT_API_VERSION = "2026-09-30.endive"
# pm_card_refundFail: seconds between a refund reading `succeeded` and its failure.
DEFAULT_REFUND_FAIL_AFTER = 2.0
ALNUM = string.ascii_letters + string.digits
API_KEY_RE = re.compile(r"^(sk|pk|rk)_test_[A-Za-z0-9_]+$")

# Minimum charge amounts (smallest currency unit); anything else defaults to 50.
MIN_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50,
               "jpy": 50, "nzd": 50, "sek": 300, "nok": 300, "dkk": 250, "mxn": 1000}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "xof", "xaf", "pyg", "ugx", "bif", "djf",
                "gnf", "kmf", "mga", "rwf", "vuv", "xpf"}


def log(msg: str) -> None:
    sys.stderr.write(f"[stripe-standin] {msg}\n")
    sys.stderr.flush()


def now() -> int:
    return int(time.time())


def rand_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(n))


def add_period(anchor: int, interval: str, count: int, k: int) -> int:
    """Timestamp of ``anchor`` plus ``k * count`` intervals (calendar aware, day clamped)."""
    if interval == "day":
        return anchor + k * count * 86400
    if interval == "week":
        return anchor + k * count * 7 * 86400
    months = k * count * (12 if interval == "year" else 1)
    d = _dt.datetime.fromtimestamp(anchor, _dt.timezone.utc)
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


# --------------------------------------------------------------------------- errors


class StripeErr(Exception):
    """An error answered with Stripe's error object."""

    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, extra: dict | None = None, commit: bool = False):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        # commit=True: state changes and events of the request are kept (e.g. a card
        # decline: the PaymentIntent and the failed charge exist afterwards).
        self.commit = commit

    def body(self, req_id: str | None) -> dict:
        err: dict = {}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        err["message"] = self.message
        if self.param:
            err["param"] = self.param
        if req_id:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{req_id}"
        err.update(self.extra)
        err["type"] = self.type
        return {"error": err}


def invalid(message: str, *, param: str | None = None, code: str | None = None,
            status: int = 400) -> StripeErr:
    return StripeErr(status, "invalid_request_error", message, code=code, param=param)


def missing_param(param: str) -> StripeErr:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, id_: str, param: str = "id", status: int = 404) -> StripeErr:
    return invalid(f"No such {kind}: '{id_}'", param=param, code="resource_missing", status=status)


# ------------------------------------------------------------------ form decoding


_SEG_RE = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key: str) -> list[str]:
    i = key.find("[")
    if i <= 0:
        return [key]
    segs = [key[:i]]
    rest = key[i:]
    pos = 0
    for m in _SEG_RE.finditer(rest):
        if m.start() != pos:
            return [key]  # malformed; treat literally
        segs.append(m.group(1))
        pos = m.end()
    if pos != len(rest):
        return [key]
    return segs


def _listify(node):
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    return node


def decode_form(text: str) -> dict:
    """Decode Stripe's bracket notation into nested dicts/lists (leaf values stay strings)."""
    root: dict = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        segs = _split_key(key)
        cur = root
        for i, seg in enumerate(segs):
            last = i == len(segs) - 1
            if seg == "":  # "a[]" -> append
                seg = str(sum(1 for k in cur if k.isdigit()))
            if last:
                cur[seg] = value
            else:
                nxt = cur.get(seg)
                if not isinstance(nxt, dict):
                    nxt = {}
                    cur[seg] = nxt
                cur = nxt
    return _listify(root)


# ------------------------------------------------------------------ param helpers


def p_int(params: dict, name: str, *, required: bool = False, default=None, minimum=None):
    if name not in params or params[name] in (None, ""):
        if required:
            raise missing_param(name)
        return default
    raw = params[name]
    try:
        if isinstance(raw, bool):
            raise ValueError
        val = int(str(raw))
    except ValueError:
        raise invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")
    if minimum is not None and val < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=name)
    return val


def p_bool(params: dict, name: str, default=None):
    if name not in params or params[name] in (None, ""):
        return default
    raw = params[name]
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() == "true":
        return True
    if str(raw).lower() == "false":
        return False
    raise invalid(f"Invalid boolean: {raw}", param=name)


def p_str(params: dict, name: str, *, required: bool = False, default=None):
    if name not in params or params[name] is None:
        if required:
            raise missing_param(name)
        return default
    raw = params[name]
    if not isinstance(raw, str):
        raise invalid(f"Invalid string: {json.dumps(raw)}", param=name)
    if raw == "" and required:
        raise invalid(f"You passed an empty string for '{name}'. We assume empty values are an "
                      f"attempt to unset a parameter; however '{name}' cannot be unset. You "
                      f"should remove '{name}' from your request or supply a non-empty value.",
                      param=name, code="parameter_invalid_empty")
    return raw


def p_currency(params: dict, name: str = "currency", *, required: bool = True):
    cur = p_str(params, name, required=required)
    if cur is None:
        return None
    cur = cur.lower()
    if not re.fullmatch(r"[a-z]{3}", cur):
        raise invalid(f"Invalid currency: {cur}. Stripe currently supports these currencies: "
                      "usd, eur, gbp, ... (3-letter ISO codes)", param=name)
    return cur


def apply_metadata(target: dict, raw, param: str = "metadata") -> None:
    """Stripe metadata semantics: merge; '' value deletes a key; metadata='' clears all."""
    if raw is None:
        return
    if raw == "":
        target.clear()
        return
    if isinstance(raw, list):
        raw = {str(i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict):
        raise invalid("Invalid hash", param=param)
    for k, v in raw.items():
        if not isinstance(v, str):
            raise invalid("Metadata values must be strings", param=f"{param}[{k}]")
        if v == "":
            target.pop(k, None)
        else:
            if len(k) > 40:
                raise invalid("Metadata keys can have up to 40 characters", param=f"{param}[{k}]")
            if len(v) > 500:
                raise invalid("Metadata values can have up to 500 characters",
                              param=f"{param}[{k}]")
            target[k] = v
    if len(target) > 50:
        raise invalid("Metadata can have up to 50 keys", param=param)


def expand_list(params: dict) -> list[str]:
    raw = params.pop("expand", None)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, dict):
        return [v for v in raw.values() if isinstance(v, str)]
    return [v for v in raw if isinstance(v, str)]


# ------------------------------------------------------------------ test payment methods

# behaviour: succeed | decline | 3ds | dispute | inquiry | refund_fail
# These ids are Stripe's test tokens: using one creates a fresh `pm_...` clone (see
# Api._use_pm), as Stripe does; the token objects themselves stay retrievable.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": dict(brand="visa", last4="4242", funding="credit", behavior="succeed"),
    "pm_card_visa_debit": dict(brand="visa", last4="5556", funding="debit", behavior="succeed"),
    "pm_card_mastercard": dict(brand="mastercard", last4="4444", funding="credit",
                               behavior="succeed"),
    "pm_card_amex": dict(brand="amex", last4="8431", funding="credit", behavior="succeed"),
    "pm_card_chargeDeclined": dict(brand="visa", last4="0002", funding="credit",
                                   behavior="decline", decline_code="generic_decline",
                                   message="Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": dict(
        brand="visa", last4="9995", funding="credit", behavior="decline",
        decline_code="insufficient_funds", message="Your card has insufficient funds."),
    "pm_card_authenticationRequired": dict(brand="visa", last4="3184", funding="credit",
                                           behavior="3ds"),
    "pm_card_createDispute": dict(brand="visa", last4="0259", funding="credit",
                                  behavior="dispute"),
    "pm_card_createDisputeInquiry": dict(brand="visa", last4="1976", funding="credit",
                                         behavior="inquiry"),
    "pm_card_refundFail": dict(brand="visa", last4="5126", funding="credit",
                               behavior="refund_fail"),
}

# A chargeback costs the dispute fee on top of the disputed amount (Stripe: 15.00 USD).
DISPUTE_FEE = 1500
DISPUTE_OPEN = ("warning_needs_response", "warning_under_review", "needs_response",
                "under_review")
DISPUTE_CLOSED = ("won", "lost", "warning_closed")


# ------------------------------------------------------------------ request context


class Ctx:
    """Per-request context: request id, idempotency key, pending events."""

    def __init__(self, state: "State", req_id: str | None, idem_key: str | None,
                 api_version: str):
        self.state = state
        self.req_id = req_id
        self.idem_key = idem_key
        self.api_version = api_version
        self.pending: list[dict] = []

    def emit(self, type_: str, obj: dict, previous_attributes: dict | None = None) -> dict:
        evt = {
            "id": rand_id("evt_"),
            "object": "event",
            "account": None,
            "api_version": self.api_version,
            "context": None,
            "created": now(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": self.req_id, "idempotency_key": self.idem_key},
            "type": type_,
        }
        if previous_attributes is not None:
            evt["data"]["previous_attributes"] = copy.deepcopy(previous_attributes)
        self.pending.append(evt)
        return evt


# ------------------------------------------------------------------ state


class State:
    def __init__(self, api_version: str):
        self.lock = threading.RLock()
        self.default_api_version = api_version
        self.webhook_url: str | None = None
        self.webhook_secret: str = DEFAULT_WEBHOOK_SECRET
        self.deliverer: "Deliverer | None" = None
        self.refund_fail_after: float = DEFAULT_REFUND_FAIL_AFTER  # < 0: never by itself
        self.reset()

    def reset(self) -> None:
        with self.lock:
            for timer in getattr(self, "refund_timers", {}).values():
                timer.cancel()
            self.refund_timers: dict[str, threading.Timer] = {}  # refund id -> pending failure
            self.objects: dict[str, dict] = {}
            self.order: dict[str, int] = {}
            self.seq = 0
            self.events: list[str] = []          # event ids, oldest first
            self.requests: list[dict] = []
            self.deliveries: list[dict] = []
            self.idem: dict[tuple, dict] = {}
            self.faults: dict = {"status": None, "count": 0}
            self.pm_behavior: dict[str, dict] = {}
            self.pi_invoice: dict[str, str] = {}  # payment_intent id -> invoice id
            self.sub_meta: dict[str, dict] = {}
            self.invoice_seq: dict[str, int] = {}
            for pm_id, spec in TEST_PAYMENT_METHODS.items():
                self.put(self.build_payment_method(pm_id, spec))
                self.pm_behavior[pm_id] = spec
            t = now()
            self.put({
                "id": "clock_default", "object": "test_helpers.test_clock", "created": t,
                "deletes_after": t + 30 * 86400, "frozen_time": t, "livemode": False,
                "name": "clock_default (stand-in)", "status": "ready", "status_details": {},
            })
            if self.deliverer:
                self.deliverer.clear()

    # -- storage helpers
    def put(self, obj: dict) -> dict:
        if obj["id"] not in self.order:
            self.seq += 1
            self.order[obj["id"]] = self.seq
        self.objects[obj["id"]] = obj
        return obj

    def get(self, id_: str, kind: str | None = None) -> dict | None:
        obj = self.objects.get(id_) if isinstance(id_, str) else None
        if obj is None or obj.get("deleted") or (kind and obj.get("object") != kind):
            return None
        return obj

    def must(self, id_: str, kind: str, label: str | None = None, param: str = "id",
             status: int = 404) -> dict:
        obj = self.get(id_, kind)
        if obj is None:
            raise no_such(label or kind, id_, param=param, status=status)
        return obj

    def list_of(self, kind: str, pred=None) -> list[dict]:
        items = [o for o in self.objects.values() if o.get("object") == kind
                 and (pred is None or pred(o))]
        items.sort(key=lambda o: self.order[o["id"]], reverse=True)
        return items

    def commit_events(self, ctx: Ctx) -> None:
        for evt in ctx.pending:
            if self.webhook_url:
                evt["pending_webhooks"] = 1
            self.put(evt)
            self.events.append(evt["id"])
            if self.webhook_url and self.deliverer:
                self.deliverer.enqueue(evt["id"], resend=False)
        ctx.pending.clear()

    # -- rendering
    def render(self, obj: dict, expand: list[str]) -> dict:
        out = copy.deepcopy(obj)
        for path in expand:
            out = self._expand(out, path.split("."), path)
        return out

    def _expand(self, node, segs: list[str], full: str):
        if not segs or not isinstance(node, dict):
            return node
        key, rest = segs[0], segs[1:]
        if node.get("object") == "list" and key == "data":
            node["data"] = [self._expand(item, rest, full) for item in node.get("data", [])]
            return node
        if key not in node:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        val = node[key]
        if isinstance(val, str):
            target = self.objects.get(val)
            if target is None:
                return node
            val = copy.deepcopy(target)
        if isinstance(val, dict):
            node[key] = self._expand(val, rest, full)
        elif isinstance(val, list):
            node[key] = [self._expand(copy.deepcopy(self.objects[v]) if isinstance(v, str)
                                      and v in self.objects else v, rest, full) for v in val]
        return node

    # -- object builders
    @staticmethod
    def build_payment_method(pm_id: str, spec: dict) -> dict:
        return {
            "id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {"city": None, "country": None, "line1": None, "line2": None,
                            "postal_code": None, "state": None},
                "email": None, "name": None, "phone": None, "tax_id": None,
            },
            "card": {
                "brand": spec["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None,
                           "cvc_check": "pass"},
                "country": "US", "display_brand": spec["brand"], "exp_month": 12,
                "exp_year": _dt.date.today().year + 3,
                "fingerprint": hashlib.sha256(pm_id.encode()).hexdigest()[:16],
                "funding": spec["funding"], "generated_from": None, "last4": spec["last4"],
                "networks": {"available": [spec["brand"]], "preferred": None},
                "regulated_status": "unregulated",
                "three_d_secure_usage": {"supported": True}, "wallet": None,
            },
            "created": now(), "customer": None, "livemode": False, "metadata": {},
            "radar_options": None, "type": "card",
        }

    def clock_time(self, customer_id: str | None) -> int:
        cus = self.get(customer_id, "customer") if customer_id else None
        if cus and cus.get("test_clock"):
            clock = self.get(cus["test_clock"], "test_helpers.test_clock")
            if clock:
                return clock["frozen_time"]
        return now()


# ------------------------------------------------------------------ the API


class Api:
    """All Stripe endpoints. Every method runs with the state lock held."""

    def __init__(self, state: State):
        self.s = state
        R = []

        def route(method, pattern, fn):
            R.append((method, re.compile("^" + pattern + "$"), fn))

        ID = r"([A-Za-z0-9_\-]+)"
        route("POST", "/v1/payment_intents", self.pi_create)
        route("GET", "/v1/payment_intents", self.pi_list)
        route("GET", f"/v1/payment_intents/{ID}", self.pi_get)
        route("POST", f"/v1/payment_intents/{ID}", self.pi_update)
        route("POST", f"/v1/payment_intents/{ID}/confirm", self.pi_confirm)
        route("POST", f"/v1/payment_intents/{ID}/cancel", self.pi_cancel)
        route("POST", f"/v1/payment_intents/{ID}/capture", self.pi_capture)
        route("GET", "/v1/charges", self.charge_list)
        route("GET", f"/v1/charges/{ID}", self.charge_get)
        route("GET", "/v1/payment_methods", self.pm_list)
        route("GET", f"/v1/payment_methods/{ID}", self.pm_get)
        route("POST", f"/v1/payment_methods/{ID}/attach", self.pm_attach)
        route("POST", f"/v1/payment_methods/{ID}/detach", self.pm_detach)
        route("GET", f"/v1/customers/{ID}/payment_methods", self.customer_pm_list)
        route("POST", "/v1/refunds", self.refund_create)
        route("GET", "/v1/refunds", self.refund_list)
        route("GET", f"/v1/refunds/{ID}", self.refund_get)
        route("GET", "/v1/disputes", self.dispute_list)
        route("GET", f"/v1/disputes/{ID}", self.dispute_get)
        route("POST", f"/v1/disputes/{ID}", self.dispute_update)
        route("POST", f"/v1/disputes/{ID}/close", self.dispute_close)
        route("POST", "/v1/customers", self.customer_create)
        route("GET", "/v1/customers", self.customer_list)
        route("GET", f"/v1/customers/{ID}", self.customer_get)
        route("POST", f"/v1/customers/{ID}", self.customer_update)
        route("DELETE", f"/v1/customers/{ID}", self.customer_delete)
        route("POST", "/v1/products", self.product_create)
        route("GET", f"/v1/products/{ID}", self.product_get)
        route("POST", "/v1/prices", self.price_create)
        route("GET", f"/v1/prices/{ID}", self.price_get)
        route("POST", "/v1/subscriptions", self.sub_create)
        route("GET", "/v1/subscriptions", self.sub_list)
        route("GET", f"/v1/subscriptions/{ID}", self.sub_get)
        route("POST", f"/v1/subscriptions/{ID}", self.sub_update)
        route("DELETE", f"/v1/subscriptions/{ID}", self.sub_cancel)
        route("GET", "/v1/invoices", self.invoice_list)
        route("GET", f"/v1/invoices/{ID}", self.invoice_get)
        route("POST", "/v1/test_helpers/test_clocks", self.clock_create)
        route("GET", "/v1/test_helpers/test_clocks", self.clock_list)
        route("GET", f"/v1/test_helpers/test_clocks/{ID}", self.clock_get)
        route("POST", f"/v1/test_helpers/test_clocks/{ID}/advance", self.clock_advance)
        route("GET", "/v1/events", self.event_list)
        route("GET", f"/v1/events/{ID}", self.event_get)
        self.routes = R

    def dispatch(self, method: str, path: str, ctx: Ctx, params: dict):
        path_known = False
        for m, rx, fn in self.routes:
            mt = rx.match(path)
            if mt:
                path_known = True
                if m == method:
                    return fn(ctx, params, *mt.groups())
        if path_known or path.startswith("/v1/"):
            raise invalid(f"Unrecognized request URL ({method}: {path}). Please see "
                          "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                          status=404)
        raise invalid(f"Unrecognized request URL ({method}: {path}).", status=404)

    # ---------------------------------------------------------------- lists
    def paginate(self, items: list[dict], params: dict, url: str, expand: list[str]):
        limit = p_int(params, "limit", default=10)
        if limit < 1 or limit > 100:
            raise invalid("This value must be between 1 and 100 (it currently is "
                          f"{limit}).", param="limit")
        after = p_str(params, "starting_after")
        before = p_str(params, "ending_before")
        ids = [o["id"] for o in items]
        if after:
            if after not in ids:
                raise invalid(f"No such object: '{after}'", param="starting_after",
                              code="resource_missing")
            i = ids.index(after)
            window = items[i + 1:i + 1 + limit]
            has_more = len(items) > i + 1 + limit
        elif before:
            if before not in ids:
                raise invalid(f"No such object: '{before}'", param="ending_before",
                              code="resource_missing")
            i = ids.index(before)
            start = max(0, i - limit)
            window = items[start:i]
            has_more = start > 0
        else:
            window = items[:limit]
            has_more = len(items) > limit
        data_expand = [e[len("data."):] for e in expand if e.startswith("data.")]
        return 200, {"object": "list",
                     "data": [self.s.render(o, data_expand) for o in window],
                     "has_more": has_more, "url": url}

    # ---------------------------------------------------------------- payment intents
    def _pi_obj(self, pi_id: str, param: str = "intent") -> dict:
        return self.s.must(pi_id, "payment_intent", "payment_intent", param=param)

    # ---------------------------------------------------------------- payment methods
    # Stripe's test payment methods (`pm_card_visa`, ...) are tokens: every request that
    # uses one creates a fresh PaymentMethod `pm_...` with the same card ("a clone"), and
    # that clone is what gets attached to a customer, stored on an intent, charged. Only a
    # PaymentMethod attached to a customer can be that customer's (or its subscriptions')
    # default payment method.

    @staticmethod
    def _is_token(pm_id: str | None) -> bool:
        return bool(pm_id) and pm_id in TEST_PAYMENT_METHODS

    def _pm_obj(self, pm_id: str, param: str = "payment_method") -> dict:
        """An existing PaymentMethod (a token's own object included), no cloning."""
        pm = self.s.get(pm_id, "payment_method")
        if pm is None:
            raise no_such("PaymentMethod", pm_id, param=param, status=400)
        return pm

    def _clone_pm(self, token: str) -> dict:
        spec = TEST_PAYMENT_METHODS[token]
        pm = self.s.build_payment_method("pm_1" + rand_id("", 23), spec)
        pm["card"]["fingerprint"] = hashlib.sha256(token.encode()).hexdigest()[:16]
        self.s.pm_behavior[pm["id"]] = spec
        return self.s.put(pm)

    def _check_pm_usable(self, pm_id: str, customer: str | None,
                         param: str = "payment_method") -> None:
        """Validate a payment_method for a PaymentIntent (no side effects)."""
        if self._is_token(pm_id):
            return
        pm = self._pm_obj(pm_id, param)
        if pm.get("customer") and pm["customer"] != customer:
            raise invalid(f"The PaymentMethod {pm_id} belongs to the Customer "
                          f"{pm['customer']}. Please include the Customer in the `customer` "
                          "parameter on the PaymentIntent.", param=param)

    def _use_pm(self, pm_id: str, customer: str | None, param: str = "payment_method") -> dict:
        """The PaymentMethod a PaymentIntent uses: a token becomes a fresh clone."""
        self._check_pm_usable(pm_id, customer, param)
        if self._is_token(pm_id):
            return self._clone_pm(pm_id)
        return self._pm_obj(pm_id, param)

    def _attached_pm(self, pm_id: str, cus_id: str, param: str) -> dict:
        """A PaymentMethod that must already be attached to `cus_id` (default payment method
        of a customer or subscription). A token is not: Stripe clones it into a new,
        unattached PaymentMethod and refuses, naming that clone."""
        if self._is_token(pm_id):
            pm = self._clone_pm(pm_id)
        else:
            pm = self._pm_obj(pm_id, param)
            if pm.get("customer") == cus_id:
                return pm
        raise invalid(f"The customer does not have a payment method with the ID {pm['id']}. "
                      "The payment method must be attached to the customer.",
                      param=param, code="resource_missing")

    def _attachable_pm(self, pm_id: str, cus_id: str | None, param: str) -> dict | None:
        """Validate a payment method about to be attached to `cus_id` (no side effects).
        Returns the existing PaymentMethod, or None for a token (cloned on attach)."""
        if self._is_token(pm_id):
            return None
        pm = self._pm_obj(pm_id, param)
        if pm["id"] in TEST_PAYMENT_METHODS:
            return None
        if pm.get("customer") and pm["customer"] != cus_id:
            raise invalid("The payment method you provided has already been attached to a "
                          "customer.", param=param)
        return pm

    def _attach(self, ctx: Ctx, pm_id: str, cus_id: str, param: str = "payment_method") -> dict:
        existing = self._attachable_pm(pm_id, cus_id, param)
        pm = existing if existing is not None else self._clone_pm(pm_id)
        if pm.get("customer") == cus_id:
            return pm
        pm["customer"] = cus_id
        ctx.emit("payment_method.attached", pm)
        return pm

    def pm_attach(self, ctx: Ctx, params: dict, pm_id: str):
        expand = expand_list(params)
        cus_id = p_str(params, "customer", required=True)
        cus = self.s.must(cus_id, "customer", "customer", param="customer", status=400)
        pm = self._attach(ctx, pm_id, cus["id"], param="payment_method")
        return 200, self.s.render(pm, expand)

    def pm_detach(self, ctx: Ctx, params: dict, pm_id: str):
        expand = expand_list(params)
        pm = self.s.must(pm_id, "payment_method", "PaymentMethod", param="payment_method")
        if not pm.get("customer"):
            raise invalid("The payment method you provided is not attached to a customer so "
                          "detachment is impossible.", param="payment_method")
        cus = self.s.get(pm["customer"], "customer")
        pm["customer"] = None
        if cus and cus["invoice_settings"].get("default_payment_method") == pm_id:
            previous = {"invoice_settings": copy.deepcopy(cus["invoice_settings"])}
            cus["invoice_settings"]["default_payment_method"] = None
            ctx.emit("customer.updated", cus, previous)
        ctx.emit("payment_method.detached", pm, {"customer": cus["id"] if cus else None})
        return 200, self.s.render(pm, expand)

    def _pm_listing(self, params: dict, cus_id: str | None, url: str):
        expand = expand_list(params)
        type_ = p_str(params, "type")
        items = self.s.list_of("payment_method", lambda o: o["id"] not in TEST_PAYMENT_METHODS
                               and (not cus_id or o.get("customer") == cus_id)
                               and (not type_ or o["type"] == type_))
        return self.paginate(items, params, url, expand)

    def pm_list(self, ctx: Ctx, params: dict):
        cus_id = p_str(params, "customer")
        if cus_id:
            self.s.must(cus_id, "customer", "customer", param="customer", status=400)
        return self._pm_listing(params, cus_id, "/v1/payment_methods")

    def customer_pm_list(self, ctx: Ctx, params: dict, cus_id: str):
        self.s.must(cus_id, "customer", "customer")
        return self._pm_listing(params, cus_id, f"/v1/customers/{cus_id}/payment_methods")

    def pi_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        amount = p_int(params, "amount", required=True, minimum=1)
        currency = p_currency(params)
        minimum = MIN_AMOUNTS.get(currency, 50)
        if amount < minimum:
            shown = (f"{minimum}" if currency in ZERO_DECIMAL else f"${minimum / 100:.2f}")
            raise invalid(f"Amount must be at least {shown} {currency}", param="amount",
                          code="amount_too_small")
        customer = p_str(params, "customer")
        if customer:
            self.s.must(customer, "customer", "customer", param="customer", status=400)
        pm_id = p_str(params, "payment_method")
        if pm_id:
            self._check_pm_usable(pm_id, customer or None)
        confirm = p_bool(params, "confirm", default=False)
        pmt = params.get("payment_method_types")
        apm = params.get("automatic_payment_methods")
        if pmt not in (None, "") and apm not in (None, ""):
            raise invalid("You may only specify one of these parameters: "
                          "automatic_payment_methods, payment_method_types.",
                          param="automatic_payment_methods")
        if pmt not in (None, ""):
            if isinstance(pmt, str):
                pmt = [pmt]
            if not isinstance(pmt, list) or not all(isinstance(x, str) for x in pmt):
                raise invalid("Invalid array", param="payment_method_types")
            apm_obj = None
        else:
            pmt = ["card"]
            if isinstance(apm, dict):
                enabled = p_bool(apm, "enabled", default=None)
                if enabled is None:
                    raise missing_param("automatic_payment_methods[enabled]")
                allow = p_str(apm, "allow_redirects", default="always")
                if allow not in ("always", "never"):
                    raise invalid("Invalid automatic_payment_methods[allow_redirects]: must be "
                                  "one of always or never",
                                  param="automatic_payment_methods[allow_redirects]")
                apm_obj = {"allow_redirects": allow, "enabled": True} if enabled else None
            else:
                # API versions >= 2023-08-16 enable automatic payment methods by default.
                apm_obj = {"allow_redirects": "always", "enabled": True}
        capture_method = p_str(params, "capture_method", default="automatic")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid("Invalid capture_method", param="capture_method")
        setup_future_usage = p_str(params, "setup_future_usage")
        if setup_future_usage not in (None, "", "on_session", "off_session"):
            raise invalid("Invalid setup_future_usage", param="setup_future_usage")
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        pi_id = rand_id("pi_")
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_details": None, "amount_received": 0,
            "application": None, "application_fee_amount": None,
            "automatic_payment_methods": apm_obj, "canceled_at": None,
            "cancellation_reason": None, "capture_method": capture_method,
            "client_secret": f"{pi_id}_secret_{rand_id('', 25)}",
            "confirmation_method": p_str(params, "confirmation_method", default="automatic"),
            "created": now(), "currency": currency, "customer": customer or None,
            "description": p_str(params, "description"),
            "excluded_payment_method_types": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "metadata": metadata,
            "next_action": None, "on_behalf_of": None, "payment_method": pm_id or None,
            "payment_method_configuration_details": None, "payment_method_options": None,
            "payment_method_types": pmt, "processing": None,
            "receipt_email": p_str(params, "receipt_email") or None, "review": None,
            "setup_future_usage": setup_future_usage or None,
            "shipping": params.get("shipping") if isinstance(params.get("shipping"), dict)
            else None,
            "source": None, "statement_descriptor": p_str(params, "statement_descriptor"),
            "statement_descriptor_suffix": p_str(params, "statement_descriptor_suffix"),
            "status": "requires_payment_method", "transfer_data": None,
            "transfer_group": p_str(params, "transfer_group"),
        }
        if pm_id:
            pi["status"] = "requires_confirmation"
        if confirm:
            # validate confirmation preconditions before storing anything
            self._precheck_confirm(pi, params)
        if pm_id:
            pi["payment_method"] = self._use_pm(pm_id, pi["customer"])["id"]
        self.s.put(pi)
        ctx.emit("payment_intent.created", pi)
        if confirm:
            self._confirm(ctx, pi, params)
        return 200, self.s.render(pi, expand)

    def pi_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        cus = p_str(params, "customer")
        items = self.s.list_of("payment_intent", (lambda o: o["customer"] == cus) if cus else None)
        return self.paginate(items, params, "/v1/payment_intents", expand)

    def pi_get(self, ctx: Ctx, params: dict, pi_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self._pi_obj(pi_id), expand)

    def pi_update(self, ctx: Ctx, params: dict, pi_id: str):
        expand = expand_list(params)
        pi = self._pi_obj(pi_id)
        if pi["status"] not in ("requires_payment_method", "requires_confirmation",
                                "requires_action"):
            raise invalid("You cannot update this PaymentIntent because it has a status of "
                          f"{pi['status']}. Updates are only allowed when the PaymentIntent has "
                          "a status of requires_payment_method, requires_confirmation, or "
                          "requires_action.", code="payment_intent_unexpected_state")
        amount = p_int(params, "amount", minimum=1)
        currency = p_currency(params, required=False)
        customer = p_str(params, "customer")
        if customer:
            self.s.must(customer, "customer", "customer", param="customer", status=400)
        pm_id = p_str(params, "payment_method")
        if pm_id:
            self._check_pm_usable(pm_id, customer or pi["customer"])
        md = copy.deepcopy(pi["metadata"])
        apply_metadata(md, params.get("metadata"))
        previous = {}

        def setf(key, val):
            if pi[key] != val:
                previous[key] = pi[key]
                pi[key] = val

        if amount is not None:
            setf("amount", amount)
        if currency:
            setf("currency", currency)
        if customer:
            setf("customer", customer)
        for key in ("description", "receipt_email", "statement_descriptor",
                    "statement_descriptor_suffix", "setup_future_usage", "transfer_group"):
            if key in params:
                setf(key, p_str(params, key) or None)
        setf("metadata", md)
        if pm_id:
            setf("payment_method", self._use_pm(pm_id, pi["customer"])["id"])
            if pi["status"] in ("requires_payment_method", "requires_action"):
                setf("status", "requires_confirmation")
                setf("next_action", None)
        if pi["last_payment_error"] is not None and previous:
            setf("last_payment_error", None)
        return 200, self.s.render(pi, expand)

    def pi_confirm(self, ctx: Ctx, params: dict, pi_id: str):
        expand = expand_list(params)
        pi = self._pi_obj(pi_id)
        self._precheck_confirm(pi, params)
        if p_str(params, "payment_method"):
            pi["payment_method"] = self._use_pm(params["payment_method"], pi["customer"])["id"]
        self._confirm(ctx, pi, params)
        return 200, self.s.render(pi, expand)

    def _precheck_confirm(self, pi: dict, params: dict) -> None:
        status = pi["status"]
        if status == "succeeded":
            raise StripeErr(400, "invalid_request_error",
                            "You cannot confirm this PaymentIntent because it has already "
                            "succeeded after being previously confirmed.",
                            code="payment_intent_unexpected_state",
                            extra={"payment_intent": copy.deepcopy(pi)})
        if status in ("canceled", "processing", "requires_capture"):
            raise StripeErr(400, "invalid_request_error",
                            "You cannot confirm this PaymentIntent because it has a status of "
                            f"{status}.", code="payment_intent_unexpected_state",
                            extra={"payment_intent": copy.deepcopy(pi)})
        pm_id = p_str(params, "payment_method") or pi["payment_method"]
        if not pm_id:
            raise StripeErr(400, "invalid_request_error",
                            "You cannot confirm this PaymentIntent because it's missing a "
                            "payment method. You can either update the PaymentIntent with a "
                            "payment method and then confirm it again, or confirm it again "
                            "directly with a payment method.",
                            code="payment_intent_unexpected_state", param="payment_method",
                            extra={"payment_intent": copy.deepcopy(pi)})
        self._check_pm_usable(pm_id, pi["customer"])
        off_session = p_bool(params, "off_session", default=False)
        return_url = p_str(params, "return_url")
        apm = pi.get("automatic_payment_methods") or {}
        if (apm.get("enabled") and apm.get("allow_redirects") != "never" and not return_url
                and not off_session):
            raise invalid(
                "This PaymentIntent is configured to accept payment methods enabled in your "
                "Dashboard, some of which may require a full page redirect to succeed. If you "
                "do not want to accept redirect-based payment methods, set "
                "`automatic_payment_methods[enabled]` to `true` and "
                "`automatic_payment_methods[allow_redirects]` to `never` when creating the "
                "PaymentIntent (or pass `payment_method_types`). If you need to accept "
                "redirect-based payment methods, pass a `return_url` when confirming.",
                param="return_url")

    def _confirm(self, ctx: Ctx, pi: dict, params: dict, *, off_session: bool | None = None):
        """Run a confirmation attempt with the intent's payment method (callers store a
        cloned token there first). Raises a committing 402 StripeErr on decline."""
        pm_id = pi["payment_method"]
        if off_session is None:
            off_session = p_bool(params, "off_session", default=False)
        for key in ("receipt_email", "setup_future_usage"):
            if p_str(params, key):
                pi[key] = p_str(params, key)
        if isinstance(params.get("metadata"), (dict, str)):
            apply_metadata(pi["metadata"], params.get("metadata"))
        pm = self._pm_obj(pm_id)
        pi["last_payment_error"] = None
        pi["next_action"] = None
        behavior = self.s.pm_behavior.get(pm_id, {"behavior": "succeed"})
        kind = behavior["behavior"]
        if kind == "3ds" and off_session:
            self._decline(ctx, pi, pm, code="authentication_required",
                          decline_code="authentication_required",
                          message="Your card was declined. This transaction requires "
                                  "authentication.")
        if kind == "decline":
            self._decline(ctx, pi, pm, code="card_declined",
                          decline_code=behavior.get("decline_code", "generic_decline"),
                          message=behavior.get("message", "Your card was declined."))
        if kind == "3ds":
            pi["status"] = "requires_action"
            pi["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": "https://hooks.stripe.com/3d_secure_2/hosted?payment_intent="
                                 + pi["id"],
                    "source": rand_id("payatt_"),
                },
            }
            ctx.emit("payment_intent.requires_action", pi)
            inv_id = self.s.pi_invoice.get(pi["id"])
            if inv_id:
                inv = self.s.objects[inv_id]
                inv["attempted"] = True
                inv["attempt_count"] += 1
                ctx.emit("invoice.payment_action_required", inv)
            return
        self._succeed(ctx, pi, pm, dispute=kind)

    def _new_charge(self, pi: dict, pm: dict, *, succeeded: bool,
                    failure: tuple[str, str] | None = None,
                    decline_code: str | None = None) -> dict:
        ch_id = rand_id("ch_")
        captured = succeeded and pi["capture_method"] != "manual"
        card = pm.get("card") or {}
        if succeeded:
            outcome = {"advice_code": None, "network_advice_code": None,
                       "network_decline_code": None, "network_status": "approved_by_network",
                       "reason": None, "risk_level": "normal", "risk_score": 20,
                       "seller_message": "Payment complete.", "type": "authorized"}
        else:
            outcome = {"advice_code": "try_again_later", "network_advice_code": None,
                       "network_decline_code": None, "network_status": "declined_by_network",
                       "reason": decline_code, "risk_level": "normal", "risk_score": 20,
                       "seller_message": "The bank did not return any further details with "
                                         "this decline.", "type": "issuer_declined"}
        details = {"type": "card", "card": {
            "amount_authorized": pi["amount"] if succeeded else None,
            "authorization_code": None, "brand": card.get("brand"),
            "checks": copy.deepcopy(card.get("checks")), "country": card.get("country"),
            "exp_month": card.get("exp_month"), "exp_year": card.get("exp_year"),
            "extended_authorization": {"status": "disabled"},
            "fingerprint": card.get("fingerprint"), "funding": card.get("funding"),
            "incremental_authorization": {"status": "unavailable"}, "installments": None,
            "last4": card.get("last4"), "mandate": None,
            "multicapture": {"status": "unavailable"}, "network": card.get("brand"),
            "network_token": {"used": False},
            "network_transaction_id": "".join(secrets.choice(string.digits) for _ in range(15)),
            "overcapture": {"maximum_amount_capturable": pi["amount"],
                            "status": "unavailable"},
            "regulated_status": card.get("regulated_status"), "three_d_secure": None,
            "wallet": None,
        }} if card else None
        ch = {
            "id": ch_id, "object": "charge", "amount": pi["amount"],
            "amount_captured": pi["amount"] if captured else 0, "amount_refunded": 0,
            "application": None, "application_fee": None, "application_fee_amount": None,
            "authorization_code": None,
            "balance_transaction": rand_id("txn_") if captured else None,
            "billing_details": copy.deepcopy(pm["billing_details"]),
            "calculated_statement_descriptor": "STRIPE STANDIN", "captured": captured,
            "created": now(), "currency": pi["currency"], "customer": pi["customer"],
            "description": pi["description"], "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": failure[0] if failure else None,
            "failure_message": failure[1] if failure else None,
            "fraud_details": {}, "livemode": False, "metadata": copy.deepcopy(pi["metadata"]),
            "on_behalf_of": None, "outcome": outcome, "paid": succeeded,
            "payment_intent": pi["id"], "payment_method": pm["id"],
            "payment_method_details": details, "radar_options": None,
            "receipt_email": pi["receipt_email"], "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/standin/{ch_id}",
            "refunded": False, "review": None, "shipping": pi.get("shipping"), "source": None,
            "source_transfer": None, "statement_descriptor": pi["statement_descriptor"],
            "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
            "status": "succeeded" if succeeded else "failed", "transfer": None,
            "transfer_data": None, "transfer_group": pi["transfer_group"],
        }
        return self.s.put(ch)

    def _decline(self, ctx: Ctx, pi: dict, pm: dict, *, code: str, decline_code: str,
                 message: str):
        ch = self._new_charge(pi, pm, succeeded=False, failure=(code, message),
                              decline_code=decline_code)
        err = {
            "charge": ch["id"], "code": code, "decline_code": decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/" + code.replace("_", "-"),
            "message": message, "payment_method": copy.deepcopy(pm), "type": "card_error",
        }
        pi["status"] = "requires_payment_method"
        pi["latest_charge"] = ch["id"]
        pi["last_payment_error"] = err
        pi["payment_method"] = None
        ctx.emit("charge.failed", ch)
        ctx.emit("payment_intent.payment_failed", pi)
        inv_id = self.s.pi_invoice.get(pi["id"])
        if inv_id:
            self._invoice_payment_failed(ctx, self.s.objects[inv_id])
        raise StripeErr(402, "card_error", message, code=code,
                        extra={"charge": ch["id"], "decline_code": decline_code,
                               "payment_intent": copy.deepcopy(pi),
                               "payment_method": copy.deepcopy(pm)},
                        commit=True)

    def _succeed(self, ctx: Ctx, pi: dict, pm: dict, *, dispute: str | None = None):
        """A successful authorization. `dispute` is the payment method's behaviour:
        `dispute` opens a chargeback and `inquiry` an inquiry once the charge is captured."""
        ch = self._new_charge(pi, pm, succeeded=True)
        pi["latest_charge"] = ch["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            ctx.emit("charge.succeeded", ch)
            ctx.emit("payment_intent.amount_capturable_updated", pi)
            return
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        ctx.emit("charge.succeeded", ch)
        ctx.emit("payment_intent.succeeded", pi)
        self._after_success(ctx, pi, pm, ch, dispute)

    def _after_success(self, ctx: Ctx, pi: dict, pm: dict, ch: dict, dispute: str | None):
        # setup_future_usage with a customer saves the (cloned) payment method to it
        if pi.get("setup_future_usage") and pi.get("customer") and not pm.get("customer") \
                and pm["id"] not in TEST_PAYMENT_METHODS:
            self._attach(ctx, pm["id"], pi["customer"])
        inv_id = self.s.pi_invoice.get(pi["id"])
        if inv_id:
            self._invoice_paid(ctx, self.s.objects[inv_id], pi, ch)
        if dispute in ("dispute", "inquiry"):
            self._open_dispute(ctx, ch, inquiry=(dispute == "inquiry"))

    def pi_cancel(self, ctx: Ctx, params: dict, pi_id: str):
        expand = expand_list(params)
        pi = self._pi_obj(pi_id)
        reason = p_str(params, "cancellation_reason", default="requested_by_customer") or None
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise invalid("Invalid cancellation_reason", param="cancellation_reason")
        if pi["status"] in ("succeeded", "canceled"):
            raise StripeErr(400, "invalid_request_error",
                            "You cannot cancel this PaymentIntent because it has a status of "
                            f"{pi['status']}. Only a PaymentIntent with one of the following "
                            "statuses may be canceled: requires_payment_method, "
                            "requires_capture, requires_confirmation, requires_action, "
                            "processing.", code="payment_intent_unexpected_state",
                            extra={"payment_intent": copy.deepcopy(pi)})
        pi["status"] = "canceled"
        pi["canceled_at"] = now()
        pi["cancellation_reason"] = reason
        pi["next_action"] = None
        pi["amount_capturable"] = 0
        ctx.emit("payment_intent.canceled", pi)
        return 200, self.s.render(pi, expand)

    def pi_capture(self, ctx: Ctx, params: dict, pi_id: str):
        expand = expand_list(params)
        pi = self._pi_obj(pi_id)
        if pi["status"] != "requires_capture":
            raise invalid("This PaymentIntent could not be captured because it has a status of "
                          f"{pi['status']}. Only a PaymentIntent with one of the following "
                          "statuses may be captured: requires_capture.",
                          code="payment_intent_unexpected_state")
        amount = p_int(params, "amount_to_capture", default=pi["amount"], minimum=1)
        if amount > pi["amount"]:
            raise invalid("The amount to capture cannot exceed the authorized amount.",
                          param="amount_to_capture")
        ch = self.s.objects[pi["latest_charge"]]
        ch["captured"] = True
        ch["amount_captured"] = amount
        ch["balance_transaction"] = rand_id("txn_")
        pi["status"] = "succeeded"
        pi["amount_received"] = amount
        pi["amount_capturable"] = 0
        ctx.emit("charge.captured", ch)
        ctx.emit("payment_intent.succeeded", pi)
        pm = self._pm_obj(ch["payment_method"])
        self._after_success(ctx, pi, pm, ch,
                            self.s.pm_behavior.get(pm["id"], {}).get("behavior"))
        return 200, self.s.render(pi, expand)

    # control route: complete (or fail) 3-D Secure
    def authenticate(self, ctx: Ctx, pi_id: str, outcome: str) -> dict:
        pi = self._pi_obj(pi_id)
        if pi["status"] != "requires_action":
            raise invalid(f"PaymentIntent {pi_id} has status {pi['status']}; only a "
                          "PaymentIntent in requires_action can be authenticated.",
                          code="payment_intent_unexpected_state")
        pm = self._pm_obj(pi["payment_method"])
        if outcome == "fail":
            pi["status"] = "requires_payment_method"
            pi["next_action"] = None
            pi["payment_method"] = None
            pi["last_payment_error"] = {
                "code": "payment_intent_authentication_failure",
                "doc_url": "https://stripe.com/docs/error-codes/"
                           "payment-intent-authentication-failure",
                "message": "The provided PaymentMethod has failed authentication. You can "
                           "provide payment_method_data or a new PaymentMethod to attempt to "
                           "fulfill this PaymentIntent again.",
                "payment_method": copy.deepcopy(pm), "type": "invalid_request_error",
            }
            ctx.emit("payment_intent.payment_failed", pi)
            inv_id = self.s.pi_invoice.get(pi["id"])
            if inv_id:
                self._invoice_payment_failed(ctx, self.s.objects[inv_id])
            return pi
        behavior = self.s.pm_behavior.get(pm["id"], {})
        self._succeed(ctx, pi, pm, dispute=behavior.get("behavior"))
        return pi

    # ---------------------------------------------------------------- charges / pms
    def charge_get(self, ctx: Ctx, params: dict, ch_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(ch_id, "charge", "charge", param="charge"),
                                  expand)

    def charge_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        pi = p_str(params, "payment_intent")
        cus = p_str(params, "customer")
        items = self.s.list_of("charge", lambda o: (not pi or o["payment_intent"] == pi)
                               and (not cus or o["customer"] == cus))
        return self.paginate(items, params, "/v1/charges", expand)

    def pm_get(self, ctx: Ctx, params: dict, pm_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(pm_id, "payment_method", "PaymentMethod",
                                              param="payment_method"), expand)

    # ---------------------------------------------------------------- refunds
    def refund_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        pi_id = p_str(params, "payment_intent")
        ch_id = p_str(params, "charge")
        if not pi_id and not ch_id:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", param="payment_intent",
                          code="parameter_missing")
        if pi_id and ch_id:
            raise invalid("You may only specify one of these parameters: charge, "
                          "payment_intent.", param="charge")
        if pi_id:
            pi = self.s.must(pi_id, "payment_intent", "payment_intent", param="payment_intent",
                             status=400)
            ch = self.s.get(pi["latest_charge"] or "", "charge")
            if pi["status"] != "succeeded" or ch is None or ch["status"] != "succeeded":
                raise invalid(f"This PaymentIntent ({pi_id}) does not have a successful charge "
                              "to refund.", param="payment_intent")
        else:
            ch = self.s.must(ch_id, "charge", "charge", param="charge", status=400)
            if ch["status"] != "succeeded":
                raise invalid(f"Charge {ch_id} has not succeeded and cannot be refunded.",
                              param="charge")
        dispute = self._charge_dispute(ch)
        if dispute is not None and dispute["status"] in ("needs_response", "under_review",
                                                         "lost"):
            raise invalid(f"Charge {ch['id']} has been charged back; cannot issue a refund.",
                          code="charge_disputed")
        remaining = ch["amount_captured"] - ch["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {ch['id']} has already been refunded.",
                          code="charge_already_refunded")
        amount = p_int(params, "amount", default=remaining, minimum=1)
        if amount > remaining:
            raise invalid(f"Refund amount ({amount / 100:.2f}) is greater than unrefunded "
                          f"amount on charge ({remaining / 100:.2f})", param="amount")
        reason = p_str(params, "reason")
        if reason not in (None, "", "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid("Invalid reason: must be one of duplicate, fraudulent, or "
                          "requested_by_customer", param="reason")
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        re_obj = self.s.put({
            "id": rand_id("re_"), "object": "refund", "amount": amount,
            "balance_transaction": rand_id("txn_"), "charge": ch["id"], "created": now(),
            "currency": ch["currency"], "description": None,
            "destination_details": {
                "card": {"reference": None, "reference_status": "pending",
                         "reference_type": "acquirer_reference_number", "type": "refund"},
                "type": "card"},
            "failure_balance_transaction": None, "failure_reason": None,
            "instructions_email": None, "metadata": metadata, "next_action": None,
            "payment_intent": ch["payment_intent"], "pending_reason": None,
            "presentment_details": None, "reason": reason or None, "receipt_number": None,
            "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None,
        })
        previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"]
        ctx.emit("refund.created", re_obj)
        ctx.emit("charge.refunded", ch, previous)
        if self.s.pm_behavior.get(ch["payment_method"], {}).get("behavior") == "refund_fail":
            # pm_card_refundFail: the refund reads `succeeded` (this response, later GETs)
            # and fails --refund-fail-after seconds later, outside any request, like Stripe.
            self._schedule_refund_failure(re_obj["id"], "expired_or_canceled_card")
        return 200, self.s.render(re_obj, expand)

    def _schedule_refund_failure(self, re_id: str, reason: str) -> None:
        delay = self.s.refund_fail_after
        if delay < 0:
            return
        timer = threading.Timer(delay, self._deferred_refund_failure, (re_id, reason))
        timer.name = f"refund-fail-{re_id}"
        timer.daemon = True
        timer.fails_at = time.time() + delay  # for GET /_standin/refund_failures
        self.s.refund_timers[re_id] = timer
        timer.start()  # it waits for the state lock, so it runs after this request commits

    def cancel_refund_failure(self, re_id: str) -> None:
        """Forget a pending deferred failure (the refund was failed another way)."""
        timer = self.s.refund_timers.pop(re_id, None)
        if timer is not None:
            timer.cancel()

    def _deferred_refund_failure(self, re_id: str, reason: str) -> None:
        """Timer thread: fail the refund like `POST /_standin/refunds/{id}/fail` does; the
        events are committed (and queued for delivery) like a control route's."""
        st = self.s
        try:
            with st.lock:
                if st.refund_timers.get(re_id) is not threading.current_thread():
                    return  # cancelled (control route, reset) while waiting for the lock
                del st.refund_timers[re_id]
                re_obj = st.get(re_id, "refund")
                if re_obj is None or re_obj["status"] != "succeeded":
                    return
                ctx = Ctx(st, None, None, st.default_api_version)
                self._fail_refund(ctx, re_obj, reason)
                st.commit_events(ctx)
        except Exception:  # a timer thread's traceback would otherwise go unnoticed
            log(f"deferred failure of refund {re_id} crashed:\n" + traceback.format_exc())

    def _fail_refund(self, ctx: Ctx, re_obj: dict, reason: str) -> None:
        """A refund that read `succeeded` fails: the money goes back to the balance, the
        charge's `amount_refunded` drops back, `charge.refund.updated`, `refund.updated`
        and `refund.failed` are sent."""
        if re_obj["status"] != "succeeded":
            raise invalid(f"Refund {re_obj['id']} has status {re_obj['status']}; only a "
                          "succeeded refund can fail.")
        ch = self.s.objects[re_obj["charge"]]
        previous = {"failure_balance_transaction": None, "failure_reason": None,
                    "status": re_obj["status"]}
        re_obj["status"] = "failed"
        re_obj["failure_reason"] = reason
        re_obj["failure_balance_transaction"] = rand_id("txn_")
        if re_obj.get("destination_details", {}).get("card"):
            re_obj["destination_details"]["card"]["reference_status"] = "unavailable"
        ch["amount_refunded"] = max(0, ch["amount_refunded"] - re_obj["amount"])
        ch["refunded"] = ch["amount_refunded"] >= ch["amount_captured"] > 0
        ctx.emit("charge.refund.updated", re_obj, previous)
        ctx.emit("refund.updated", re_obj, previous)
        ctx.emit("refund.failed", re_obj)

    def refund_get(self, ctx: Ctx, params: dict, re_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(re_id, "refund", "refund", param="refund"),
                                  expand)

    def refund_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        pi = p_str(params, "payment_intent")
        ch = p_str(params, "charge")
        items = self.s.list_of("refund", lambda o: (not pi or o["payment_intent"] == pi)
                               and (not ch or o["charge"] == ch))
        return self.paginate(items, params, "/v1/refunds", expand)

    # ---------------------------------------------------------------- disputes
    def _charge_dispute(self, ch: dict) -> dict | None:
        found = self.s.list_of("dispute", lambda o: o["charge"] == ch["id"])
        return found[0] if found else None

    def _dispute_txn(self, dp: dict, *, reinstated: bool) -> dict:
        t = now()
        amount = dp["amount"] if reinstated else -dp["amount"]
        fee = 0 if reinstated else DISPUTE_FEE
        fee_details = [] if reinstated else [{
            "amount": fee, "application": None, "currency": dp["currency"],
            "description": "Dispute fee", "type": "stripe_fee"}]
        return self.s.put({
            "id": rand_id("txn_"), "object": "balance_transaction", "amount": amount,
            "available_on": t, "balance_type": "payments", "created": t,
            "currency": dp["currency"],
            "description": ("Chargeback reversal for " if reinstated else
                            "Chargeback withdrawal for ") + dp["charge"],
            "exchange_rate": None, "fee": fee, "fee_details": fee_details,
            "net": amount - fee,
            "reporting_category": "dispute_reversal" if reinstated else "dispute",
            "source": dp["id"], "status": "available", "type": "adjustment",
        })

    @staticmethod
    def _dispute_pm_details(ch: dict, case_type: str, code: str) -> dict | None:
        card = ((ch.get("payment_method_details") or {}).get("card")) or {}
        return {"type": "card",
                "card": {"brand": card.get("brand") or "visa", "case_type": case_type,
                         "network": card.get("network") or card.get("brand") or "visa",
                         "network_reason_code": code}}

    def _open_dispute(self, ctx: Ctx, ch: dict, reason: str = "fraudulent", *,
                      inquiry: bool = False) -> dict:
        """A chargeback (`needs_response`, funds withdrawn at once) or an inquiry
        (`warning_needs_response`, no money moves) on a succeeded charge."""
        if self._charge_dispute(ch) is not None:
            raise invalid(f"Charge {ch['id']} is already disputed.")
        evidence_fields = [
            "access_activity_log", "billing_address", "cancellation_policy",
            "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
            "customer_email_address", "customer_name", "customer_purchase_ip",
            "customer_signature", "duplicate_charge_documentation",
            "duplicate_charge_explanation", "duplicate_charge_id", "product_description",
            "receipt", "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation",
            "service_date", "service_documentation", "shipping_address", "shipping_carrier",
            "shipping_date", "shipping_documentation", "shipping_tracking_number",
            "uncategorized_file", "uncategorized_text",
        ]
        evidence = {k: None for k in evidence_fields}
        evidence["enhanced_evidence"] = {}
        t = now()
        # Visa fraud: an inquiry carries reason code 10, a chargeback 10.4
        code = "10" if inquiry else "10.4"
        dp = self.s.put({
            "id": rand_id("dp_"), "object": "dispute",
            "amount": ch["amount_captured"] - ch["amount_refunded"] or ch["amount"],
            "balance_transactions": [], "charge": ch["id"], "created": t,
            "currency": ch["currency"], "enhanced_eligibility_types": [], "evidence": evidence,
            "evidence_details": {"due_by": t + (20 if inquiry else 7) * 86400,
                                 "enhanced_eligibility": {}, "has_evidence": False,
                                 "past_due": False, "submission_count": 0},
            "is_charge_refundable": inquiry, "livemode": False, "metadata": {},
            "network_reason_code": code, "payment_intent": ch["payment_intent"],
            "payment_method_details": self._dispute_pm_details(
                ch, "inquiry" if inquiry else "chargeback", code),
            "reason": reason,
            "status": "warning_needs_response" if inquiry else "needs_response",
        })
        ch["disputed"] = True
        ctx.emit("charge.dispute.created", dp)
        if not inquiry:
            self._withdraw_dispute_funds(ctx, dp)
        return dp

    def _withdraw_dispute_funds(self, ctx: Ctx, dp: dict) -> None:
        dp["balance_transactions"].append(self._dispute_txn(dp, reinstated=False))
        ctx.emit("charge.dispute.funds_withdrawn", dp)

    @staticmethod
    def _is_inquiry(dp: dict) -> bool:
        return dp["status"].startswith("warning_")

    def _close_dispute(self, ctx: Ctx, dp: dict, status: str) -> None:
        """Close with `won`, `lost` (a chargeback) or `warning_closed` (an inquiry):
        `charge.dispute.closed`, and for `won` `charge.dispute.funds_reinstated`."""
        dp["status"] = status
        ctx.emit("charge.dispute.closed", dp)
        if status == "won":
            dp["balance_transactions"].append(self._dispute_txn(dp, reinstated=True))
            ctx.emit("charge.dispute.funds_reinstated", dp)

    def _escalate_dispute(self, ctx: Ctx, dp: dict) -> None:
        """An inquiry becomes a chargeback (same dispute): `charge.dispute.updated` with
        `status: needs_response` and `case_type: chargeback`, then funds are withdrawn."""
        if not self._is_inquiry(dp) or dp["status"] == "warning_closed":
            raise invalid(f"Dispute {dp['id']} has status {dp['status']}; only an open inquiry "
                          "(warning_needs_response or warning_under_review) can be escalated.")
        previous = {k: copy.deepcopy(dp[k]) for k in
                    ("evidence_details", "is_charge_refundable", "network_reason_code",
                     "payment_method_details", "status")}
        t = now()
        dp["status"] = "needs_response"
        dp["is_charge_refundable"] = False
        dp["network_reason_code"] = "10.4"
        dp["payment_method_details"]["card"]["case_type"] = "chargeback"
        dp["payment_method_details"]["card"]["network_reason_code"] = "10.4"
        dp["evidence_details"].update({"due_by": t + 7 * 86400, "past_due": False,
                                       "submission_count": 0})
        ctx.emit("charge.dispute.updated", dp, previous)
        self._withdraw_dispute_funds(ctx, dp)

    def dispute_get(self, ctx: Ctx, params: dict, dp_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(dp_id, "dispute", "dispute", param="dispute"),
                                  expand)

    def dispute_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        pi = p_str(params, "payment_intent")
        ch = p_str(params, "charge")
        items = self.s.list_of("dispute", lambda o: (not pi or o["payment_intent"] == pi)
                               and (not ch or o["charge"] == ch))
        return self.paginate(items, params, "/v1/disputes", expand)

    def dispute_update(self, ctx: Ctx, params: dict, dp_id: str):
        """Evidence. Submitting moves a chargeback to `under_review` (an inquiry to
        `warning_under_review`), which this response shows; Stripe test mode then decides
        by `evidence[uncategorized_text]`, here right after the response is rendered:
        `winning_evidence` -> `won` (`charge.dispute.closed`, `.funds_reinstated`),
        `losing_evidence` -> `lost` (`charge.dispute.closed`). For an inquiry (stand-in
        convention): `winning_evidence` -> `warning_closed`, `losing_evidence` -> escalated
        to a chargeback."""
        expand = expand_list(params)
        dp = self.s.must(dp_id, "dispute", "dispute", param="dispute")
        if dp["status"] in DISPUTE_CLOSED:
            raise invalid(f"This dispute is already closed ({dp['status']}).")
        evidence = params.get("evidence")
        if evidence not in (None, "") and not isinstance(evidence, dict):
            raise invalid("Invalid hash", param="evidence")
        submit = p_bool(params, "submit", default=True)
        previous: dict = {}
        md = copy.deepcopy(dp["metadata"])
        apply_metadata(md, params.get("metadata"))
        if md != dp["metadata"]:
            previous["metadata"] = dp["metadata"]
            dp["metadata"] = md
        if isinstance(evidence, dict) and evidence:
            for k in evidence:
                if k not in dp["evidence"] or k == "enhanced_evidence":
                    raise invalid(f"Received unknown parameter: evidence[{k}]",
                                  param=f"evidence[{k}]")
            previous["evidence"] = copy.deepcopy(dp["evidence"])
            previous["evidence_details"] = copy.deepcopy(dp["evidence_details"])
            for k, v in evidence.items():
                dp["evidence"][k] = v if v != "" else None
            dp["evidence_details"]["has_evidence"] = True
        text = (dp["evidence"].get("uncategorized_text") or "").strip()
        submitted = submit and dp["evidence_details"]["has_evidence"] and \
            dp["status"] in ("needs_response", "warning_needs_response")
        if submitted:
            previous.setdefault("evidence_details", copy.deepcopy(dp["evidence_details"]))
            previous["status"] = dp["status"]
            dp["evidence_details"]["submission_count"] += 1
            dp["status"] = "warning_under_review" if self._is_inquiry(dp) else "under_review"
        elif submit and isinstance(evidence, dict) and evidence and \
                dp["status"] in ("under_review", "warning_under_review"):
            # more evidence on a dispute under review: submitted again
            dp["evidence_details"]["submission_count"] += 1
            submitted = True
        if previous:
            ctx.emit("charge.dispute.updated", dp, previous)
        out = self.s.render(dp, expand)
        if submitted and text in ("winning_evidence", "losing_evidence"):
            if self._is_inquiry(dp):
                if text == "winning_evidence":
                    self._close_dispute(ctx, dp, "warning_closed")
                else:
                    self._escalate_dispute(ctx, dp)
            else:
                self._close_dispute(ctx, dp, "won" if text == "winning_evidence" else "lost")
        return 200, out

    def dispute_close(self, ctx: Ctx, params: dict, dp_id: str):
        """Accept the dispute: a chargeback becomes `lost`, an inquiry `warning_closed`."""
        expand = expand_list(params)
        dp = self.s.must(dp_id, "dispute", "dispute", param="dispute")
        if dp["status"] in DISPUTE_CLOSED:
            raise invalid(f"This dispute is already closed ({dp['status']}).")
        self._close_dispute(ctx, dp, "warning_closed" if self._is_inquiry(dp) else "lost")
        return 200, self.s.render(dp, expand)

    # ---------------------------------------------------------------- customers
    def customer_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        clock = params.get("test_clock", "clock_default")
        if clock not in ("", None):
            self.s.must(clock, "test_helpers.test_clock", "test_clock", param="test_clock",
                        status=400)
        # `payment_method` is attached to the new customer (a test token: a fresh clone);
        # `invoice_settings[default_payment_method]` may name that same payment method (the
        # token, as in Stripe's docs: the default becomes the clone); anything else cannot
        # be attached to a customer that does not exist yet.
        pm_id = p_str(params, "payment_method")
        existing_pm = self._attachable_pm(pm_id, None, "payment_method") if pm_id else None
        inv_settings = params.get("invoice_settings") or {}
        default_pm = None
        if isinstance(inv_settings, dict):
            default_pm = p_str(inv_settings, "default_payment_method")
            if default_pm and default_pm != pm_id:
                self._attached_pm(default_pm, "(new customer)",
                                  "invoice_settings[default_payment_method]")
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        cus = self.s.put({
            "id": rand_id("cus_", 14), "object": "customer", "address": None, "balance": 0,
            "created": now(), "currency": None, "default_source": None, "delinquent": False,
            "description": p_str(params, "description"), "discount": None,
            "email": p_str(params, "email"),
            "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                      for _ in range(8)),
            "invoice_settings": {"custom_fields": None, "default_payment_method": default_pm,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": metadata, "name": p_str(params, "name"),
            "next_invoice_sequence": 1, "phone": p_str(params, "phone"),
            "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            "test_clock": clock or None,
        })
        pm = None
        if pm_id:
            pm = existing_pm if existing_pm is not None else self._clone_pm(pm_id)
            pm["customer"] = cus["id"]
            if default_pm:
                cus["invoice_settings"]["default_payment_method"] = pm["id"]
        ctx.emit("customer.created", cus)
        if pm is not None:
            ctx.emit("payment_method.attached", pm)
        return 200, self.s.render(cus, expand)

    def customer_get(self, ctx: Ctx, params: dict, cus_id: str):
        expand = expand_list(params)
        cus = self.s.objects.get(cus_id)
        if cus and cus.get("object") == "customer" and cus.get("deleted"):
            return 200, copy.deepcopy(cus)
        return 200, self.s.render(self.s.must(cus_id, "customer", "customer"), expand)

    def customer_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        email = p_str(params, "email")
        items = self.s.list_of("customer", lambda o: not o.get("deleted")
                               and (not email or o.get("email") == email))
        return self.paginate(items, params, "/v1/customers", expand)

    def customer_update(self, ctx: Ctx, params: dict, cus_id: str):
        expand = expand_list(params)
        cus = self.s.must(cus_id, "customer", "customer")
        if cus.get("deleted"):
            raise no_such("customer", cus_id)
        inv_settings = params.get("invoice_settings")
        default_pm = None
        if isinstance(inv_settings, dict) and "default_payment_method" in inv_settings:
            default_pm = p_str(inv_settings, "default_payment_method")
            if default_pm:
                default_pm = self._attached_pm(default_pm, cus_id,
                                               "invoice_settings[default_payment_method]")["id"]
        md = copy.deepcopy(cus["metadata"])
        apply_metadata(md, params.get("metadata"))
        previous: dict = {}
        for key in ("email", "name", "description", "phone"):
            if key in params:
                val = p_str(params, key) or None
                if cus[key] != val:
                    previous[key] = cus[key]
                    cus[key] = val
        if md != cus["metadata"]:
            previous["metadata"] = cus["metadata"]
            cus["metadata"] = md
        if isinstance(inv_settings, dict) and "default_payment_method" in inv_settings:
            previous["invoice_settings"] = copy.deepcopy(cus["invoice_settings"])
            cus["invoice_settings"]["default_payment_method"] = default_pm or None
        if previous:
            ctx.emit("customer.updated", cus, previous)
        return 200, self.s.render(cus, expand)

    def customer_delete(self, ctx: Ctx, params: dict, cus_id: str):
        cus = self.s.must(cus_id, "customer", "customer")
        if cus.get("deleted"):
            raise no_such("customer", cus_id)
        for sub in self.s.list_of("subscription", lambda o: o["customer"] == cus_id
                                  and o["status"] not in ("canceled", "incomplete_expired")):
            self._end_subscription(ctx, sub, self.s.clock_time(cus_id), "cancellation_requested")
        for pm in self.s.list_of("payment_method", lambda o: o.get("customer") == cus_id):
            pm["customer"] = None  # Stripe detaches a deleted customer's payment methods
        ctx.emit("customer.deleted", cus)
        tomb = {"id": cus_id, "object": "customer", "deleted": True}
        self.s.objects[cus_id] = tomb
        return 200, copy.deepcopy(tomb)

    # ---------------------------------------------------------------- products & prices
    def _make_product(self, ctx: Ctx, params: dict) -> dict:
        name = p_str(params, "name", required=True)
        pid = p_str(params, "id") or rand_id("prod_", 14)
        if pid in self.s.objects:
            raise invalid("Product already exists.", param="id",
                          code="resource_already_exists")
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        t = now()
        prod = self.s.put({
            "id": pid, "object": "product", "active": p_bool(params, "active", default=True),
            "attributes": [], "created": t, "default_price": None,
            "description": p_str(params, "description"), "images": [], "livemode": False,
            "marketing_features": [], "metadata": metadata, "name": name,
            "package_dimensions": None, "shippable": None,
            "statement_descriptor": p_str(params, "statement_descriptor"), "tax_code": None,
            "type": "service", "unit_label": p_str(params, "unit_label"), "updated": t,
            "url": None,
        })
        ctx.emit("product.created", prod)
        return prod

    def product_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        return 200, self.s.render(self._make_product(ctx, params), expand)

    def product_get(self, ctx: Ctx, params: dict, prod_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(prod_id, "product", "product"), expand)

    def _validate_price_params(self, params: dict, prefix: str, *, inline: bool) -> dict:
        """Validate price params (no side effects). Returns normalized fields."""
        def q(*names):
            head, rest = names[0], names[1:]
            out = f"{prefix}[{head}]" if prefix else head
            return out + "".join(f"[{n}]" for n in rest)

        cur = p_str(params, "currency")
        if not cur:
            raise missing_param(q("currency"))
        currency = p_currency({"currency": cur}, required=True)
        product = p_str(params, "product")
        product_data = params.get("product_data")
        if product:
            self.s.must(product, "product", "product", param=q("product"), status=400)
        elif inline or not isinstance(product_data, dict):
            raise missing_param(q("product"))
        elif not p_str(product_data, "name"):
            raise missing_param(q("product_data", "name"))
        try:
            unit_amount = p_int(params, "unit_amount", minimum=0)
        except StripeErr as e:
            e.param = q("unit_amount")
            raise
        uad = p_str(params, "unit_amount_decimal")
        if unit_amount is None and uad:
            try:
                unit_amount = int(round(float(uad)))
            except ValueError:
                raise invalid("Invalid decimal: " + uad, param=q("unit_amount_decimal"))
        if unit_amount is None:
            raise missing_param(q("unit_amount"))
        rec = params.get("recurring")
        recurring = None
        if isinstance(rec, dict):
            interval = p_str(rec, "interval")
            if not interval:
                raise missing_param(q("recurring", "interval"))
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval]: must be one of day, month, week, "
                              "or year", param=q("recurring", "interval"))
            count = p_int(rec, "interval_count", default=1, minimum=1)
            recurring = {"interval": interval, "interval_count": count, "meter": None,
                         "trial_period_days": None, "usage_type": "licensed"}
        elif inline:
            raise missing_param(q("recurring"))
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        return {"currency": currency, "product": product, "product_data": product_data,
                "unit_amount": unit_amount, "recurring": recurring, "metadata": metadata}

    def _make_price(self, ctx: Ctx, params: dict, v: dict, *, emit: bool = True) -> dict:
        product = v["product"]
        if not product:
            product = self._make_product(ctx, v["product_data"])["id"]
        price = self.s.put({
            "id": rand_id("price_"), "object": "price", "active": True,
            "billing_scheme": "per_unit", "created": now(), "currency": v["currency"],
            "currency_options": None, "custom_unit_amount": None, "livemode": False,
            "lookup_key": p_str(params, "lookup_key"), "metadata": v["metadata"],
            "nickname": p_str(params, "nickname"), "product": product,
            "recurring": v["recurring"], "tax_behavior": "unspecified", "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if v["recurring"] else "one_time",
            "unit_amount": v["unit_amount"], "unit_amount_decimal": str(v["unit_amount"]),
        })
        if emit:
            ctx.emit("price.created", price)
        return price

    def price_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        v = self._validate_price_params(params, "", inline=False)
        return 200, self.s.render(self._make_price(ctx, params, v), expand)

    def price_get(self, ctx: Ctx, params: dict, price_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(price_id, "price", "price"), expand)

    # ---------------------------------------------------------------- subscriptions
    @staticmethod
    def _plan_from_price(price: dict) -> dict:
        rec = price["recurring"]
        return {
            "id": price["id"], "object": "plan", "active": price["active"],
            "amount": price["unit_amount"], "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": "per_unit", "created": price["created"],
            "currency": price["currency"], "interval": rec["interval"],
            "interval_count": rec["interval_count"], "livemode": False,
            "metadata": copy.deepcopy(price["metadata"]), "meter": None,
            "nickname": price["nickname"], "product": price["product"], "tiers_mode": None,
            "transform_usage": None, "trial_period_days": None, "usage_type": "licensed",
        }

    def sub_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        cus_id = p_str(params, "customer", required=True)
        cus = self.s.must(cus_id, "customer", "customer", param="customer", status=400)
        if cus.get("deleted"):
            raise no_such("customer", cus_id, param="customer", status=400)
        raw_items = params.get("items")
        if raw_items in (None, "", [], {}):
            raise missing_param("items")
        if isinstance(raw_items, dict):
            raw_items = list(raw_items.values())
        if not isinstance(raw_items, list):
            raise invalid("Invalid array", param="items")
        # validate items first (no side effects)
        planned = []
        for i, it in enumerate(raw_items):
            if not isinstance(it, dict):
                raise invalid("Invalid object", param=f"items[{i}]")
            qty = p_int(it, "quantity", default=1, minimum=1)
            if p_str(it, "price"):
                price = self.s.must(it["price"], "price", "price", param=f"items[{i}][price]",
                                    status=400)
                if price["type"] != "recurring":
                    raise invalid("The price specified is set to `type=one_time` but this field "
                                  "only accepts prices with `type=recurring`.",
                                  param=f"items[{i}][price]")
                planned.append(("price", price, qty, it))
            elif isinstance(it.get("price_data"), dict):
                v = self._validate_price_params(it["price_data"], f"items[{i}][price_data]",
                                                inline=True)
                planned.append(("price_data", v, qty, it))
            else:
                raise invalid("You must specify either `price` or `price_data` for each item.",
                              param=f"items[{i}][price]", code="parameter_missing")
        currencies = {(p[1]["currency"]) for p in planned}
        if len(currencies) > 1:
            raise invalid("All prices on a subscription must have the same `currency`.",
                          param="items")
        intervals = {(p[1]["recurring"]["interval"], p[1]["recurring"]["interval_count"])
                     for p in planned}
        if len(intervals) > 1:
            raise invalid("All prices on a subscription must have the same "
                          "`recurring.interval` and `recurring.interval_count`.", param="items")
        behavior = p_str(params, "payment_behavior", default="allow_incomplete")
        if behavior not in ("allow_incomplete", "default_incomplete", "error_if_incomplete",
                            "pending_if_incomplete"):
            raise invalid("Invalid payment_behavior", param="payment_behavior")
        default_pm = p_str(params, "default_payment_method")
        if default_pm:
            default_pm = self._attached_pm(default_pm, cus_id, "default_payment_method")["id"]
        pm_id = default_pm or cus["invoice_settings"].get("default_payment_method")
        if behavior != "default_incomplete" and not pm_id:
            raise invalid("This customer has no attached payment source or default payment "
                          "method. Please consider adding a default payment method. For more "
                          "information, visit https://stripe.com/docs/billing/subscriptions/"
                          "payment-methods-setting#payment-method-priority.",
                          code="resource_missing")
        if behavior == "error_if_incomplete" and pm_id:
            kind = self.s.pm_behavior.get(pm_id, {}).get("behavior")
            if kind in ("decline", "3ds"):
                spec = self.s.pm_behavior[pm_id]
                if kind == "3ds":
                    raise StripeErr(402, "card_error", "Your card was declined. This "
                                    "transaction requires authentication.",
                                    code="authentication_required",
                                    extra={"decline_code": "authentication_required"})
                raise StripeErr(402, "card_error", spec.get("message", "Your card was declined."),
                                code="card_declined",
                                extra={"decline_code": spec.get("decline_code",
                                                                "generic_decline")})
        cancel_at_period_end = p_bool(params, "cancel_at_period_end", default=False)
        metadata: dict = {}
        apply_metadata(metadata, params.get("metadata"))
        # ---- side effects from here on
        t = self.s.clock_time(cus_id)
        sub_id = rand_id("sub_")
        prices = []
        for kind, val, qty, it in planned:
            if kind == "price":
                prices.append((val, qty, it))
            else:
                prices.append((self._make_price(ctx, it["price_data"], val, emit=False), qty,
                               it))
        first = prices[0][0]
        interval = first["recurring"]["interval"]
        count = first["recurring"]["interval_count"]
        end = add_period(t, interval, count, 1)
        items = []
        for price, qty, it in prices:
            item_md: dict = {}
            apply_metadata(item_md, it.get("metadata"), "items[metadata]")
            items.append({
                "id": rand_id("si_", 14), "object": "subscription_item",
                "billing_thresholds": None, "created": t, "current_period_end": end,
                "current_period_start": t, "discounts": [], "metadata": item_md,
                "plan": self._plan_from_price(price), "price": copy.deepcopy(price),
                "quantity": qty, "subscription": sub_id, "tax_rates": [],
            })
        sub = self.s.put({
            "id": sub_id, "object": "subscription", "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": t, "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
            "billing_schedules": [],
            "billing_thresholds": None, "cancel_at": end if cancel_at_period_end else None,
            "cancel_at_period_end": cancel_at_period_end,
            "canceled_at": t if cancel_at_period_end else None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": t,
            "currency": first["currency"], "current_period_end": end,
            "current_period_start": t, "customer": cus_id, "customer_account": None,
            "days_until_due": None, "default_payment_method": default_pm or None,
            "default_source": None, "default_tax_rates": [],
            "description": p_str(params, "description"), "discount": None, "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None,
                                 "issuer": {"account": None, "type": "self"}},
            "items": {"object": "list", "data": items, "has_more": False,
                      "total_count": len(items),
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
            "latest_invoice": None, "livemode": False, "metadata": metadata,
            "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None,
            "pending_update": None, "schedule": None, "start_date": t,
            "status": "incomplete", "test_clock": cus.get("test_clock"),
            "transfer_data": None, "trial_end": None, "trial_settings": None,
            "trial_start": None,
        })
        self.s.sub_meta[sub_id] = {"anchor": t, "k": 1, "interval": interval, "count": count,
                                   "payment_behavior": behavior}
        inv = self._new_invoice(ctx, sub, "subscription_create", period=(t, t),
                                line_period=(t, end), created=t)
        sub["latest_invoice"] = inv["id"]
        ctx.emit("customer.subscription.created", sub)
        self._collect_invoice(ctx, inv, sub, on_session=True,
                              confirm=(behavior != "default_incomplete"))
        return 200, self.s.render(sub, expand)

    def _new_invoice(self, ctx: Ctx, sub: dict, reason: str, *, period: tuple[int, int],
                     line_period: tuple[int, int], created: int) -> dict:
        cus = self.s.objects[sub["customer"]]
        seq = self.s.invoice_seq.get(cus["id"], 0) + 1
        self.s.invoice_seq[cus["id"]] = seq
        cus["next_invoice_sequence"] = seq + 1
        inv_id = rand_id("in_")
        lines = []
        total = 0
        for item in sub["items"]["data"]:
            price = item["price"]
            amount = price["unit_amount"] * (item["quantity"] or 1)
            total += amount
            product = self.s.get(price["product"], "product")
            pname = product["name"] if product else price["product"]
            rec = price["recurring"]
            every = rec["interval"] if rec["interval_count"] == 1 else \
                f"{rec['interval_count']} {rec['interval']}s"
            lines.append({
                "id": rand_id("il_"), "object": "line_item", "amount": amount,
                "currency": price["currency"],
                "description": f"{item['quantity']} × {pname} (at "
                               f"{price['unit_amount'] / 100:.2f} {price['currency'].upper()}"
                               f" / {every})",
                "discount_amounts": [], "discountable": True, "discounts": [],
                "invoice": inv_id, "livemode": False, "metadata": copy.deepcopy(sub["metadata"]),
                "parent": {
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None, "proration": False, "proration_details": None,
                        "subscription": sub["id"], "subscription_item": item["id"],
                    },
                    "type": "subscription_item_details",
                },
                "period": {"end": line_period[1], "start": line_period[0]},
                "pretax_credit_amounts": [],
                "pricing": {"price_details": {"price": price["id"], "product": price["product"]},
                            "type": "price_details",
                            "unit_amount_decimal": price["unit_amount_decimal"]},
                "quantity": item["quantity"], "quantity_decimal": str(item["quantity"]),
                "subscription": sub["id"], "subtotal": amount,
                "subscription_item": item["id"], "taxes": [], "type": "subscription",
                "price": copy.deepcopy(price), "proration": False,
            })
        md = copy.deepcopy(sub["metadata"])
        inv = self.s.put({
            "id": inv_id, "object": "invoice", "account_country": "US",
            "account_name": "Stripe stand-in", "account_tax_ids": None, "amount_due": total,
            "amount_overpaid": 0, "amount_paid": 0, "amount_remaining": total,
            "amount_shipping": 0, "application": None, "attempt_count": 0,
            "attempted": False, "auto_advance": True,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                              "provider": None, "status": None},
            "automatically_finalizes_at": None, "billing_reason": reason, "charge": None,
            "collection_method": "charge_automatically", "confirmation_secret": None,
            "created": created, "currency": sub["currency"], "custom_fields": None,
            "customer": cus["id"], "customer_address": None, "customer_email": cus["email"],
            "customer_name": cus["name"], "customer_phone": cus["phone"],
            "customer_shipping": None, "customer_tax_exempt": "none", "customer_tax_ids": [],
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discount": None, "discounts": [], "due_date": None,
            "effective_at": created, "ending_balance": 0, "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/standin/{inv_id}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/standin/{inv_id}/pdf",
            "issuer": {"account": None, "type": "self"}, "last_finalization_error": None,
            "latest_revision": None,
            "lines": {"object": "list", "data": lines, "has_more": False,
                      "total_count": len(lines), "url": f"/v1/invoices/{inv_id}/lines"},
            "livemode": False, "metadata": {}, "next_payment_attempt": None,
            "number": f"{cus['invoice_prefix']}-{seq:04d}", "on_behalf_of": None,
            "paid": False, "paid_out_of_band": False,
            "parent": {"quote_details": None,
                       "subscription_details": {"metadata": md, "subscription": sub["id"],
                                                "subscription_proration_date": None},
                       "type": "subscription_details"},
            "payment_intent": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": period[1], "period_start": period[0],
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "receipt_number": None, "rendering": None, "shipping_cost": None,
            "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
            "status": "open",
            "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subscription": sub["id"], "subscription_details": {"metadata": md},
            "subtotal": total, "subtotal_excluding_tax": total,
            "test_clock": sub.get("test_clock"), "threshold_reason": None, "total": total,
            "total_discount_amounts": [], "total_excluding_tax": total,
            "total_pretax_credit_amounts": [], "total_taxes": [],
            "webhooks_delivered_at": created,
        })
        draft = copy.deepcopy(inv)
        draft["status"] = "draft"
        draft["status_transitions"]["finalized_at"] = None
        ctx.emit("invoice.created", draft)
        ctx.emit("invoice.finalized", inv)
        return inv

    def _collect_invoice(self, ctx: Ctx, inv: dict, sub: dict, *, on_session: bool,
                         confirm: bool = True):
        """Create the invoice's PaymentIntent and (optionally) attempt payment."""
        if inv["amount_due"] == 0:
            self._invoice_paid(ctx, inv, None, None)
            return
        pm_id = sub["default_payment_method"] or \
            self.s.objects[sub["customer"]]["invoice_settings"].get("default_payment_method")
        pi_id = rand_id("pi_")
        pi = self.s.put({
            "id": pi_id, "object": "payment_intent", "amount": inv["amount_due"],
            "amount_capturable": 0, "amount_details": None, "amount_received": 0,
            "application": None, "application_fee_amount": None,
            "automatic_payment_methods": None, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{rand_id('', 25)}",
            "confirmation_method": "automatic", "created": inv["created"],
            "currency": inv["currency"], "customer": inv["customer"],
            "description": "Subscription " + ("creation" if inv["billing_reason"] ==
                                              "subscription_create" else "update"),
            "excluded_payment_method_types": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "metadata": {}, "next_action": None,
            "on_behalf_of": None, "payment_method": pm_id or None,
            "payment_method_configuration_details": None, "payment_method_options": None,
            "payment_method_types": ["card"], "processing": None, "receipt_email": None,
            "review": None, "setup_future_usage": "off_session", "shipping": None,
            "source": None, "statement_descriptor": None, "statement_descriptor_suffix": None,
            "status": "requires_confirmation" if pm_id else "requires_payment_method",
            "transfer_data": None, "transfer_group": None,
        })
        self.s.pi_invoice[pi_id] = inv["id"]
        inv["payment_intent"] = pi_id
        inv["confirmation_secret"] = {"client_secret": pi["client_secret"],
                                      "type": "payment_intent"}
        ctx.emit("payment_intent.created", pi)
        if not confirm or not pm_id:
            return
        inv["attempted"] = True
        try:
            self._confirm(ctx, pi, {}, off_session=not on_session)
        except StripeErr as e:
            if e.status != 402:
                raise
            # the decline is recorded on the invoice/subscription; the API call succeeds

    def _invoice_payment_failed(self, ctx: Ctx, inv: dict):
        inv["attempted"] = True
        inv["attempt_count"] += 1
        ctx.emit("invoice.payment_failed", inv)
        sub = self.s.get(inv.get("subscription") or "", "subscription")
        if sub and inv["billing_reason"] == "subscription_cycle":
            self._mark_sub_past_due(ctx, sub)

    def _mark_sub_past_due(self, ctx: Ctx, sub: dict):
        if sub["status"] == "active":
            sub["status"] = "past_due"
            ctx.emit("customer.subscription.updated", sub, {"status": "active"})

    def _invoice_paid(self, ctx: Ctx, inv: dict, pi: dict | None, ch: dict | None):
        t = inv["created"]
        inv["status"] = "paid"
        inv["paid"] = True
        inv["attempted"] = True
        inv["attempt_count"] = max(inv["attempt_count"], 1)
        inv["amount_paid"] = inv["amount_due"]
        inv["amount_remaining"] = 0
        inv["charge"] = ch["id"] if ch else None
        inv["status_transitions"]["paid_at"] = max(t, inv["status_transitions"]["finalized_at"]
                                                   or t)
        if ch:
            ch["invoice"] = inv["id"]
            if pi:
                pi["invoice"] = inv["id"]
        ctx.emit("invoice.paid", inv)
        ctx.emit("invoice.payment_succeeded", inv)
        sub = self.s.get(inv.get("subscription") or "", "subscription")
        if sub and sub["status"] in ("incomplete", "past_due", "unpaid"):
            prev = sub["status"]
            sub["status"] = "active"
            ctx.emit("customer.subscription.updated", sub, {"status": prev})

    def _sub_obj(self, sub_id: str) -> dict:
        return self.s.must(sub_id, "subscription", "subscription")

    def sub_get(self, ctx: Ctx, params: dict, sub_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self._sub_obj(sub_id), expand)

    def sub_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        cus = p_str(params, "customer")
        status = p_str(params, "status")

        def pred(o):
            if cus and o["customer"] != cus:
                return False
            if status == "all":
                return True
            if status:
                return o["status"] == status
            return o["status"] not in ("canceled", "incomplete_expired")
        return self.paginate(self.s.list_of("subscription", pred), params, "/v1/subscriptions",
                             expand)

    def sub_update(self, ctx: Ctx, params: dict, sub_id: str):
        expand = expand_list(params)
        sub = self._sub_obj(sub_id)
        md = copy.deepcopy(sub["metadata"])
        apply_metadata(md, params.get("metadata"))
        if sub["status"] in ("canceled", "incomplete_expired"):
            others = set(params) - {"metadata", "cancellation_details"}
            if others:
                raise invalid("A canceled subscription can only update its "
                              "cancellation_details and metadata.")
        cape = p_bool(params, "cancel_at_period_end")
        cancel_at = params.get("cancel_at")
        if cancel_at not in (None, ""):
            cancel_at = p_int(params, "cancel_at")
        default_pm = p_str(params, "default_payment_method")
        if default_pm:
            default_pm = self._attached_pm(default_pm, sub["customer"],
                                           "default_payment_method")["id"]
        previous: dict = {}

        def setf(key, val):
            if sub[key] != val:
                previous[key] = copy.deepcopy(sub[key])
                sub[key] = val

        t = self.s.clock_time(sub["customer"])
        setf("metadata", md)
        if cape is not None:
            setf("cancel_at_period_end", cape)
            setf("cancel_at", sub["current_period_end"] if cape else None)
            setf("canceled_at", t if cape else None)
            setf("cancellation_details", {"comment": None, "feedback": None,
                                          "reason": "cancellation_requested" if cape else None})
        if "cancel_at" in params:
            setf("cancel_at", cancel_at if cancel_at not in (None, "") else None)
            if sub["cancel_at"] is None and cape is None:
                setf("cancel_at_period_end", False)
        if "default_payment_method" in params:
            setf("default_payment_method", default_pm or None)
        if "description" in params:
            setf("description", p_str(params, "description") or None)
        if previous:
            ctx.emit("customer.subscription.updated", sub, previous)
        return 200, self.s.render(sub, expand)

    def _end_subscription(self, ctx: Ctx, sub: dict, t: int, reason: str):
        sub["status"] = "canceled"
        sub["ended_at"] = t
        sub["canceled_at"] = sub["canceled_at"] or t
        sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": reason}
        ctx.emit("customer.subscription.deleted", sub)

    def sub_cancel(self, ctx: Ctx, params: dict, sub_id: str):
        expand = expand_list(params)
        sub = self._sub_obj(sub_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(f"No such subscription: '{sub_id}' (it is already canceled)",
                          code="resource_missing", param="id", status=404)
        t = self.s.clock_time(sub["customer"])
        sub["canceled_at"] = t
        self._end_subscription(ctx, sub, t, "cancellation_requested")
        return 200, self.s.render(sub, expand)

    # ---------------------------------------------------------------- invoices
    def invoice_get(self, ctx: Ctx, params: dict, inv_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(inv_id, "invoice", "invoice", param="invoice"),
                                  expand)

    def invoice_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        sub = p_str(params, "subscription")
        cus = p_str(params, "customer")
        status = p_str(params, "status")
        items = self.s.list_of("invoice", lambda o: (not sub or o["subscription"] == sub)
                               and (not cus or o["customer"] == cus)
                               and (not status or o["status"] == status))
        return self.paginate(items, params, "/v1/invoices", expand)

    # ---------------------------------------------------------------- test clocks
    def clock_create(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        frozen = p_int(params, "frozen_time", required=True)
        t = now()
        clock = self.s.put({
            "id": rand_id("clock_"), "object": "test_helpers.test_clock", "created": t,
            "deletes_after": t + 30 * 86400, "frozen_time": frozen, "livemode": False,
            "name": p_str(params, "name"), "status": "ready", "status_details": {},
        })
        ctx.emit("test_helpers.test_clock.created", clock)
        return 200, self.s.render(clock, expand)

    def clock_get(self, ctx: Ctx, params: dict, clock_id: str):
        expand = expand_list(params)
        return 200, self.s.render(self.s.must(clock_id, "test_helpers.test_clock",
                                              "test_clock", param="test_clock"), expand)

    def clock_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        return self.paginate(self.s.list_of("test_helpers.test_clock"), params,
                             "/v1/test_helpers/test_clocks", expand)

    def clock_advance(self, ctx: Ctx, params: dict, clock_id: str):
        expand = expand_list(params)
        clock = self.s.must(clock_id, "test_helpers.test_clock", "test_clock",
                            param="test_clock")
        target = p_int(params, "frozen_time", required=True)
        if target <= clock["frozen_time"]:
            raise invalid("The test clock's new frozen_time must be after its current "
                          f"frozen_time ({clock['frozen_time']}).", param="frozen_time")
        clock["status"] = "advancing"
        clock["status_details"] = {"advancing": {"target_frozen_time": target}}
        ctx.emit("test_helpers.test_clock.advancing", clock)
        cus_ids = {c["id"] for c in self.s.list_of("customer",
                                                   lambda o: o.get("test_clock") == clock_id)}
        subs = self.s.list_of("subscription", lambda o: o["customer"] in cus_ids)
        while True:
            due = []
            for sub in subs:
                nt = self._next_sub_event(sub)
                if nt is not None and nt <= target:
                    due.append((nt, self.s.order[sub["id"]], sub))
            if not due:
                break
            due.sort(key=lambda x: (x[0], x[1]))
            t, _, sub = due[0]
            clock["frozen_time"] = t
            self._sub_step(ctx, sub, t)
        clock["frozen_time"] = target
        clock["status"] = "ready"
        clock["status_details"] = {}
        ctx.emit("test_helpers.test_clock.ready", clock)
        return 200, self.s.render(clock, expand)

    def _next_sub_event(self, sub: dict) -> int | None:
        status = sub["status"]
        if status in ("canceled", "incomplete_expired"):
            return None
        if status == "incomplete":
            return sub["created"] + 23 * 3600
        if sub["cancel_at"] is not None and sub["cancel_at"] < sub["current_period_end"]:
            return sub["cancel_at"]
        return sub["current_period_end"]

    def _sub_step(self, ctx: Ctx, sub: dict, t: int):
        if sub["status"] == "incomplete":
            sub["status"] = "incomplete_expired"
            sub["ended_at"] = t
            inv = self.s.get(sub["latest_invoice"] or "", "invoice")
            if inv and inv["status"] == "open":
                inv["status"] = "void"
                inv["status_transitions"]["voided_at"] = t
                ctx.emit("invoice.voided", inv)
            ctx.emit("customer.subscription.updated", sub, {"status": "incomplete"})
            return
        if sub["cancel_at"] is not None and sub["cancel_at"] <= t:
            self._end_subscription(ctx, sub, t, "cancellation_requested")
            return
        if sub["cancel_at_period_end"] and t >= sub["current_period_end"]:
            self._end_subscription(ctx, sub, t, "cancellation_requested")
            return
        meta = self.s.sub_meta[sub["id"]]
        old_start, old_end = sub["current_period_start"], sub["current_period_end"]
        meta["k"] += 1
        new_end = add_period(meta["anchor"], meta["interval"], meta["count"], meta["k"])
        previous = {"current_period_end": old_end, "current_period_start": old_start}
        sub["current_period_start"] = old_end
        sub["current_period_end"] = new_end
        for item in sub["items"]["data"]:
            item["current_period_start"] = old_end
            item["current_period_end"] = new_end
        ctx.emit("customer.subscription.updated", sub, previous)
        inv = self._new_invoice(ctx, sub, "subscription_cycle", period=(old_start, old_end),
                                line_period=(old_end, new_end), created=t)
        sub["latest_invoice"] = inv["id"]
        self._collect_invoice(ctx, inv, sub, on_session=False)

    # ---------------------------------------------------------------- events
    def event_get(self, ctx: Ctx, params: dict, evt_id: str):
        expand_list(params)
        return 200, copy.deepcopy(self.s.must(evt_id, "event", "event"))

    def event_list(self, ctx: Ctx, params: dict):
        expand = expand_list(params)
        type_ = p_str(params, "type")
        types = params.get("types")
        if isinstance(types, str):
            types = [types]
        if type_ and types:
            raise invalid("You may only specify one of these parameters: type, types.",
                          param="types")

        def match(t: str) -> bool:
            pats = types or ([type_] if type_ else None)
            if not pats:
                return True
            for p in pats:
                if p.endswith("*") and t.startswith(p[:-1]):
                    return True
                if t == p:
                    return True
            return False
        created = params.get("created")
        lo, hi = None, None
        if isinstance(created, dict):
            if "gte" in created:
                lo = p_int(created, "gte")
            if "gt" in created:
                lo = p_int(created, "gt") + 1
            if "lte" in created:
                hi = p_int(created, "lte")
            if "lt" in created:
                hi = p_int(created, "lt") - 1
        elif created not in (None, ""):
            lo = hi = p_int(params, "created")
        items = [self.s.objects[e] for e in reversed(self.s.events)]
        items = [e for e in items if match(e["type"]) and (lo is None or e["created"] >= lo)
                 and (hi is None or e["created"] <= hi)]
        return self.paginate(items, params, "/v1/events", expand)


# ------------------------------------------------------------------ webhook delivery


class Deliverer(threading.Thread):
    """Delivers events to the configured URL, in order, like `stripe listen --forward-to`."""

    def __init__(self, state: State, attempts: int = 4, timeout: float = 10.0):
        super().__init__(name="webhook-deliverer", daemon=True)
        self.state = state
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.cond = threading.Condition()
        self.queue: collections.deque = collections.deque()
        self.generation = 0
        self.backoff = [0.2, 0.5, 1.0, 2.0]

    def enqueue(self, event_id: str, resend: bool) -> None:
        with self.cond:
            self.queue.append((event_id, resend, self.generation))
            self.cond.notify()

    def clear(self) -> None:
        with self.cond:
            self.queue.clear()
            self.generation += 1

    def pending(self) -> int:
        with self.cond:
            return len(self.queue)

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                event_id, resend, gen = self.queue.popleft()
            try:
                self.deliver(event_id, resend, gen)
            except Exception:  # never let the delivery thread die
                log("delivery crashed:\n" + traceback.format_exc())

    def deliver(self, event_id: str, resend: bool, gen: int) -> None:
        st = self.state
        with st.lock:
            if gen != self.generation:
                return
            evt = st.objects.get(event_id)
            url, secret = st.webhook_url, st.webhook_secret
            if evt is None or not url:
                return
            evt = copy.deepcopy(evt)
        payload = json.dumps(evt, indent=2).encode("utf-8")
        record = {"id": rand_id("whdel_", 16), "event_id": event_id, "event_type": evt["type"],
                  "url": url, "resend": resend, "attempts": [], "delivered": False,
                  "status": None, "signature": None}
        for attempt in range(self.attempts):
            ts = int(time.time())
            sig = hmac.new(secret.encode("utf-8"), f"{ts}.".encode("utf-8") + payload,
                           hashlib.sha256).hexdigest()
            header = f"t={ts},v1={sig}"
            record["signature"] = header
            started = time.monotonic()
            status, error, body = None, None, None
            req = urllib.request.Request(url, data=payload, method="POST", headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            })
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    status = resp.status
                    body = resp.read(2000).decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                status = e.code
                try:
                    body = e.read(2000).decode("utf-8", "replace")
                except Exception:
                    body = None
            except Exception as e:  # connection refused, timeout, ...
                error = f"{type(e).__name__}: {e}"
            ok = status is not None and 200 <= status < 300
            record["attempts"].append({
                "at": time.time(), "status": status, "error": error,
                "response_body": body,
                "duration_ms": int((time.monotonic() - started) * 1000)})
            record["status"] = status
            if ok:
                record["delivered"] = True
                break
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
        with st.lock:
            if gen != self.generation:
                return
            record["finished_at"] = time.time()
            st.deliveries.append(record)
            if record["delivered"] and event_id in st.objects:
                st.objects[event_id]["pending_webhooks"] = 0
        if not record["delivered"]:
            log(f"webhook delivery of {event_id} ({evt['type']}) to {url} failed: "
                f"{record['attempts'][-1]}")


# ------------------------------------------------------------------ HTTP layer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-standin/1.0"
    state: State = None  # type: ignore[assignment]
    api: Api = None  # type: ignore[assignment]
    verbose = False

    def log_message(self, fmt, *args):  # noqa: N802 - stdlib signature
        if self.verbose:
            log(f"{self.address_string()} {fmt % args}")

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj, indent=2).encode("utf-8"), headers)

    def _handle(self, method: str) -> None:
        try:
            url = urllib.parse.urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            body = self._read_body()
            if path.startswith("/_standin"):
                self._control(method, path, url.query, body)
            else:
                self._api(method, path, url.query, body)
        except Exception:
            log("internal error:\n" + traceback.format_exc())
            try:
                self._send_json(500, {"error": {"type": "api_error",
                                                "message": "stand-in internal error"}})
            except Exception:
                pass

    # -------------------------------------------------------------- API requests
    def _api(self, method: str, path: str, query: str, body: bytes) -> None:
        st = self.state
        with st.lock:
            status, out, headers = self._api_locked(method, path, query, body)
        self._send(status, out, headers)

    def _api_locked(self, method: str, path: str, query: str, body: bytes):
        """Handle one API request with the state lock held; returns (status, bytes, headers)."""
        st = self.state
        req_id = rand_id("req_", 14)
        headers = {k: v for k, v in self.headers.items()}
        idem_key = self.headers.get("Idempotency-Key")
        api_version = self.headers.get("Stripe-Version") or st.default_api_version
        resp_headers = {"Request-Id": req_id, "Stripe-Version": api_version}
        if idem_key and method == "POST":
            resp_headers["Idempotency-Key"] = idem_key
        text = body.decode("utf-8", "replace")
        ctype = (self.headers.get("Content-Type") or "").lower()
        entry = {"id": req_id, "time": time.time(), "method": method, "path": path,
                 "query": decode_form(query) if query else {},
                 "headers": headers, "idempotency_key": idem_key,
                 "body": None, "raw_body": text, "status": None}
        st.requests.append(entry)

        def finish(status: int, obj: dict, hdrs: dict = resp_headers):
            entry["status"] = status
            return status, json.dumps(obj, indent=2).encode("utf-8"), hdrs

        try:
            if "application/json" in ctype and text.strip():
                params = json.loads(text)
                if not isinstance(params, dict):
                    raise ValueError("JSON body must be an object")
            else:
                params = decode_form(text) if text else {}
        except ValueError as e:
            entry["body"] = {}
            err = invalid(f"Invalid request body: {e}")
            return finish(err.status, err.body(req_id))
        if method in ("GET", "DELETE") and entry["query"]:
            merged = dict(entry["query"])
            merged.update(params)
            params = merged
        entry["body"] = copy.deepcopy(params)
        # -- auth
        auth = self.headers.get("Authorization") or ""
        key = None
        if auth.startswith("Bearer "):
            key = auth[len("Bearer "):].strip()
        elif auth.startswith("Basic "):
            try:
                key = base64.b64decode(auth[6:]).decode().split(":")[0]
            except Exception:
                key = None
        if not key:
            err = StripeErr(401, "invalid_request_error",
                            "You did not provide an API key. You need to provide your API key "
                            "in the Authorization header, using Bearer auth (e.g. "
                            "'Authorization: Bearer YOUR_SECRET_KEY'). See "
                            "https://stripe.com/docs/api#authentication for details, or we can "
                            "help at https://support.stripe.com/.")
            return finish(401, err.body(req_id))
        if not API_KEY_RE.match(key):
            masked = (key[:8] + "*" * max(0, len(key) - 12) + key[-4:]) if len(key) > 12 \
                else key
            err = StripeErr(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
            return finish(401, err.body(req_id))
        # -- fault injection
        fault = st.faults
        if fault.get("count", 0) > 0 and fault.get("status"):
            prefix = fault.get("path_prefix")
            fmethod = fault.get("method")
            if (not prefix or path.startswith(prefix)) and \
                    (not fmethod or fmethod.upper() == method):
                fault["count"] -= 1
                status = int(fault["status"])
                entry["fault"] = True
                if status == 429:
                    err = StripeErr(429, "invalid_request_error", fault.get("message") or
                                    "Too many requests hit the API too quickly. We recommend "
                                    "an exponential backoff of your requests.",
                                    code="rate_limit")
                else:
                    err = StripeErr(status, "api_error", fault.get("message") or
                                    "An unknown error occurred (stand-in injected fault).")
                hdrs = dict(resp_headers)
                if fault.get("should_retry") is not None:
                    hdrs["Stripe-Should-Retry"] = "true" if fault["should_retry"] else "false"
                return finish(status, err.body(req_id), hdrs)
        # -- idempotency
        idem_slot = None
        fingerprint = json.dumps(params, sort_keys=True)
        if idem_key and method == "POST":
            idem_slot = (key, idem_key)
            prior = st.idem.get(idem_slot)
            if prior is not None:
                if prior["method"] != method or prior["path"] != path:
                    err = StripeErr(400, "idempotency_error",
                                    "Keys for idempotent requests can only be used for the same "
                                    f"endpoint they were first used for ('{prior['method']} "
                                    f"{prior['path']}' vs '{method} {path}'). Try using a key "
                                    f"other than '{idem_key}' if you meant to execute a "
                                    "different request.")
                    return finish(400, err.body(req_id))
                if prior["fingerprint"] != fingerprint:
                    err = StripeErr(400, "idempotency_error",
                                    "Keys for idempotent requests can only be used with the "
                                    "same parameters they were first used with. Try using a key "
                                    f"other than '{idem_key}' if you meant to execute a "
                                    "different request.")
                    return finish(400, err.body(req_id))
                entry["idempotent_replayed"] = True
                entry["status"] = prior["status"]
                replay_headers = dict(resp_headers)
                replay_headers["Idempotent-Replayed"] = "true"
                replay_headers["Original-Request"] = prior["request_id"]
                return prior["status"], prior["body"], replay_headers
        # -- dispatch
        ctx = Ctx(st, req_id, idem_key if method == "POST" else None, api_version)
        try:
            status, obj = self.api.dispatch(method, path, ctx, params)
            st.commit_events(ctx)
        except StripeErr as e:
            if e.commit:
                st.commit_events(ctx)
            status, obj = e.status, e.body(req_id)
        out = json.dumps(obj, indent=2).encode("utf-8")
        # Stripe saves the result once the endpoint started executing; parameter
        # validation failures (400) are not saved, so a corrected retry can reuse the key.
        if idem_slot is not None and (status < 400 or status in (402, 404)):
            st.idem[idem_slot] = {"method": method, "path": path, "fingerprint": fingerprint,
                                  "status": status, "body": out, "request_id": req_id}
        entry["status"] = status
        return status, out, resp_headers

    # -------------------------------------------------------------- control routes
    def _control(self, method: str, path: str, query: str, body: bytes) -> None:
        st = self.state
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError:
            return self._send_json(400, {"error": "body must be JSON"})
        if not isinstance(data, dict):
            return self._send_json(400, {"error": "body must be a JSON object"})
        q = dict(urllib.parse.parse_qsl(query))
        m = re.fullmatch(r"/_standin/([a-z_]+)(?:/([A-Za-z0-9_\-]+))?(?:/([a-z_]+))?", path)
        if not m:
            return self._send_json(404, {"error": f"unknown control route {method} {path}"})
        section, ident, action = m.groups()
        with st.lock:
            if section == "health" and method == "GET":
                return self._send_json(200, {"ok": True})
            if section == "requests" and ident is None:
                if method == "GET":
                    items = st.requests
                    if "method" in q:
                        items = [r for r in items if r["method"] == q["method"].upper()]
                    if "path" in q:
                        items = [r for r in items if r["path"] == q["path"]]
                    if "path_prefix" in q:
                        items = [r for r in items if r["path"].startswith(q["path_prefix"])]
                    return self._send_json(200, items)
                if method == "DELETE":
                    st.requests.clear()
                    return self._send_json(200, {"ok": True})
            if section == "reset" and method == "POST":
                st.reset()
                return self._send_json(200, {"ok": True})
            if section == "faults" and ident is None:
                if method == "GET":
                    return self._send_json(200, st.faults)
                if method in ("POST", "DELETE"):
                    if method == "DELETE":
                        data = {"status": None, "count": 0}
                    status = data.get("status")
                    count = data.get("count", 1)
                    if status is not None and (not isinstance(status, int) or
                                               not 400 <= status <= 599):
                        return self._send_json(400, {"error": "status must be 400..599"})
                    if not isinstance(count, int) or count < 0:
                        return self._send_json(400, {"error": "count must be an integer >= 0"})
                    st.faults = {"status": status, "count": count if status else 0,
                                 "path_prefix": data.get("path_prefix"),
                                 "method": data.get("method"), "message": data.get("message"),
                                 "should_retry": data.get("should_retry")}
                    return self._send_json(200, st.faults)
            if section == "refund_failures" and ident is None and method == "GET":
                return self._send_json(200, [{"refund": re_id, "fails_at": t.fails_at}
                                             for re_id, t in st.refund_timers.items()])
            if section == "deliveries" and ident is None and method == "GET":
                items = st.deliveries
                if "event_id" in q:
                    items = [d for d in items if d["event_id"] == q["event_id"]]
                if "type" in q:
                    items = [d for d in items if d["event_type"] == q["type"]]
                return self._send_json(200, items)
            if section == "webhook" and ident is None:
                if method == "GET":
                    return self._send_json(200, {"url": st.webhook_url,
                                                 "secret": st.webhook_secret,
                                                 "queued": st.deliverer.pending()
                                                 if st.deliverer else 0})
                if method == "POST":
                    if "url" in data:
                        st.webhook_url = data["url"] or None
                    if data.get("secret"):
                        st.webhook_secret = data["secret"]
                    return self._send_json(200, {"url": st.webhook_url,
                                                 "secret": st.webhook_secret})
            if section == "events" and ident and action == "resend" and method == "POST":
                evt = st.get(ident, "event")
                if evt is None:
                    return self._send_json(404, StripeErr(404, "invalid_request_error",
                                                          f"No such event: '{ident}'",
                                                          code="resource_missing",
                                                          param="id").body(None))
                if not st.webhook_url:
                    return self._send_json(409, {"error": "no webhook URL configured"})
                st.deliverer.enqueue(ident, resend=True)
                return self._send_json(200, {"ok": True, "event_id": ident})
            if section in ("payment_intents", "charges", "disputes", "refunds") and ident \
                    and method == "POST":
                ctx = Ctx(st, None, None, st.default_api_version)
                try:
                    if section == "payment_intents" and action == "authenticate":
                        outcome = data.get("outcome", "succeed")
                        if outcome not in ("succeed", "fail"):
                            return self._send_json(400, {"error": "outcome: succeed|fail"})
                        obj = self.api.authenticate(ctx, ident, outcome)
                    elif section == "charges" and action == "dispute":
                        ch = st.must(ident, "charge", "charge")
                        if ch["status"] != "succeeded":
                            raise invalid("only a succeeded charge can be disputed")
                        case_type = data.get("case_type", "chargeback")
                        if case_type not in ("chargeback", "inquiry"):
                            return self._send_json(400, {"error": "case_type: chargeback|inquiry"})
                        obj = self.api._open_dispute(ctx, ch, data.get("reason", "fraudulent"),
                                                     inquiry=case_type == "inquiry")
                    elif section == "disputes" and action == "escalate":
                        dp = st.must(ident, "dispute", "dispute")
                        self.api._escalate_dispute(ctx, dp)
                        obj = dp
                    elif section == "disputes" and action == "close":
                        dp = st.must(ident, "dispute", "dispute")
                        inquiry = self.api._is_inquiry(dp)
                        status = data.get("status", "warning_closed" if inquiry else None)
                        allowed = ("warning_closed",) if inquiry else ("won", "lost")
                        if dp["status"] in DISPUTE_CLOSED:
                            raise invalid(f"This dispute is already closed ({dp['status']}).")
                        if status not in allowed:
                            raise invalid(f"status must be one of {', '.join(allowed)} for "
                                          f"a dispute in {dp['status']}")
                        self.api._close_dispute(ctx, dp, status)
                        obj = dp
                    elif section == "refunds" and action == "fail":
                        re_obj = st.must(ident, "refund", "refund")
                        if re_obj["status"] != "failed":  # already failed: 200, unchanged
                            self.api._fail_refund(ctx, re_obj, data.get("failure_reason")
                                                  or "expired_or_canceled_card")
                        self.api.cancel_refund_failure(ident)
                        obj = re_obj
                    else:
                        return self._send_json(404, {"error": f"unknown control route {path}"})
                    st.commit_events(ctx)
                    return self._send_json(200, st.render(obj, []))
                except StripeErr as e:
                    if e.commit:
                        st.commit_events(ctx)
                    return self._send_json(e.status, e.body(None))
        return self._send_json(404, {"error": f"unknown control route {method} {path}"})


# ------------------------------------------------------------------ main


def seconds_arg(text: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(val):
        raise argparse.ArgumentTypeError(f"not a finite number of seconds: {text!r}")
    return val


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Local Stripe stand-in")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int,
                    default=int(os.environ.get("STRIPE_STANDIN_PORT") or DEFAULT_PORT),
                    help="port to listen on (0 = pick a free port)")
    ap.add_argument("--webhook-url", default=os.environ.get("STRIPE_WEBHOOK_URL") or None)
    ap.add_argument("--webhook-secret",
                    default=os.environ.get("STRIPE_WEBHOOK_SECRET") or DEFAULT_WEBHOOK_SECRET)
    ap.add_argument("--webhook-attempts", type=int, default=4,
                    help="delivery attempts per event (connection error / non-2xx)")
    ap.add_argument("--api-version",
                    default=os.environ.get("STRIPE_STANDIN_API_VERSION") or DEFAULT_API_VERSION,
                    help="api_version stamped on events when the request carried no "
                         "Stripe-Version header")
    ap.add_argument("--refund-fail-after", type=seconds_arg, metavar="SECONDS",
                    default=os.environ.get("STRIPE_STANDIN_REFUND_FAIL_AFTER")
                    or str(DEFAULT_REFUND_FAIL_AFTER),
                    help="a refund of a pm_card_refundFail charge reads `succeeded` and fails "
                         "this many seconds later (negative: only via "
                         "POST /_standin/refunds/{id}/fail)")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin reaches EOF (the parent process went away)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    state = State(args.api_version)
    state.webhook_url = args.webhook_url
    state.webhook_secret = args.webhook_secret
    state.refund_fail_after = args.refund_fail_after
    deliverer = Deliverer(state, attempts=args.webhook_attempts)
    state.deliverer = deliverer
    deliverer.start()

    Handler.state = state
    Handler.api = Api(state)
    Handler.verbose = args.verbose
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host

    sys.stdout.write(f"READY http://{shown_host}:{port}\n")
    sys.stdout.flush()

    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(65536):
                    pass
            except Exception:
                pass
            os._exit(0)
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    log(f"listening on http://{shown_host}:{port} (webhook: {state.webhook_url or 'off'})")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
