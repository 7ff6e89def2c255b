"""The upstream error tree: statuses, and the module docstring drawing every class."""

from __future__ import annotations

import inspect

from proxy.upstream import errors


def test_statuses_and_hierarchy():
    assert errors.NoEndpoints.status == 503
    assert errors.ConnectError.status == 502
    assert errors.ConnectTimeout.status == 502 and issubclass(errors.ConnectTimeout, errors.ConnectError)
    assert errors.UpstreamTimeout.status == 504
    assert errors.ProtocolError.status == 502
    assert errors.UpstreamClosed.status == 502
    for cls in (errors.NoEndpoints, errors.ConnectError, errors.UpstreamTimeout, errors.ProtocolError,
                errors.UpstreamClosed):
        assert issubclass(cls, errors.UpstreamError)
    assert errors.BadRequest("x", status=431).status == 431
    assert not issubclass(errors.ClientError, errors.UpstreamError)


def test_docstring_draws_every_class():
    classes = [name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)
               and obj.__module__ == errors.__name__]
    for name in classes:
        assert name in errors.__doc__, name
