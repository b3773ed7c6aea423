"""A fake Hugging Face Hub on 127.0.0.1 for push tests: answers the calls ``huggingface_hub`` (2.x) makes for
``create_repo``, ``create_branch``, ``upload_folder`` (README metadata check, preupload, commit) and records
every request.

Point a client at it with ``HF_ENDPOINT=fake.url``.  Preupload answers ``regular`` for every file, so file
contents arrive base64-encoded in the commit (no LFS / Xet transfer) and are kept in ``fake.files``.  With
``token`` set, any request without ``Authorization: Bearer <token>`` gets 401.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from http_fakes import JSONHandler


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def ndjson(self) -> list[dict]:
        return [json.loads(x) for x in self.body.decode().splitlines() if x.strip()]


@dataclass
class FakeHub:
    token: str | None = None
    requests: list[Request] = field(default_factory=list)
    repos: dict = field(default_factory=dict)  # (type, repo_id) -> {"visibility", "branches"}
    files: dict = field(default_factory=dict)  # (type, repo_id, revision, path) -> bytes
    commits: list[dict] = field(default_factory=list)

    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(JSONHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                u = urlsplit(self.path)
                req = Request(self.command, unquote(u.path), parse_qs(u.query),
                              {k.lower(): v for k, v in self.headers.items()}, self._body())
                hub.requests.append(req)
                code, payload = hub.answer(req)
                self.send_json(code, payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._t = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API ----------------------------------------------------------------------------------------
    def answer(self, req: Request) -> tuple[int, dict]:
        if req.method == "GET" and req.path == "/api/agent-harnesses":  # a public registry the client reads
            return 404, {"error": "not served by the fake hub"}
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "Invalid credentials in Authorization header"}
        parts = req.path.strip("/").split("/")
        if req.method == "POST" and req.path == "/api/validate-yaml":
            content = req.json()["content"]
            if content.startswith("---"):
                try:
                    yaml.safe_load(content.split("---")[1])
                except yaml.YAMLError as e:
                    return 400, {"errors": [{"message": str(e)}]}
            return 200, {"errors": [], "warnings": []}
        if req.method == "POST" and req.path == "/api/repos/create":
            p = req.json()
            rtype = p.get("type", "model")
            repo_id = f"{p['organization']}/{p['name']}" if p.get("organization") else p["name"]
            if (rtype, repo_id) in self.repos:
                return 409, {"error": "You already created this repo", "url": self._url(rtype, repo_id)}
            self.repos[(rtype, repo_id)] = {"visibility": p.get("visibility"), "branches": {"main"}}
            return 200, {"url": self._url(rtype, repo_id)}
        # /api/{type}s/{org}/{name}/{action}/{revision...}
        if len(parts) >= 5 and parts[0] == "api" and parts[1] in ("models", "datasets", "spaces"):
            rtype, repo_id, action, rev = parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
            repo = self.repos.get((rtype, repo_id))
            if repo is None:
                return 404, {"error": "Repository not found"}
            if req.method == "POST" and action == "branch":
                if rev in repo["branches"]:
                    return 409, {"error": "Branch already exists"}
                repo["branches"].add(rev)
                return 200, {}
            if req.method == "POST" and action == "preupload":
                if rev not in repo["branches"]:
                    return 404, {"error": f"Revision not found: {rev}"}
                return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                        "oid": None} for f in req.json()["files"]]}
            if req.method == "POST" and action == "commit":
                if rev not in repo["branches"]:
                    return 404, {"error": f"Revision not found: {rev}"}
                lines = req.ndjson()
                header = next(x["value"] for x in lines if x["key"] == "header")
                paths = []
                for x in lines:
                    if x["key"] == "file":
                        v = x["value"]
                        self.files[(rtype, repo_id, rev, v["path"])] = base64.b64decode(v["content"])
                        paths.append(v["path"])
                oid = f"{len(self.commits) + 1:040x}"
                self.commits.append({"type": rtype, "repo_id": repo_id, "revision": rev, "summary": header["summary"],
                                     "description": header.get("description", ""), "paths": paths, "oid": oid})
                return 200, {"commitUrl": f"{self._url(rtype, repo_id)}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None}
        return 404, {"error": f"fake hub: no route for {req.method} {req.path}"}

    def _url(self, rtype: str, repo_id: str) -> str:
        return f"{self.url}/{'' if rtype == 'model' else rtype + 's/'}{repo_id}"

    def file(self, repo_id: str, path: str, *, rtype: str = "model", revision: str = "main") -> bytes:
        return self.files[(rtype, repo_id, revision, path)]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]
