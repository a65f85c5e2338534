#!/usr/bin/env python3
"""A local stand-in for the Stripe API, for tests only (Stripe cannot be
reached from the test machines). It speaks HTTPS with a certificate the
test run creates, answers POST /v1/checkout/sessions the way Stripe does
(form-encoded request, JSON answer, Stripe's error shape), and records every
request so tests can check the form body and the headers licd sent.

It also serves GET /v1/checkout/sessions/{id} and
GET /v1/checkout/sessions/{id}/line_items (a list object of Stripe's
line items, each with its price), for sessions created through it and for
sessions a test registers as made elsewhere (Payment Links).

Control endpoints (plain JSON, for the tests):
  POST /__session   {"id": "cs_…", "prices": ["price_…", …]}: a session
                    Stripe made without licd (a Payment Link's)
  POST /__mode      {"mode": "ok" | "error500" | "error400" | "garbage" |
                     "slow" | "drop"}
  GET  /__requests  every recorded request: method, path, headers, form
  POST /__reset     forget requests, mode back to "ok"

usage: stripe_double.py PORT CERT KEY PIDFILE
"""
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"mode": "ok", "requests": [], "sessions": {}}
LOCK = threading.Lock()


def stripe_error(kind, message, status):
    return status, {"error": {"type": kind, "message": message}}


def line_item(price):
    """A Checkout Session line item as the API lists it."""
    return {"id": "li_" + secrets.token_hex(12), "object": "item",
            "amount_discount": 0, "amount_subtotal": 4900, "amount_tax": 0,
            "amount_total": 4900, "currency": "usd", "description": "licd plan",
            "price": {"id": price, "object": "price", "active": True,
                      "billing_scheme": "per_unit", "currency": "usd",
                      "livemode": False, "product": "prod_" + secrets.token_hex(7),
                      "type": "recurring", "unit_amount": 4900},
            "quantity": 1}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/__requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        url = urllib.parse.urlsplit(self.path)
        with LOCK:
            mode = STATE["mode"]
            STATE["requests"].append({
                "method": "GET", "path": url.path, "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()}})
        if mode == "error500":
            return self.reply(*stripe_error("api_error", "Something went wrong on Stripe's end.", 500))
        if self.headers.get("Authorization", "")[:15] != "Bearer sk_test_":
            return self.reply(*stripe_error("invalid_request_error", "Invalid API Key provided", 401))
        parts = url.path.split("/")
        if len(parts) in (5, 6) and parts[1:4] == ["v1", "checkout", "sessions"]:
            with LOCK:
                s = STATE["sessions"].get(parts[4])
            if s and len(parts) == 5:
                return self.reply(200, s)
            if s and parts[5] == "line_items":
                return self.reply(200, {"object": "list", "data": s["_line_items"],
                                        "has_more": False, "url": url.path})
        self.reply(*stripe_error("invalid_request_error", "No such checkout.session", 404))

    def do_POST(self):
        raw = self.body()
        if self.path == "/__mode":
            with LOCK:
                STATE["mode"] = json.loads(raw)["mode"]
            return self.reply(200, {"mode": STATE["mode"]})
        if self.path == "/__session":
            body = json.loads(raw)
            with LOCK:
                STATE["sessions"][body["id"]] = {
                    "id": body["id"], "object": "checkout.session",
                    "_line_items": [line_item(p) for p in body["prices"]]}
            return self.reply(200, {})
        if self.path == "/__reset":
            with LOCK:
                STATE["mode"] = "ok"
                STATE["requests"].clear()
            return self.reply(200, {})
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        with LOCK:
            mode = STATE["mode"]
            STATE["requests"].append({
                "method": "POST", "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "raw": raw.decode(),
                "form": {k: v[0] if len(v) == 1 else v for k, v in form.items()},
            })
        if mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "slow":
            time.sleep(30)
        if mode == "error500":
            return self.reply(*stripe_error("api_error", "Something went wrong on Stripe's end.", 500))
        if mode == "error400":
            return self.reply(*stripe_error("invalid_request_error", "No such price: 'price_x'", 400))
        if mode == "garbage":
            return self.reply(200, None, raw=b"<html>not json</html>")
        if self.headers.get("Authorization", "")[:15] != "Bearer sk_test_":
            return self.reply(*stripe_error("invalid_request_error", "Invalid API Key provided", 401))
        if self.path != "/v1/checkout/sessions":
            return self.reply(*stripe_error("invalid_request_error", "Unrecognized request URL", 404))
        sid = "cs_test_" + secrets.token_hex(16)
        session = {
            "id": sid, "object": "checkout.session",
            "url": "https://checkout.stripe.com/c/pay/" + sid,
            "mode": form.get("mode", ["payment"])[0], "status": "open",
            "payment_status": "unpaid",
            "customer_email": form.get("customer_email", [None])[0],
            "client_reference_id": form.get("client_reference_id", [None])[0],
            "success_url": form.get("success_url", [None])[0],
            "cancel_url": form.get("cancel_url", [None])[0],
            "metadata": {k[9:-1]: v[0] for k, v in form.items() if k.startswith("metadata[")},
            "created": int(time.time()), "livemode": False,
            "_line_items": [line_item(v[0]) for k, v in sorted(form.items())
                            if k.startswith("line_items[") and k.endswith("][price]")],
        }
        with LOCK:
            STATE["sessions"][sid] = session
        self.reply(200, {k: v for k, v in session.items() if not k.startswith("_")})


def main():
    port, cert, key, pidfile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    srv.serve_forever()


if __name__ == "__main__":
    main()
