"""An OpenID provider for the workbench's sign-in tests: the authorization code flow with
PKCE (S256) and ES256-signed ID tokens, built on authlib's server components
(AuthorizationCodeGrant, CodeChallenge, OpenIDCode), so the console signs in at an
implementation nobody here wrote. Only the users and the client come from the test.

The sign-in page is a plain form asking for a user name (no password: the users are the
test's). Usage: python3 oidc_provider.py CONFIG.json — prints `READY <port>` once it listens.
CONFIG: {"client_id": …, "redirect_uri": …, "users": {"name": {claims…}}}; `redirect_uri` is read
at each request, so it may be written after the provider starts.
"""

import html
import json
import sys
import time
import uuid

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc import jwk
from werkzeug.serving import make_server

CONFIG = json.load(open(sys.argv[1]))
CLIENT_ID = CONFIG["client_id"]
USERS = CONFIG["users"]


def redirect_uri():
    """Read at each request: the test writes it once Arbiter's port is known."""
    return json.load(open(sys.argv[1])).get("redirect_uri")

KEY = jwk.ECKey.generate_key("P-256", parameters={"kid": "op-1", "alg": "ES256"}, private=True)

app = Flask(__name__)
codes = {}
nonces = set()
issuer = {"value": ""}


class Client(ClientMixin):
    """The console, a public client: PKCE protects its code, no secret."""

    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return redirect_uri()

    def get_allowed_scope(self, scope):
        return " ".join(s for s in scope.split() if s in ("openid", "profile", "email"))

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri == globals()["redirect_uri"]()

    def check_client_secret(self, client_secret):
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


CLIENT = Client()


class User:
    def __init__(self, name):
        self.name = name

    def get_user_id(self):
        return self.name


class Code(AuthorizationCodeMixin):
    def __init__(self, code, req, user):
        self.code = code
        self.user = user
        self.redirect_uri = req.payload.redirect_uri
        self.scope = req.payload.scope
        self.nonce = req.payload.data.get("nonce")
        self.code_challenge = req.payload.data.get("code_challenge")
        self.code_challenge_method = req.payload.data.get("code_challenge_method")
        self.auth_time = int(time.time())
        self.expires_at = time.time() + 120

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None

    def is_expired(self):
        return time.time() > self.expires_at


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code, req):
        codes[code] = Code(code, req, req.user)
        nonces.add(req.payload.data.get("nonce"))

    def query_authorization_code(self, code, client):
        found = codes.get(code)
        if found and not found.is_expired():
            return found
        return None

    def delete_authorization_code(self, authorization_code):
        codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class IdTokens(OpenIDCode):
    def __init__(self):
        super().__init__(require_nonce=True)

    def exists_nonce(self, nonce, req):
        return nonce in nonces

    def resolve_client_private_key(self, client):
        return KEY

    def get_client_algorithm(self, client):
        return "ES256"

    def get_encode_header(self, client):
        return {"alg": "ES256", "kid": "op-1"}

    def get_client_claims(self, client):
        return {"iss": issuer["value"], "aud": [CLIENT_ID], "exp": int(time.time()) + 900}

    def generate_user_info(self, user, scope):
        info = UserInfo(sub=user.name, name=user.name.title())
        info.update(USERS[user.name])
        return info


def query_client(client_id):
    return CLIENT if client_id == CLIENT_ID else None


def save_token(token, req):
    pass


server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
server.register_grant(CodeGrant, [CodeChallenge(required=True), IdTokens()])


@app.route("/.well-known/openid-configuration")
def discovery():
    base = issuer["value"]
    return jsonify(
        {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }
    )


@app.route("/jwks")
def jwks():
    return jsonify({"keys": [KEY.as_dict(private=False)]})


@app.route("/authorize", methods=["GET", "POST"])
def authorize():
    if request.method == "GET":
        try:
            server.get_consent_grant(end_user=None)
        except Exception as e:  # an invalid request is shown, never redirected
            return f"<h1>Invalid request</h1><p>{html.escape(str(e))}</p>", 400
        return (
            "<!doctype html><title>Test OpenID provider</title>"
            "<h1>Sign in at the test OpenID provider</h1>"
            f'<form method="post" action="/authorize?{html.escape(request.query_string.decode())}">'
            '<label>User <input id="username" name="username"></label>'
            '<button id="signin" type="submit">Sign in</button></form>'
        )
    name = request.form.get("username", "")
    user = User(name) if name in USERS else None
    return server.create_authorization_response(grant_user=user)


@app.route("/token", methods=["POST"])
def token():
    return server.create_token_response()


def main():
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    port = srv.server_port
    issuer["value"] = f"http://127.0.0.1:{port}"
    print(f"READY {port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
