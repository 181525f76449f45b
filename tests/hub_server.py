"""A small Hugging Face Hub on 127.0.0.1 for upload tests: the endpoints huggingface_hub's create_repo,
repo_info, list_repo_files, create_commit and README validation call, with repos kept in memory.

Every file is answered as a "regular" upload (inline in the commit), which the real Hub also accepts, so no LFS
or Xet storage is needed. `fail_commits` makes commits fail with a 500 for fault injection.
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=lambda: {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"})
    commits: list[str] = field(default_factory=lambda: [hashlib.sha1(b"initial").hexdigest()])


class Hub:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.commit_bodies: list[list[dict]] = []
        self.fail_commits = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {hub.token}":
                    return True
                self.reply(401, {"error": "Invalid credentials"})
                return False

            def repo(self, repo_id: str) -> Repo | None:
                found = hub.repos.get(repo_id)
                if found is None:
                    self.reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return found

            def do_GET(self):
                if not self.authorized():
                    return
                path = self.path.split("?")[0]
                info = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/[^/]+)?", path)
                tree = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/[^/]+(?:/.*)?", path)
                if not (info or tree):
                    return self.reply(404, {"error": f"no route {path}"})
                repo_id = (info or tree).group(1)
                repo = self.repo(repo_id)
                if repo is None:
                    return None
                if info:
                    siblings = [{"rfilename": name} for name in sorted(repo.files)]
                    return self.reply(200, {"id": repo_id, "sha": repo.commits[-1], "private": repo.private, "siblings": siblings})
                return self.reply(200, [{"type": "file", "path": name, "size": len(data), "oid": git_blob_sha(data)}
                                        for name, data in sorted(repo.files.items())])

            def do_POST(self):
                if not self.authorized():
                    return None
                path, body = self.path.split("?")[0], self.body()
                if path == "/api/repos/create":
                    return self.create(json.loads(body))
                if path == "/api/validate-yaml":
                    return self.validate(json.loads(body)["content"])
                match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(preupload|commit)/[^/]+", path)
                if not match:
                    return self.reply(404, {"error": f"no route {path}"})
                repo = self.repo(match.group(1))
                if repo is None:
                    return None
                if match.group(2) == "preupload":
                    return self.reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                       "oid": git_blob_sha(repo.files[f["path"]]) if f["path"] in repo.files else None}
                                                      for f in json.loads(body)["files"]]})
                if hub.fail_commits:
                    return self.reply(500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"})
                return self.commit(match.group(1), repo, [json.loads(line) for line in body.splitlines() if line.strip()])

            def create(self, request: dict):
                repo_id = f"{request['organization']}/{request['name']}"
                if repo_id in hub.repos:
                    return self.reply(409, {"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo_id}"})
                hub.repos[repo_id] = Repo(private=request.get("visibility") == "private")
                return self.reply(200, {"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id})

            def validate(self, text: str):
                parts = text.split("---")
                meta = yaml.safe_load(parts[1]) if text.startswith("---") and len(parts) > 2 else None
                if not isinstance(meta, dict):
                    return self.reply(400, {"errors": [{"message": "README.md needs a YAML front matter mapping"}]})
                return self.reply(200, {"errors": [], "warnings": []})

            def commit(self, repo_id: str, repo: Repo, items: list[dict]):
                hub.commit_bodies.append(items)
                for item in items:
                    value = item["value"]
                    if item["key"] == "file":
                        repo.files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "deletedFile":
                        repo.files.pop(value["path"], None)
                oid = hashlib.sha1((repo.commits[-1] + json.dumps(sorted((k, git_blob_sha(v)) for k, v in repo.files.items()))).encode()).hexdigest()
                repo.commits.append(oid)
                self.reply(200, {"commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

        return Handler
