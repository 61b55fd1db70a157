#!/usr/bin/env python3
"""Writes the protobuf seeds of the otlp_protobuf target (hand-encoded OTLP export requests).

Each file is one selector byte (0 traces, 1 metrics, 2 logs) then the request. Run from fuzz/:
    python3 scripts/seed_otlp_protobuf.py
"""
import os
import struct


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vi(field, n):
    return varint(field << 3) + varint(n)


def f64(field, n):
    return varint(field << 3 | 1) + struct.pack("<Q", n)


def dbl(field, x):
    return varint(field << 3 | 1) + struct.pack("<d", x)


def kv(key, value):
    return ld(1, key) + ld(2, ld(1, value))  # AnyValue.string_value


def kv_int(key, n):
    return ld(1, key) + ld(2, vi(3, n))  # AnyValue.int_value


def resource(name):
    return ld(1, ld(1, kv("service.name", name)))


T0 = 1_764_151_200_000_000_000
TID = bytes(range(1, 17))
SID = bytes(range(1, 9))
PID = bytes(range(9, 17))


def span(name, tid=TID, sid=SID, parent=b"", status=0):
    s = ld(1, tid) + ld(2, sid)
    if parent:
        s += ld(4, parent)
    s += ld(5, name) + vi(6, 3) + f64(7, T0) + f64(8, T0 + 120_000_000)
    s += ld(9, kv("http.request.method", "POST")) + ld(9, kv_int("http.response.status_code", 401))
    if status:
        s += ld(15, ld(2, "unauthorized") + vi(3, status))
    return s


def traces(spans):
    scope = ld(1, ld(1, "authwatch.fuzz") + ld(2, "1.0"))
    ss = scope + b"".join(ld(2, s) for s in spans)
    return ld(1, resource("idp") + ld(2, ss))


def number_point(value_field, raw, attrs=b""):
    return f64(2, T0) + f64(3, T0 + 1) + raw(value_field) + attrs


def metrics():
    gauge = ld(5, ld(1, f64(3, T0) + dbl(4, 0.25) + ld(7, kv("idp", "auth0"))))
    sum_ = ld(7, ld(1, f64(3, T0) + varint(6 << 3 | 1) + struct.pack("<q", 42)) + vi(2, 2) + vi(3, 1))
    hist_point = (
        f64(3, T0) + f64(4, 3) + dbl(5, 1.5)
        + ld(6, struct.pack("<QQ", 1, 2)) + ld(7, struct.pack("<d", 0.5))
    )
    hist = ld(9, ld(1, hist_point) + vi(2, 2))
    ms = ld(2, ld(1, "authwatch.probe.success") + ld(3, "1") + gauge)
    ms += ld(2, ld(1, "http.server.requests") + sum_)
    ms += ld(2, ld(1, "http.server.duration") + ld(3, "s") + hist)
    return ld(1, resource("idp") + ld(2, ld(1, ld(1, "authwatch.fuzz")) + ms))


def logs(records):
    return ld(1, resource("idp") + ld(2, ld(1, ld(1, "authwatch.fuzz")) + b"".join(ld(2, r) for r in records)))


def record(body, tid=b"", sid=b""):
    r = f64(1, T0) + vi(2, 13) + ld(3, "WARN") + ld(5, ld(1, body)) + ld(6, kv("auth0.log_type", "f"))
    if tid:
        r += ld(9, tid)
    if sid:
        r += ld(10, sid)
    return r + f64(11, T0) + ld(12, "auth0.log")


seeds = {
    "traces_valid": b"\x00" + traces([span("GET /authorize"), span("POST /oauth/token", parent=PID, status=2)]),
    "traces_invalid_ids": b"\x00" + traces([span("ok"), span("short", tid=b"\x01" * 4), span("bad parent", parent=b"\x01")]),
    "traces_empty": b"\x00",
    "metrics": b"\x01" + metrics(),
    "logs_valid": b"\x02" + logs([record("Wrong email or password."), record("linked", TID, SID)]),
    "logs_invalid_ids": b"\x02" + logs([record("bad", tid=b"\x02" * 3), record("fine")]),
}
os.makedirs("corpus/otlp_protobuf", exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join("corpus/otlp_protobuf", "seed_" + name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds")
