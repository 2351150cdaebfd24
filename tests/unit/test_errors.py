import grpc
import pytest

from lorag.common import errors
from lorag.common.status import grpc_status


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidArgument("must be set", field="tenant_id"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Unimplemented("x"), grpc.StatusCode.UNIMPLEMENTED),
        (errors.Aborted("x"), grpc.StatusCode.ABORTED),
        (errors.Cancelled("x"), grpc.StatusCode.CANCELLED),
    ],
)
def test_every_domain_error_maps_to_its_status(exc, code):
    got_code, details = grpc_status(exc)
    assert got_code == code
    assert details == str(exc)


def test_invalid_argument_names_the_field():
    assert (
        grpc_status(errors.InvalidArgument("must be set", field="tenant_id"))[1] == "tenant_id: must be set"
    )


def test_unknown_errors_are_generic_internal_with_trace_id():
    code, details = grpc_status(RuntimeError("password=hunter2 at /srv/x.py"), trace_id="abc123")
    assert code == grpc.StatusCode.INTERNAL
    assert "hunter2" not in details and "/srv" not in details
    assert "abc123" in details


def test_an_unreachable_registry_database_is_unavailable_without_details():
    from sqlalchemy import exc as sa_exc

    refused = sa_exc.OperationalError(
        "SELECT 1", {}, ConnectionRefusedError("connection to server at 10.0.0.5 port 5432 refused")
    )
    code, details = grpc_status(refused, trace_id="abc123")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details == "the registry database is unavailable; try again" and "10.0.0.5" not in details
    lost = sa_exc.DBAPIError(
        "SELECT 1", {}, OSError("server closed the connection"), connection_invalidated=True
    )
    assert grpc_status(lost)[0] == grpc.StatusCode.UNAVAILABLE
    # a query that is simply wrong stays a bug: INTERNAL
    broken = sa_exc.ProgrammingError("SELEC 1", {}, ValueError("syntax error"))
    assert grpc_status(broken)[0] == grpc.StatusCode.INTERNAL


def test_undecodable_request_bytes_become_invalid_argument_naming_the_message_type():
    from lorag.admin.v1 import admin_pb2
    from lorag.common.parsing import MalformedRequest, parse_or_mark

    parse = parse_or_mark(admin_pb2.GetTenantRequest.FromString)
    good = admin_pb2.GetTenantRequest(tenant_id="acme")
    assert parse(good.SerializeToString()) == good
    for data, reason in ((b"\x0a\x02\xff\xfe", "bad UTF-8"), (b"\xff\xff\xff\xff\x0f", "corrupt")):
        marked = parse(data)
        assert isinstance(marked, MalformedRequest)
        code, details = grpc_status(marked.error(), trace_id="t")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("request: is not a valid lorag.admin.v1.GetTenantRequest message")
        assert reason in details
