"""An OAuth 2.0 authorization server that issues opaque access tokens, built on authlib's
server components (client credentials grant, RFC 7662 introspection, RFC 7009 revocation,
client authentication by secret, RFC 7523 assertion or RFC 8705 certificate) so the
introspection tests run against an implementation nobody here wrote.

Arbiter's own code is not in it: only the configuration (clients, keys) comes from the test.
RFC 9701 signed answers are signed with joserfc (authlib's JOSE library); authlib has no
RFC 9701 endpoint, so that wrapping is the only protocol code here.

Usage: python3 authlib_server.py CONFIG.json — prints `READY <port>` once it listens.
"""

import json
import ssl
import sys
import threading
import time
import uuid

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc6749.errors import InvalidClientError
from cryptography import x509
from flask import Flask, jsonify, request
from joserfc import jwk, jwt
from werkzeug.serving import make_server

CONFIG = json.load(open(sys.argv[1]))
ISSUER = CONFIG["issuer"]
AUDIENCE = CONFIG["audience"]
AUTH_METHODS = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
]

app = Flask(__name__)
lock = threading.Lock()
stats = {"introspections": 0}
mode = {"signature": "good", "delay": 0.0, "status": 200}
tokens = {}

# The key signing RFC 9701 answers, published at /jwks; a second one with the same kid
# signs when the test asks for a bad signature.
signing_key = jwk.ECKey.generate_key("P-256", parameters={"kid": "as-1", "alg": "ES256"})
forged_key = jwk.ECKey.generate_key("P-256", parameters={"kid": "as-1", "alg": "ES256"})


class Client(ClientMixin):
    def __init__(self, spec):
        self.spec = spec
        self.client_id = spec["client_id"]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        allowed = set(self.spec.get("scope", "").split())
        return " ".join(s for s in scope.split() if s in allowed) if scope else ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return self.spec.get("client_secret") == client_secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.spec["auth_method"]

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


CLIENTS = {c["client_id"]: Client(c) for c in CONFIG["clients"]}


class Token(TokenMixin):
    def __init__(self, client_id, scope, expires_in, sub=None, extra=None):
        self.client_id = client_id
        self.scope = scope
        self.issued_at = int(time.time())
        self.expires_in = expires_in
        self.sub = sub
        self.extra = extra or {}
        self.revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self):
        return self.revoked


def query_client(client_id):
    return CLIENTS.get(client_id)


def save_token(token, request):
    with lock:
        tokens[token["access_token"]] = Token(
            request.client.get_client_id(), token.get("scope", ""), token["expires_in"]
        )


def find_token(token_string, token_type_hint=None):
    with lock:
        return tokens.get(token_string)


class PrivateKeyJwt(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self):
        return [CONFIG["introspection_url"]]

    def validate_jti(self, claims, jti):
        with lock:
            seen = stats.setdefault("assertion_jtis", set())
            if jti in seen:
                return False
            seen.add(jti)
            return True

    def resolve_client_public_key(self, client):
        return jwk.import_key(client.spec["public_key_pem"], "EC")

    def authenticate_client(self, client):
        if client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "introspection"):
            return client


def tls_client_auth(query_client, oauth_request):
    """RFC 8705 §2.1.1 (PKI method): the handshake verified the chain to the test CA; the
    certificate's subject must be the one registered for the client."""
    client_id = oauth_request.form.get("client_id")
    client = query_client(client_id) if client_id else None
    pem = request.environ.get("SSL_CLIENT_CERT")
    if not client or not pem or client.spec["auth_method"] != "tls_client_auth":
        return None
    cert = x509.load_pem_x509_certificate(pem.encode())
    if cert.subject.rfc4514_string() == client.spec["tls_client_auth_subject_dn"]:
        return client
    raise InvalidClientError(description="certificate subject does not match")


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string)

    def check_permission(self, token, client, request):
        return client.spec.get("introspect", False)

    def introspect_token(self, token):
        payload = {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "scope": token.get_scope(),
            "aud": AUDIENCE,
            "iss": ISSUER,
            "exp": token.issued_at + token.expires_in,
            "iat": token.issued_at,
        }
        if token.sub:
            payload["sub"] = token.sub
        payload.update(token.extra)
        return payload

    def create_endpoint_response(self, oauth_request):
        with lock:
            stats["introspections"] += 1
            delay, status = mode["delay"], mode["status"]
        if delay:
            time.sleep(delay)
        if status != 200:
            return status, {"error": "temporarily_unavailable"}, [
                ("Content-Type", "application/json")
            ]
        code, body, headers = super().create_endpoint_response(oauth_request)
        if "application/token-introspection+jwt" not in request.headers.get("Accept", ""):
            return code, body, headers
        # RFC 9701 §5: the answer inside a JWT from the issuer to the calling client.
        claims = {
            "iss": ISSUER,
            "aud": oauth_request.client.get_client_id(),
            "iat": int(time.time()),
            "token_introspection": body,
        }
        key = forged_key if mode["signature"] == "bad" else signing_key
        signed = jwt.encode(
            {"alg": "ES256", "kid": "as-1", "typ": "token-introspection+jwt"}, claims, key
        )
        return code, signed, [("Content-Type", "application/token-introspection+jwt")]


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string)

    def revoke_token(self, token, request):
        with lock:
            token.revoked = True


server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_grant(grants.ClientCredentialsGrant)
server.register_endpoint(Introspection)
server.register_endpoint(Revocation)
server.register_client_auth_method("private_key_jwt", PrivateKeyJwt())
server.register_client_auth_method("tls_client_auth", tls_client_auth)
server.register_token_generator(
    "default",
    BearerTokenGenerator(
        access_token_generator=lambda **kwargs: CONFIG.get("token_prefix", "")
        + uuid.uuid4().hex
        + uuid.uuid4().hex
    ),
)


@app.post("/token")
def issue_token():
    return server.create_token_response()


@app.post("/introspect")
def introspect():
    return server.create_endpoint_response("introspection")


@app.post("/revoke")
def revoke():
    return server.create_endpoint_response("revocation")


@app.get("/jwks")
def jwks():
    return jsonify({"keys": [signing_key.as_dict(private=False)]})


@app.post("/test/user-token")
def user_token():
    """A token for an end user with claims of the test's choosing (sub, acr, cnf): what an
    authorization code flow would leave in the store, without driving a browser."""
    body = request.get_json()
    value = CONFIG.get("token_prefix", "") + uuid.uuid4().hex
    with lock:
        tokens[value] = Token(
            body["client_id"],
            body.get("scope", ""),
            body.get("expires_in", 3600),
            sub=body.get("sub"),
            extra=body.get("extra"),
        )
    return jsonify({"access_token": value})


@app.get("/test/stats")
def get_stats():
    with lock:
        return jsonify({"introspections": stats["introspections"]})


@app.post("/test/mode")
def set_mode():
    with lock:
        mode.update(request.get_json())
        return jsonify(mode)


def main():
    context = None
    tls = CONFIG.get("tls")
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
        context.load_verify_locations(tls["client_ca_file"])
        context.verify_mode = ssl.CERT_OPTIONAL
    http = make_server("127.0.0.1", CONFIG.get("port", 0), app, threaded=True, ssl_context=context)
    scheme = "https" if tls else "http"
    CONFIG["introspection_url"] = f"{scheme}://127.0.0.1:{http.port}/introspect"
    print(f"READY {http.port}", flush=True)
    http.serve_forever()


if __name__ == "__main__":
    main()
