"""A stand-in identity provider for the docker-compose stack (standard library only).

Serves an OAuth2 token endpoint, a discovery document and an Atlassian-Statuspage-style
summary.json, and goes through a scripted incident every 10 minutes so that the dashboards and
alerts have something to show: 6 minutes healthy, 2 minutes of 5xx bursts (the status page says
"major"), 1 minute of rate limiting (429), 1 minute of recovery. A DEMO, not a real provider.
"""
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
CYCLE = int(os.environ.get("INCIDENT_CYCLE_SECONDS", "600"))
LIMIT = 100


def phase():
    t = time.time() % CYCLE
    if t < CYCLE * 0.6:
        return "healthy"
    if t < CYCLE * 0.8:
        return "outage"
    if t < CYCLE * 0.9:
        return "rate_limited"
    return "recovering"


class Handler(BaseHTTPRequestHandler):
    calls = 0

    def send(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/.well-known/openid-configuration":
            base = f"http://{self.headers.get('host', 'idp:8080')}"
            self.send(200, {"issuer": base + "/", "token_endpoint": base + "/oauth/token",
                            "jwks_uri": base + "/.well-known/jwks.json"})
        elif self.path == "/api/v2/summary.json":
            p = phase()
            indicator = {"outage": "major", "rate_limited": "minor"}.get(p, "none")
            status = {"outage": "partial_outage", "rate_limited": "degraded_performance"}.get(p, "operational")
            self.send(200, {
                "page": {"id": "demo", "name": "Demo IdP", "url": "http://idp:8080",
                         "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                "status": {"indicator": indicator, "description": p},
                "components": [{"id": "auth", "name": "Authentication", "status": status}],
                "incidents": [] if p == "healthy" else [{
                    "id": "demo-incident", "name": "Elevated error rates", "status": "investigating",
                    "impact": indicator, "shortlink": "http://idp:8080/incidents/demo",
                    "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
                    "incident_updates": []}],
            })
        else:
            self.send(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.path != "/oauth/token":
            return self.send(404, {"error": "not_found"})
        Handler.calls += 1
        p = phase()
        remaining = max(0, LIMIT - Handler.calls % LIMIT)
        rl = [("x-ratelimit-limit", str(LIMIT)), ("x-ratelimit-remaining", str(remaining)),
              ("x-ratelimit-reset", str(int(time.time()) + 60))]
        if p == "outage" and Handler.calls % 3 != 0:
            return self.send(503, {"error": "temporarily_unavailable"}, rl)
        if p == "rate_limited" and Handler.calls % 2 == 0:
            return self.send(429, {"error": "too_many_requests"}, rl + [("retry-after", "5")])
        self.send(200, {"access_token": "demo-token", "token_type": "Bearer", "expires_in": 86400}, rl)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    print(f"Demo identity provider (a stand-in, not a real one) on :{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
