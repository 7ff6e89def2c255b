"""IngressClass filtering: which Ingresses this controller serves."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.routing.build import build
from proxy.settings import CONTROLLER_NAME, Settings

from .objects import backend_world, ingress, ingress_class, path, rule, served, snapshot

OTHER_CONTROLLER = "k8s.io/ingress-nginx"


def _served(obj, *classes, settings=Settings()) -> bool:
    config = build(snapshot(obj, *classes, *backend_world("web")), settings)
    assert config.warnings == ()  # foreign Ingresses are ignored silently
    return served(config, "a.test", "/") is not None


def _ing(**kwargs):
    return ingress("n", rule("a.test", path("/", "web")), **kwargs)


@pytest.mark.parametrize(
    "kwargs, classes, settings, expected",
    [
        # spec.ingressClassName
        ({"class_name": "pyngress"}, [], Settings(), True),  # our name; the IngressClass object need not exist
        ({"class_name": "nginx"}, [], Settings(), False),
        ({"class_name": "nginx"}, [ingress_class("nginx", controller=OTHER_CONTROLLER)], Settings(), False),
        ({"class_name": "edge"}, [ingress_class("edge")], Settings(), True),  # any class naming our controller
        ({"class_name": "edge"}, [ingress_class("edge", controller=OTHER_CONTROLLER)], Settings(), False),
        ({"class_name": "internal"}, [], Settings(ingress_class="internal"), True),
        ({"class_name": "pyngress"}, [], Settings(ingress_class="internal"), False),
        (
            {"class_name": "edge"},
            [ingress_class("edge", controller="example.com/other")],
            Settings(controller_name="example.com/other"),
            True,
        ),
        # ingressClassName wins over the legacy annotation
        ({"class_name": "nginx", "class_annotation": "pyngress"}, [], Settings(), False),
        ({"class_name": "pyngress", "class_annotation": "nginx"}, [], Settings(), True),
        # legacy annotation (only without ingressClassName)
        ({"class_name": None, "class_annotation": "pyngress"}, [], Settings(), True),
        ({"class_name": None, "class_annotation": "nginx"}, [], Settings(), False),
        ({"class_name": None, "class_annotation": "nginx"}, [], Settings(watch_ingress_without_class=True), False),
        ({"class_name": None, "class_annotation": "nginx"}, [ingress_class("pyngress", default=True)], Settings(),
         False),
        ({"class_name": None, "class_annotation": "internal"}, [], Settings(ingress_class="internal"), True),
        # no class at all
        ({"class_name": None}, [], Settings(), False),
        ({"class_name": None}, [ingress_class("pyngress")], Settings(), False),
        ({"class_name": None}, [], Settings(watch_ingress_without_class=True), True),
        ({"class_name": None}, [ingress_class("pyngress", default=True)], Settings(), True),
        ({"class_name": None}, [ingress_class("edge", default=True)], Settings(), True),  # ours by controller
        ({"class_name": None}, [ingress_class("nginx", controller=OTHER_CONTROLLER, default=True)], Settings(), False),
        (
            {"class_name": None},
            [ingress_class("nginx", controller=OTHER_CONTROLLER, default=True), ingress_class("pyngress")],
            Settings(),
            False,
        ),
        # our name counts even if the IngressClass object points elsewhere
        ({"class_name": None}, [ingress_class("pyngress", controller=OTHER_CONTROLLER, default=True)], Settings(),
         True),
        ({"class_name": ""}, [ingress_class("pyngress", default=True)], Settings(), True),  # empty = unset
        ({"class_name": None, "class_annotation": ""}, [ingress_class("pyngress", default=True)], Settings(), True),
    ],
)
def test_class_selection(kwargs, classes, settings, expected):
    assert _served(_ing(**kwargs), *classes, settings=settings) is expected


@pytest.mark.parametrize("value", ["True", "yes", "1", True])
def test_default_class_annotation_must_be_the_string_true(value):
    cls = ingress_class("pyngress")
    cls["metadata"]["annotations"] = {"ingressclass.kubernetes.io/is-default-class": value}
    assert _served(_ing(class_name=None), cls) is False


def test_controller_name_default_is_ours():
    assert Settings().controller_name == CONTROLLER_NAME
    assert _served(_ing(class_name="x"), ingress_class("x", controller=CONTROLLER_NAME)) is True


def test_foreign_ingress_does_not_claim_hosts_or_conflict():
    config = build(
        snapshot(
            ingress("foreign", rule("a.test", path("/", "other")), class_name="nginx", created="2000-01-01T00:00:00Z"),
            ingress("ours", rule("a.test", path("/", "web"))),
            *backend_world("web"),
        ),
        Settings(),
    )
    assert config.warnings == ()
    assert served(config, "a.test", "/") == ("ours", "/", "Prefix")
    assert list(config.clusters) == ["default/web:80"]


@pytest.mark.parametrize(
    "class_name, mutate",
    [
        ("pyngress", lambda obj: obj["spec"].update(ingressClassName=7)),
        (None, lambda obj: obj["metadata"].update(annotations=["kubernetes.io/ingress.class"])),
        ("pyngress", lambda obj: obj.update(spec="pyngress")),
        ("pyngress", lambda obj: obj.update(metadata=None, spec=[1])),
    ],
)
def test_unreadable_class_fields_are_warned_and_skipped(class_name, mutate):
    broken = _ing(class_name=class_name)
    mutate(broken)
    world = replace(snapshot(*backend_world("web")), ingresses={("default", "n"): broken})
    config = build(world, Settings(watch_ingress_without_class=True))
    [warning] = config.warnings
    assert (warning.kind, warning.name) == ("Ingress", "n") and "Ingress skipped" in warning.message
    assert served(config, "a.test", "/") is None


def test_broken_ingress_class_of_ours_is_warned_and_others_are_not():
    ours = ingress_class("pyngress")
    ours["metadata"]["annotations"] = "is-default-class"
    theirs = ingress_class("nginx", controller=OTHER_CONTROLLER)
    theirs["spec"] = ["garbage"]
    config = build(snapshot(_ing(class_name="pyngress"), ours, theirs, *backend_world("web")), Settings())
    assert [(w.kind, w.namespace, w.name) for w in config.warnings] == [("IngressClass", "", "pyngress")]
    assert served(config, "a.test", "/") is not None
