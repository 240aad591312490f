"""The offline kustomize renderer (tests/deploy/kustomize.py) does what kustomize does for the
fields the overlays use, and refuses the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import KustomizeError, render, split_image, strategic_merge
from tests.deploy.stack import K8S_DIR

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "tolerations": [{"key": "a", "operator": "Exists"}],
                "containers": [
                    {
                        "name": "web",
                        "image": "llmnet:latest",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    },
                    {"name": "sidecar", "image": "registry.local:5000/proxy:1"},
                ],
            },
        },
    },
}


def write(directory: Path, name: str, *docs: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump_all(docs), encoding="utf-8")


def kustomization(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    directory = tmp_path / "base"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
    write(directory, "objects.yaml", namespace, DEPLOYMENT)
    write(
        directory,
        "kustomization.yaml",
        kustomization(
            namespace="ns",
            resources=["objects.yaml"],
            labels=[{"pairs": {"team": "x"}}],
            images=[{"name": "llmnet", "newName": "registry.example.com/llmnet", "newTag": "1.2"}],
        ),
    )
    return directory


def test_base_sets_namespace_labels_and_images(base: Path) -> None:
    namespace, deployment = render(base)
    assert "namespace" not in namespace["metadata"], "Namespaces are cluster-scoped"
    assert deployment["metadata"]["namespace"] == "ns"
    assert deployment["metadata"]["labels"] == {"app": "web", "team": "x"}
    # `labels` without includeSelectors leaves selectors and templates alone.
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    web, sidecar = deployment["spec"]["template"]["spec"]["containers"]
    assert web["image"] == "registry.example.com/llmnet:1.2"
    assert sidecar["image"] == "registry.local:5000/proxy:1"


def test_overlay_patches_replicas_and_deletes(base: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "web",
                            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                        },
                        {"name": "sidecar", "$patch": "delete"},
                    ],
                }
            }
        },
    }
    delete = {
        "$patch": "delete",
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns"},
    }
    write(overlay, "patch.yaml", patch, delete)
    write(
        overlay,
        "kustomization.yaml",
        kustomization(
            resources=["../base"],
            patches=[{"path": "patch.yaml"}],
            replicas=[{"name": "web", "count": 1}],
            labels=[{"pairs": {"env": "dev"}, "includeSelectors": True}],
        ),
    )
    (deployment,) = render(overlay)
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    (web,) = spec["containers"]
    assert web["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert web["image"] == "registry.example.com/llmnet:1.2", "the base's transforms stay"
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}], "lists replace"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web", "env": "dev"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["env"] == "dev"


def test_null_removes_a_key() -> None:
    merged = strategic_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": None}})
    assert merged == {"a": {"c": 2}}


def test_split_image() -> None:
    assert split_image("llmnet") == ("llmnet", "")
    assert split_image("host:5000/llmnet:1") == ("host:5000/llmnet", ":1")
    assert split_image("llmnet@sha256:abc") == ("llmnet", "@sha256:abc")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"commonAnnotations": {"a": "b"}}, "unsupported fields"),
        ({"patches": [{"path": "p.yaml", "target": {"kind": "Deployment"}}]}, "only `patches"),
        ({"replicas": [{"name": "missing", "count": 1}]}, "names no workload"),
    ],
)
def test_unsupported_or_dangling_fields_are_refused(
    base: Path, tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    overlay = tmp_path / "overlay"
    write(overlay, "kustomization.yaml", kustomization(resources=["../base"], **fields))
    with pytest.raises(KustomizeError, match=message):
        render(overlay)


def test_a_patch_must_match_an_object(base: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    write(
        overlay,
        "patch.yaml",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nope"}},
    )
    write(
        overlay,
        "kustomization.yaml",
        kustomization(resources=["../base"], patches=[{"path": "patch.yaml"}]),
    )
    with pytest.raises(KustomizeError, match="matches 0 objects"):
        render(overlay)


def test_the_repository_overlays_render() -> None:
    for overlay in ("dev", "gpu"):
        objects = render(K8S_DIR / "overlays" / overlay)
        kinds = {obj["kind"] for obj in objects}
        assert {"Deployment", "Service", "Job", "Ingress", "NetworkPolicy"} <= kinds, overlay
        labels = {obj["metadata"]["labels"].get("llmnet.dev/environment") for obj in objects}
        assert labels == {overlay}, f"{overlay}: every object carries the overlay's label"
