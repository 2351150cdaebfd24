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

    from lorag.reranking.prepare import prepare_models as prepare_rerankers
    from lorag.reranking.settings import RerankingSettings

    reranking = RerankingSettings()
    prepare_rerankers(
        root=reranking.resolved_artifacts_dir(settings.data_dir),
        settings=reranking,
        echo=lambda msg: print(msg, flush=True),
    )


def cmd_prepare_models(args: argparse.Namespace) -> int:
    settings = LoragSettings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))
    prepare_models(settings)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {}
    if args.port is not None:
        overrides["grpc_port"] = args.port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.host is not None:
        overrides["grpc_host"] = args.host
    if args.metrics_export_port is not None:
        overrides["metrics_export_port"] = args.metrics_export_port
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
    if settings.metrics_export_port:
        print(f"metrics: http://127.0.0.1:{settings.metrics_export_port}/metrics", flush=True)
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


def cmd_adapters(args: argparse.Namespace) -> int:
    from lorag.adapters import transfer
    from lorag.adapters.v1 import adapters_pb2 as pb
    from lorag.common.v1 import common_pb2

    kinds = {"generation": pb.ADAPTER_KIND_GENERATION, "reranking": pb.ADAPTER_KIND_RERANKING}
    names = {v: k for k, v in kinds.items()}

    def aliases(adapter) -> str:
        return ",".join(
            f"{a.name}=v{a.version}" + (f"@{a.traffic_weight}%" if a.traffic_weight else "")
            for a in adapter.aliases
        )

    def moved(name: str, alias, revision: int) -> None:
        print(f"{name}: {alias.name} -> v{alias.version} ({alias.version_id}, revision {revision})")

    with _client(args) as c:
        a = c.adapters
        if args.action == "upload":
            requests = transfer.upload_requests(
                args.directory,
                adapter_name=args.name,
                kind=kinds[args.kind],
                base_model=args.base_model or "",
                description=args.description,
                parent_version_id=args.parent or "",
                chunk_bytes=args.chunk_kib * 1024,
            )
            v = a.UploadAdapterVersion(requests).version
            print(
                f"{v.adapter_name}: version {v.version} ({v.version_id}) "
                f"sha256 {v.sha256}, {v.size_bytes} bytes"
            )
            if args.promote or args.canary is not None:
                alias, weight = ("canary", args.canary) if args.canary is not None else ("production", 0)
                r = a.SetAlias(
                    pb.SetAliasRequest(
                        adapter_name=v.adapter_name, alias=alias, version=v.version, traffic_weight=weight
                    )
                )
                moved(v.adapter_name, r.alias, r.revision)
        elif args.action == "list":
            token = ""
            while True:
                resp = a.ListAdapters(pb.ListAdaptersRequest(page=common_pb2.PageRequest(page_token=token)))
                for ad in resp.adapters:
                    print(
                        f"{ad.name:<24} {names.get(ad.kind, '?'):<10} {ad.base_model:<24} "
                        f"v{ad.latest_version:<4} {aliases(ad)}"
                    )
                token = resp.page.next_page_token
                if not token:
                    break
        elif args.action == "versions":
            resp = a.ListAdapterVersions(pb.ListAdapterVersionsRequest(adapter_name=args.name))
            for v in resp.versions:
                print(
                    f"v{v.version:<4} {v.version_id}  r={v.rank:<3} {v.size_bytes:>10} B  "
                    f"{v.sha256[:16]}  {v.created_by}"
                )
        elif args.action in ("promote", "canary"):
            alias = "canary" if args.action == "canary" else args.alias
            r = a.SetAlias(
                pb.SetAliasRequest(
                    adapter_name=args.name, alias=alias, version=args.version, traffic_weight=args.weight
                )
            )
            moved(args.name, r.alias, r.revision)
        elif args.action == "rollback":
            r = a.Rollback(pb.RollbackRequest(adapter_name=args.name, alias=args.alias))
            moved(args.name, r.alias, r.revision)
        elif args.action == "resolve":
            r = a.Resolve(
                pb.ResolveRequest(ref=common_pb2.AdapterRef(ref=args.ref), request_id=args.request_id)
            )
            via = f" via {r.alias}" if r.alias else ""
            print(f"{args.ref} -> {r.adapter_name} v{r.version} ({r.version_id}){via}")
        elif args.action == "download":
            resolved = a.Resolve(pb.ResolveRequest(ref=common_pb2.AdapterRef(ref=args.ref)))
            v = transfer.write_download(
                a.Download(pb.DownloadRequest(version_id=resolved.version_id)), args.out
            )
            print(f"{v.adapter_name} v{v.version} ({v.version_id}) -> {args.out} (hashes verified)")
        elif args.action == "delete":
            r = a.DeleteAdapter(pb.DeleteAdapterRequest(name=args.name, force=args.force))
            print(f"{args.name}: deleted {r.deleted_version_count} version(s) (revision {r.revision})")
        elif args.action == "audit":
            resp = a.ListAuditEvents(
                pb.ListAuditEventsRequest(
                    action_prefix=args.action_prefix, resource_prefix=args.resource_prefix
                )
            )
            for e in resp.events:
                print(f"{e.event_time.ToJsonString()}  {e.actor:<20} {e.action:<24} {e.resource}")
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
    s.add_argument(
        "--metrics-export-port",
        type=int,
        default=None,
        help="Prometheus port of this Ray node: Ray Serve's and lorag's metrics ($LORAG_METRICS_EXPORT_PORT)",
    )
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--apps", nargs="*", choices=APPLICATIONS, help="subset of applications")
    s.set_defaults(func=cmd_serve)

    pm = sub.add_parser("prepare-models", help="build the locally built default models (cached)")
    pm.add_argument("--data-dir", type=Path, default=None)
    pm.set_defaults(func=cmd_prepare_models)

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

    ad = sub.add_parser("adapters", help="LoRA adapters: upload, list, promote, rollback, ...")
    adsub = ad.add_subparsers(dest="action", required=True)
    up = adsub.add_parser("upload", help="upload a peft adapter directory as a new version (admin)")
    up.add_argument("directory", type=Path, help="holds adapter_config.json and adapter_model.safetensors")
    up.add_argument("--name", required=True, help="adapter name (created if new)")
    up.add_argument("--kind", choices=["generation", "reranking"], default="generation")
    up.add_argument("--base-model", help="registry name of the base model (default: the kind's default)")
    up.add_argument("--description", default="")
    up.add_argument("--parent", help="version id this one derives from")
    up.add_argument("--chunk-kib", type=int, default=1024, help="upload chunk size in KiB")
    up.add_argument("--promote", action="store_true", help="then point `production` at it")
    up.add_argument(
        "--canary", type=int, metavar="WEIGHT", help="then make it the canary with this % of traffic"
    )
    adsub.add_parser("list", help="adapters of your tenant with their aliases")
    vs = adsub.add_parser("versions", help="versions of one adapter, newest first")
    vs.add_argument("name")
    pr = adsub.add_parser("promote", help="point an alias (default production) at a version (admin)")
    pr.add_argument("name")
    pr.add_argument("version", type=int)
    pr.add_argument("--alias", default="production")
    pr.add_argument("--weight", type=int, default=0, help="traffic % (canary only)")
    ca = adsub.add_parser("canary", help="make a version the canary with a traffic weight (admin)")
    ca.add_argument("name")
    ca.add_argument("version", type=int)
    ca.add_argument("--weight", type=int, required=True, help="percent of bare-name requests, 0-100")
    rb = adsub.add_parser("rollback", help="move an alias back to its previous version (admin)")
    rb.add_argument("name")
    rb.add_argument("--alias", default="production")
    rs = adsub.add_parser("resolve", help="resolve name, name@alias or name@v3 to a version")
    rs.add_argument("ref")
    rs.add_argument("--request-id", default="", help="routes a bare name to production or canary")
    dl = adsub.add_parser("download", help="download a version's files (hashes verified)")
    dl.add_argument("ref")
    dl.add_argument("out", type=Path)
    de = adsub.add_parser("delete", help="delete an adapter with all its versions (admin)")
    de.add_argument("name")
    de.add_argument("--force", action="store_true", help="also when aliases point at it")
    au = adsub.add_parser("audit", help="audit log of your tenant, newest first (admin)")
    au.add_argument("--action-prefix", default="")
    au.add_argument("--resource-prefix", default="")
    ad.set_defaults(func=cmd_adapters)
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
