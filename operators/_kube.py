"""The operators' few calls to the API server: server-side apply, read, status patch, events.

Thin wrappers of the official ``kubernetes`` client (``DynamicClient`` for any kind). API
errors that may pass (conflicts, throttling, server errors, lost connections) become
``kopf.TemporaryError`` so kopf retries with backoff; others propagate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

import kopf
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from augur.cluster import FIELD_MANAGER, GROUP, VERSION

TRANSIENT = {409, 429, 500, 502, 503, 504}
RETRY_DELAY = 3.0


def connect() -> DynamicClient:
    """A client from the in-cluster service account, else $KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return DynamicClient(client.ApiClient())


@contextlib.contextmanager
def transient_errors(what: str) -> Iterator[None]:
    """Turn API errors that may pass into ``kopf.TemporaryError`` (retried with backoff)."""
    try:
        yield
    except (ApiException, DynamicApiError) as exc:
        if exc.status in TRANSIENT:
            raise kopf.TemporaryError(
                f"{what}: HTTP {exc.status}, retrying", delay=RETRY_DELAY
            ) from exc
        raise
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, reset, timed out
        raise kopf.TemporaryError(f"{what}: {exc}, retrying", delay=RETRY_DELAY) from exc


def event(body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """A Kubernetes Event on ``body`` (kopf posts it in the background)."""
    post = kopf.warn if warning else kopf.info
    post(cast(kopf.Body, body), reason=reason, message=message)


class Kube:
    """The API calls the handlers make, on one DynamicClient."""

    def __init__(self, dyn: DynamicClient) -> None:
        self.dyn = dyn

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist."""
        with transient_errors(f"get {kind} {namespace}/{name}"):
            try:
                obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
            except NotFoundError:
                return None
        return obj.to_dict()

    def apply(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Server-side apply ``manifest`` as the operator's field manager (conflicts forced:
        the operator owns its children). Returns the object and what happened: 'created',
        'updated' or 'unchanged'."""
        meta = manifest["metadata"]
        kind = manifest["kind"]
        namespace = meta.get("namespace")
        before = self.get(manifest["apiVersion"], kind, namespace, meta["name"])
        with transient_errors(f"apply {kind} {namespace or ''}/{meta['name']}"):
            obj = self.dyn.server_side_apply(
                self._resource(manifest["apiVersion"], kind),
                body=manifest,
                namespace=namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                query_params=[("fieldValidation", "Strict")],
            ).to_dict()
        if before is None:
            return obj, "created"
        same = before["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
        return obj, "unchanged" if same else "updated"

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource of one of our custom resources."""
        with transient_errors(f"patch status of {plural} {namespace}/{name}"):
            try:
                client.CustomObjectsApi().patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, {"status": status}
                )
            except ApiException as exc:
                if exc.status != 404:  # deleted meanwhile: nothing to record
                    raise

    def patch_spec(
        self, plural: str, namespace: str, name: str, spec: dict[str, Any], resource_version: str
    ) -> None:
        """Merge-patch a custom resource's spec, only if it is still at ``resource_version``
        (a concurrent edit makes it 409, retried from a fresh read)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        with transient_errors(f"patch {plural} {namespace}/{name}"):
            client.CustomObjectsApi().patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, body
            )

    def secret_keys(self, namespace: str) -> dict[str, set[str]]:
        """{Secret name: its keys} in the namespace (values are never read into memory twice)."""
        with transient_errors(f"list Secrets in {namespace}"):
            items = client.CoreV1Api().list_namespaced_secret(namespace).items
        return {
            s.metadata.name: set((s.data or {}).keys())
            for s in items
            if s.metadata and s.metadata.name
        }

    def apply_cluster_peering(self, name: str) -> None:
        """The ClusterKopfPeering the operator replicas share (kopf's CRD must exist)."""
        self.apply(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
        )

    def config_map_value(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a ConfigMap; None when the ConfigMap or the key is missing."""
        cm = self.get("v1", "ConfigMap", namespace, name)
        return None if cm is None else (cm.get("data") or {}).get(key)
