"""The embedded default's demo directory: scim2-server's SCIM 2.0 service with its state in a file.

scim2-server keeps resources in memory only. This runs the same service (scim2_server's WSGI
application, in-memory storage and RFC 7643 schemas) and writes every change to a JSON file, so the
directory survives a restart of `npm start` with the same ids and versions.
"""

import argparse
import itertools
import json
import os
import re
import secrets
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request, without the client address
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)


class FileBackedStorage(InMemoryStorage):
    """In-memory storage that loads from, and saves every write to, a JSON file."""

    def __init__(self, path, provider):
        super().__init__()
        self.path = path
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            resources = []
            for item in saved:
                model = provider.model_for(item["meta"]["resourceType"])
                resources.append(model.model_validate(item))
            self.resources = resources
            # Continue the version counter, so an If-Match on an old version never matches a new one.
            versions = [
                int(m.group(1))
                for r in resources
                if r.meta and r.meta.version and (m := re.search(r"(\d+)", r.meta.version))
            ]
            self.versions = itertools.count(max(versions, default=0) + 1)

    def _save(self):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump([r.model_dump(mode="json") for r in self.resources], f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def create(self, *args, **kwargs):
        with self.lock:
            created = super().create(*args, **kwargs)
            self._save()
            return created

    def update(self, *args, **kwargs):
        with self.lock:
            updated = super().update(*args, **kwargs)
            self._save()
            return updated

    def delete(self, *args, **kwargs):
        with self.lock:
            super().delete(*args, **kwargs)
            self._save()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True, help="JSON file holding the directory")
    parser.add_argument("--token-file", required=True, help="file holding the bearer token clients must send")
    args = parser.parse_args()

    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        parser.error(f"{args.token_file} is empty")

    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    storage = FileBackedStorage(args.state, provider)
    service = ScimService(provider, secret=secrets.token_urlsafe(32))
    app = BearerTokenApplication(storage, provider, service=service, bearer_tokens=[token])
    with make_server(args.host, args.port, app, server_class=ThreadingServer, handler_class=QuietHandler) as server:
        print(f"Serving SCIM on http://{args.host}:{args.port}/v2", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
