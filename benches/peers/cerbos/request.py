"""The Cerbos side of benches/peers.sh, through Cerbos's own Python SDK (PyPI `cerbos`).

    request.py frame TOKEN OUT        write OUT: one gRPC-framed CheckResources request (the
                                      benchmark's: GET of item 42 from 192.0.2.1, score 10)
    request.py check ADDR TOKEN OTHER_AUDIENCE NO_READ
                                      ask Cerbos at ADDR (host:port, gRPC) the benchmark's
                                      question, and the ones it must refuse: each rule, a token
                                      for another audience, one without `read`, one whose
                                      signature does not verify; exit 1 and say which when an
                                      answer is not the expected one
    request.py jwks DER_KEY KID OUT   write OUT: the JWKS of the P-256 private key DER_KEY
                                      (PKCS #8), its key named KID
"""

import struct
import sys

from cerbos.effect.v1 import effect_pb2
from cerbos.engine.v1 import engine_pb2
from cerbos.request.v1 import request_pb2
from google.protobuf import struct_pb2


def request(token, ip="192.0.2.1", fraud_score=10):
    """CheckResources for GET on item 42 with TOKEN as the JWT Cerbos verifies."""
    attr = {
        "ip": struct_pb2.Value(string_value=ip),
        "fraud_score": struct_pb2.Value(number_value=fraud_score),
    }
    return request_pb2.CheckResourcesRequest(
        request_id="bench",
        # Cerbos wants a principal id and roles in the request; the gateway would take the
        # id from the token it forwards. The policy decides on the verified token's claims.
        principal=engine_pb2.Principal(id="demo", roles=["client"]),
        resources=[
            request_pb2.CheckResourcesRequest.ResourceEntry(
                actions=["GET"],
                resource=engine_pb2.Resource(kind="item", id="42", attr=attr),
            )
        ],
        aux_data=request_pb2.AuxData(jwt=request_pb2.AuxData.JWT(token=token)),
    )


def frame(message):
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def tampered(token):
    """TOKEN with its signature's first character changed (all six of its bits count): the
    same bad signature benches/peers.sh gives Arbiter."""
    head, payload, signature = token.split(".")
    signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    return ".".join([head, payload, signature])


def check(addr, token, other_audience, no_read):
    import grpc
    from cerbos.svc.v1 import svc_pb2_grpc

    stub = svc_pb2_grpc.CerbosServiceStub(grpc.insecure_channel(addr))

    def effect(message):
        try:
            answer = stub.CheckResources(message, timeout=10)
        except grpc.RpcError as error:
            return f"error {error.code().name}"
        return effect_pb2.Effect.Name(answer.results[0].actions["GET"])

    cases = [
        ("the benchmark request", request(token), "EFFECT_ALLOW"),
        ("from 203.0.113.7", request(token, ip="203.0.113.7"), "EFFECT_DENY"),
        ("fraud score 90", request(token, fraud_score=90), "EFFECT_DENY"),
        ("another audience", request(other_audience), "EFFECT_DENY"),
        ("no read scope", request(no_read), "EFFECT_DENY"),
    ]
    wrong = 0
    for name, message, expected in cases:
        got = effect(message)
        if got != expected:
            print(f"cerbos: {name}: {got}, expected {expected}", file=sys.stderr)
            wrong += 1
    # A token whose signature does not verify is refused as a request error.
    got = effect(request(tampered(token)))
    if got == "EFFECT_ALLOW":
        print("cerbos: a tampered token was allowed", file=sys.stderr)
        wrong += 1
    return wrong


def jwks(der_key, kid):
    """The public JWKS of a P-256 private key, as Cerbos reads it from a file."""
    import base64
    import json

    from cryptography.hazmat.primitives.serialization import load_der_private_key

    numbers = load_der_private_key(der_key, password=None).public_key().public_numbers()

    def b64(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    key = {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
           "x": b64(numbers.x), "y": b64(numbers.y)}
    return json.dumps({"keys": [key]})


if __name__ == "__main__":
    if sys.argv[1] == "frame":
        with open(sys.argv[3], "wb") as out:
            out.write(frame(request(sys.argv[2])))
    elif sys.argv[1] == "check":
        sys.exit(1 if check(*sys.argv[2:6]) else 0)
    elif sys.argv[1] == "jwks":
        with open(sys.argv[2], "rb") as key, open(sys.argv[4], "w") as out:
            out.write(jwks(key.read(), sys.argv[3]))
    else:
        sys.exit(__doc__)
