"""The ``lorag`` command line: serve the platform and manage tenants and keys."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from lorag.common.settings import APPLICATIONS, LoragSettings

CREDENTIALS_FILE = "bootstrap-api-key"


def _credentials_path(settings: LoragSettings) -> Path:
    return settings.data_dir / CREDENTIALS_FILE


def bootstrap(settings: LoragSettings) -> str | None:
    """Create the schema, the `default` tenant and the operator key; the new key or None."""
    from lorag.common.db import Database
    from lorag.common.tenancy import TenantStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_registry_url)
    try:
        given = settings.bootstrap_api_key.get_secret_value() if settings.bootstrap_api_key else None
        created = TenantStore(db).bootstrap(given)
    finally:
        db.dispose()
    if created:
        path = _credentials_path(settings)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(created + "\n")
    return created


def prepare_models(settings: LoragSettings) -> None:
    """Build or convert the default local models once, before any replica needs them."""
    from lorag.generation.models import prepare_builtin
    from lorag.generation.settings import DEFAULT_MODEL, GenerationSettings

    gen = GenerationSettings(data_dir=settings.data_dir)
    if gen.backend == "local" and gen.default_model == DEFAULT_MODEL:
        print("preparing the default generation model (first run only) ...", flush=True)
        prepare_builtin(gen)


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {}
    if args.port is not None:
        overrides["grpc_port"] = args.port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.host is not None:
        overrides["grpc_host"] = args.host
    settings = LoragSettings(**overrides)
    created = bootstrap(settings)
    prepare_models(settings)

    from lorag import serving
    from lorag.apps import APPS

    apps = tuple(a for a in APPS if not args.apps or a.name in args.apps)
    endpoint = serving.start(settings, apps=apps, http_port=args.http_port)
    print(f"lorag is serving on {endpoint.grpc_target} (gRPC)", flush=True)
    print(f"applications: {', '.join(endpoint.applications)}", flush=True)
    print(f"data dir: {settings.data_dir}", flush=True)
    if created:
        print("", flush=True)
        print("Bootstrap operator API key (shown once; also saved to", flush=True)
        print(f"  {_credentials_path(settings)} with mode 0600):", flush=True)
        print(f"  {created}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    print("shutting down ...", flush=True)
    serving.shutdown()
    print("stopped", flush=True)
    return 0


def _client(args: argparse.Namespace):
    from lorag.client import Client

    key = args.api_key or os.environ.get("LORAG_API_KEY")
    if not key:
        path = _credentials_path(LoragSettings())
        if path.exists():
            key = path.read_text().strip()
    return Client(args.target, api_key=key, timeout=args.timeout)


def _print(message) -> None:
    from google.protobuf import json_format

    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2))


def cmd_admin(args: argparse.Namespace) -> int:
    from lorag.admin.v1 import admin_pb2 as pb

    roles = {"user": pb.ROLE_USER, "admin": pb.ROLE_ADMIN, "operator": pb.ROLE_OPERATOR}
    with _client(args) as c:
        a = c.admin
        if args.action == "whoami":
            _print(a.WhoAmI(pb.WhoAmIRequest()))
        elif args.action == "create-tenant":
            _print(
                a.CreateTenant(
                    pb.CreateTenantRequest(
                        tenant_id=args.tenant_id,
                        display_name=args.display_name or "",
                        create_admin_key=args.admin_key,
                    )
                )
            )
        elif args.action == "list-tenants":
            _print(a.ListTenants(pb.ListTenantsRequest()))
        elif args.action == "create-key":
            _print(
                a.CreateApiKey(pb.CreateApiKeyRequest(role=roles[args.role], description=args.description))
            )
        elif args.action == "list-keys":
            _print(a.ListApiKeys(pb.ListApiKeysRequest(include_revoked=args.all)))
        elif args.action == "revoke-key":
            _print(a.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=args.key_id)))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    failed = 0
    with _client(args) as c:
        for app in APPLICATIONS:
            try:
                status = c.health(app)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next app
                print(f"{app:<11} ERROR {exc}")
                failed += 1
                continue
            ok = status == 1
            failed += not ok
            print(f"{app:<11} {'SERVING' if ok else 'NOT_SERVING'}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lorag", description=__doc__)
    p.add_argument("--target", default=os.environ.get("LORAG_TARGET", "127.0.0.1:9000"))
    p.add_argument("--api-key", default=None, help="API key (default: $LORAG_API_KEY)")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of each call in seconds")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start local Ray Serve with every application")
    s.add_argument("--port", type=int, default=None, help="gRPC port (default $LORAG_GRPC_PORT or 9000)")
    s.add_argument("--host", default=None, help="gRPC bind address (default 127.0.0.1)")
    s.add_argument("--http-port", type=int, default=None, help="Ray Serve HTTP port on 127.0.0.1")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--apps", nargs="*", choices=APPLICATIONS, help="subset of applications")
    s.set_defaults(func=cmd_serve)

    h = sub.add_parser("health", help="grpc.health.v1 status of every application")
    h.set_defaults(func=cmd_health)

    a = sub.add_parser("admin", help="tenants and API keys")
    asub = a.add_subparsers(dest="action", required=True)
    asub.add_parser("whoami", help="tenant and role of the API key")
    ct = asub.add_parser("create-tenant", help="create a tenant (operator)")
    ct.add_argument("tenant_id")
    ct.add_argument("--display-name")
    ct.add_argument("--admin-key", action="store_true", help="also create its first admin key")
    asub.add_parser("list-tenants", help="list tenants (operator)")
    ck = asub.add_parser("create-key", help="create an API key in your tenant (admin)")
    ck.add_argument("--role", choices=["user", "admin", "operator"], default="user")
    ck.add_argument("--description", default="")
    lk = asub.add_parser("list-keys", help="list API keys of your tenant (admin)")
    lk.add_argument("--all", action="store_true", help="include revoked keys")
    rk = asub.add_parser("revoke-key", help="revoke an API key of your tenant (admin)")
    rk.add_argument("key_id")
    a.set_defaults(func=cmd_admin)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import grpc

    try:
        return args.func(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
