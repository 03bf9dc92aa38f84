"""The Parley HTTP API as the test clients use it (standard library only)."""
import json
import urllib.error
import urllib.request
import uuid


class API:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method, path, token=None, body=None, raw=None):
        """Returns (status, JSON answer), for error answers too."""
        request = urllib.request.Request(self.base + path, method=method, data=raw if raw is not None else json.dumps(body or {}).encode())
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"raw": text[:200].decode(errors="replace")}

    def __call__(self, method, path, token=None, body=None):
        """The JSON answer of a request that must succeed."""
        status, answer = self.call(method, path, token, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def sign_up(self, name):
        """A new user: {"id", "token", "email", "user"}."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        answer = self("POST", "/api/signup", body={"email": email, "display_name": name, "password": "a long enough password"})
        return {"id": answer["user"]["id"], "token": answer["token"], "email": email, "user": answer["user"]}
