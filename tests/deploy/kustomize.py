"""An offline renderer for the subset of kustomize that deploy/k8s uses.

No package on PyPI ships a maintained kustomize (or kubectl) that runs offline, so the suite
renders the overlays itself. It implements exactly these Kustomization fields, with
kustomize's semantics, and refuses any other field so an overlay cannot silently use a
feature this renderer ignores:

* ``resources``: YAML files, or directories holding a ``kustomization.yaml`` (rendered first,
  recursively; that is how an overlay includes ``../../base``).
* ``namespace``: set on every namespaced object (not on Namespaces or other cluster-scoped
  kinds).
* ``labels``: ``pairs`` added to every object's ``metadata.labels``; with
  ``includeSelectors: true`` also to selectors and pod templates, with ``includeTemplates:
  true`` to pod templates only (kustomize's ``labels`` field; ``commonLabels`` is
  ``includeSelectors: true``).
* ``images``: ``name`` -> ``newName`` / ``newTag`` / ``digest`` on containers and
  initContainers of pod templates.
* ``replicas``: ``name`` / ``count`` on Deployments, StatefulSets and ReplicaSets.
* ``patches``: ``path`` to strategic-merge patches (several documents allowed), each applied
  to the object of the same kind and name (and namespace, where the patch names one;
  ``target`` is not supported). The merge follows
  Kubernetes' strategic merge patch for the fields used: maps merge recursively, ``null``
  removes a key, lists of containers, env vars, volumes, volume mounts and ports merge on
  their merge key, other lists are replaced, and ``$patch: delete`` removes an object (or a
  list element).

The order is kustomize's: resources (each sub-kustomization fully rendered), then patches,
then namespace, labels, images and replicas of this level.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
)
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
    }
)
SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
# Strategic-merge keys of the lists these manifests patch (from the Kubernetes API's
# x-kubernetes-patch-merge-key); a list not named here is replaced whole, as Kubernetes does.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
DELETE = "$patch"


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not implement, or is invalid."""


def load_yaml_documents(path: Path) -> list[Obj]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise KustomizeError(f"{path}: a document is not a mapping")
    return docs


def object_id(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def render(directory: Path) -> list[Obj]:
    """The objects `kustomize build directory` prints, in resource order."""
    kustomization_file = directory / "kustomization.yaml"
    if not kustomization_file.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    spec = yaml.safe_load(kustomization_file.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{kustomization_file}: unsupported fields {sorted(unknown)}")
    if (spec.get("apiVersion"), spec.get("kind")) != (
        "kustomize.config.k8s.io/v1beta1",
        "Kustomization",
    ):
        raise KustomizeError(f"{kustomization_file}: not a kustomize.config.k8s.io Kustomization")

    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        source = (directory / entry).resolve()
        loaded = render(source) if source.is_dir() else load_yaml_documents(source)
        objects.extend(copy.deepcopy(loaded))
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        if object_id(obj) in seen:
            raise KustomizeError(f"{directory}: duplicate {'/'.join(object_id(obj))}")
        seen.add(object_id(obj))

    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{kustomization_file}: only `patches: - path:` is supported")
        for document in load_yaml_documents(directory / patch["path"]):
            objects = apply_patch(objects, document, where=str(directory / patch["path"]))

    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for label_set in spec.get("labels", []):
        add_labels(objects, label_set)
    for image in spec.get("images", []):
        set_image(objects, image)
    for replica in spec.get("replicas", []):
        set_replicas(objects, replica, where=str(kustomization_file))
    return objects


def apply_patch(objects: list[Obj], patch: Obj, *, where: str) -> list[Obj]:
    kind, name = patch.get("kind"), patch.get("metadata", {}).get("name")
    namespace = patch.get("metadata", {}).get("namespace")
    targets = [
        i
        for i, obj in enumerate(objects)
        if object_id(obj) == (kind, name)
        and (namespace is None or obj["metadata"].get("namespace") == namespace)
    ]
    if len(targets) != 1:
        raise KustomizeError(f"{where}: the patch for {kind}/{name} matches {len(targets)} objects")
    (index,) = targets
    if patch.get(DELETE) == "delete":
        return objects[:index] + objects[index + 1 :]
    objects[index] = strategic_merge(objects[index], patch)
    return objects


def strategic_merge(original: Obj, patch: Obj) -> Obj:
    merged = copy.deepcopy(original)
    for key, value in patch.items():
        if key == DELETE:
            continue
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(merged.get(key), list):
            merged[key] = merge_list(merged[key], value, MERGE_KEYS[key])
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_list(original: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KustomizeError(f"list items merged on {merge_key!r} must carry it: {item!r}")
        position = next(
            (i for i, old in enumerate(result) if old.get(merge_key) == item[merge_key]), None
        )
        if item.get(DELETE) == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(copy.deepcopy(item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def pod_template(obj: Obj) -> Obj | None:
    if obj["kind"] not in POD_TEMPLATE_KINDS:
        return None
    template: Obj = obj["spec"]["template"]
    return template


def add_labels(objects: list[Obj], label_set: Obj) -> None:
    unknown = set(label_set) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown:
        raise KustomizeError(f"labels: unsupported fields {sorted(unknown)}")
    pairs: dict[str, str] = label_set["pairs"]
    selectors = bool(label_set.get("includeSelectors", False))
    templates = selectors or bool(label_set.get("includeTemplates", False))
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        template = pod_template(obj)
        if templates and template is not None:
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        if selectors:
            spec = obj.get("spec", {})
            if obj["kind"] == "Service":
                spec.setdefault("selector", {}).update(pairs)
            elif "selector" in spec and obj["kind"] != "Job":
                spec["selector"].setdefault("matchLabels", {}).update(pairs)


def split_image(image: str) -> tuple[str, str]:
    """`name[:tag][@digest]` -> (name, the rest with its separator)."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def set_image(objects: list[Obj], image: Obj) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError(f"images: unsupported fields {sorted(unknown)}")
    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        spec = template["spec"]
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            name, suffix = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                suffix = "@" + image["digest"]
            elif "newTag" in image:
                suffix = ":" + str(image["newTag"])
            container["image"] = name + suffix


def set_replicas(objects: list[Obj], replica: Obj, *, where: str) -> None:
    matched = [
        o for o in objects if o["kind"] in SCALABLE and o["metadata"]["name"] == replica["name"]
    ]
    if not matched:
        raise KustomizeError(f"{where}: replicas names no workload {replica['name']!r}")
    for obj in matched:
        obj["spec"]["replicas"] = int(replica["count"])
