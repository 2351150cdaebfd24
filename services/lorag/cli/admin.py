"""``lorag admin ...`` (tenants and API keys) and its top-level aliases ``lorag tenants ...`` and
``lorag keys ...``. Results are printed as the response's proto3 JSON."""

from __future__ import annotations

import click

from lorag.cli.app import State, pass_state, print_json

ROLES = ("user", "admin", "operator")


@click.command("whoami")
@pass_state
def whoami(state: State) -> None:
    """Tenant and role of the API key."""
    with state.client() as c:
        print_json(c.admin.whoami().raw)


@click.command("create-tenant")
@click.argument("tenant_id")
@click.option("--display-name", default="", help="human-readable name")
@click.option("--admin-key", is_flag=True, help="also create its first admin key (shown once)")
@pass_state
def create_tenant(state: State, tenant_id: str, display_name: str, admin_key: bool) -> None:
    """Create a tenant (operator)."""
    with state.client() as c:
        print_json(c.admin.create_tenant(tenant_id, display_name=display_name, admin_key=admin_key).raw)


@click.command("get-tenant")
@click.argument("tenant_id")
@pass_state
def get_tenant(state: State, tenant_id: str) -> None:
    """One tenant with its quota."""
    with state.client() as c:
        print_json(c.admin.get_tenant(tenant_id).raw)


@click.command("list-tenants")
@pass_state
def list_tenants(state: State) -> None:
    """List tenants (operator)."""
    from lorag.admin.v1 import admin_pb2 as pb

    with state.client() as c:
        tenants = c.admin.list_tenants()
    print_json(pb.ListTenantsResponse(tenants=[t.raw for t in tenants]))


@click.command("set-quota")
@click.argument("tenant_id")
@click.option("--max-documents", type=int, default=0, help="0 = unlimited")
@click.option("--max-adapters", type=int, default=0, help="0 = unlimited")
@click.option("--max-requests-per-minute", type=int, default=0, help="0 = unlimited")
@click.option("--max-storage-bytes", type=int, default=0, help="0 = unlimited")
@pass_state
def set_quota(state: State, tenant_id: str, **quota: int) -> None:
    """Replace a tenant's quota (operator)."""
    with state.client() as c:
        print_json(c.admin.set_quota(tenant_id, **quota).raw)


@click.command("create-key")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--description", default="")
@pass_state
def create_key(state: State, role: str, description: str) -> None:
    """Create an API key in your tenant (admin); the secret is shown once."""
    with state.client() as c:
        print_json(c.admin.create_key(role=role, description=description).raw)


@click.command("list-keys")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked keys")
@pass_state
def list_keys(state: State, include_revoked: bool) -> None:
    """List API keys of your tenant (admin)."""
    from lorag.admin.v1 import admin_pb2 as pb

    with state.client() as c:
        keys = c.admin.list_keys(include_revoked=include_revoked)
    print_json(pb.ListApiKeysResponse(keys=[k.raw for k in keys]))


@click.command("revoke-key")
@click.argument("key_id")
@pass_state
def revoke_key(state: State, key_id: str) -> None:
    """Revoke an API key of your tenant (admin)."""
    with state.client() as c:
        revoked = c.admin.revoke_key(key_id)
    from lorag.admin.v1 import admin_pb2 as pb

    print_json(pb.RevokeApiKeyResponse(key=revoked.raw))


@click.group()
def admin() -> None:
    """Tenants and API keys."""


for _command in (
    whoami,
    create_tenant,
    get_tenant,
    list_tenants,
    set_quota,
    create_key,
    list_keys,
    revoke_key,
):
    admin.add_command(_command)


@click.group()
def tenants() -> None:
    """Tenants (operator role).

    The same commands as `lorag admin create-tenant`, `list-tenants`, ..."""


tenants.add_command(create_tenant, "create")
tenants.add_command(list_tenants, "list")
tenants.add_command(get_tenant, "get")
tenants.add_command(set_quota, "set-quota")


@click.group()
def keys() -> None:
    """API keys of your tenant.

    The same commands as `lorag admin create-key`, `list-keys`, ..."""


keys.add_command(create_key, "create")
keys.add_command(list_keys, "list")
keys.add_command(revoke_key, "revoke")
keys.add_command(whoami, "whoami")
