"""The real `pyngress` process in file mode with a BackendTrafficPolicy: the policy's request timeout (a
section the data plane already serves) answers 504, its edits and removal apply live, and an unknown field
is ignored with a log line naming the policy while the rest applies."""

from __future__ import annotations

from e2e_harness import INGRESS_CLASS, eventually, ingress, service

HOST = "slow.example.test"


def policy(request_timeout: str, **extra: object) -> dict:
    return {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": "app-timeout", "namespace": "default"},
            "spec": {"targetRefs": [{"group": "networking.k8s.io", "kind": "Ingress", "name": "app"}],
                     "timeout": {"http": {"requestTimeout": request_timeout}}, **extra}}


async def test_a_policy_timeout_applies_live_and_a_typo_is_named(echo_pods, manifests, pyngress):
    [pod] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[pod]))
    manifests.write("ingress.yaml", ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    manifests.write("policy.yaml", policy("100ms", retires={"numRetries": 1}))
    proc = await pyngress(manifests.path)

    # The pod holds the answer far longer than the policy allows (it is stopped, and answers, at teardown).
    status, _ = await proc.request("/slow?seconds=600", host=HOST)
    assert status == 504
    assert "BackendTrafficPolicy default/app-timeout: spec.retires is not a known field; ignored" in proc.log()

    generation = await proc.generation()
    manifests.remove("policy.yaml")

    async def removed() -> bool:
        return await proc.generation() > generation

    await eventually(removed)
    status, body = await proc.request("/slow?seconds=0.3", host=HOST)
    assert status == 200 and body["pod"] == "web-1"  # the proxy's own read timeout (60 s) again
