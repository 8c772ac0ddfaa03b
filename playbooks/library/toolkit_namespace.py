#!/usr/bin/python
"""Ansible module: the platform namespace of a toolkit environment, with its labels.

The namespace name comes from the environment's platform spec; the labels are merged into the existing ones
(labels the module does not own are left alone). Check mode reports what would change; diff mode shows the labels
before and after.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: toolkit_namespace
short_description: Create the platform namespace of a toolkit environment with its labels
description:
  - Creates the namespace named by the environment's platform spec, or merges I(labels) into an existing one.
  - Supports check mode and diff mode.
options:
  environment:
    description: The toolkit environment, resolved once by C(toolkit deploy) (its document).
    required: true
    type: dict
  labels:
    description: Labels the namespace must carry.
    required: false
    type: dict
    default: {}
author: toolkit
"""

RETURN = r"""
namespace:
  description: Namespace name.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "environment": {"type": "dict", "required": True},
            "labels": {"type": "dict", "required": False, "default": {}},
        },
        supports_check_mode=True,
    )
    try:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException

        from toolkit.config.environments import from_document
        from toolkit.provision.helm import cluster_access

        environment = from_document(module.params["environment"])
        access = cluster_access(environment)
    except Exception as exc:
        module.fail_json(msg=str(exc))
        return
    name = environment.platform.namespace
    wanted = {str(k): str(v) for k, v in (module.params["labels"] or {}).items()}
    api = config.new_client_from_config(config_file=access.kubeconfig, context=access.context)
    try:
        core = client.CoreV1Api(api)
        try:
            current = dict(core.read_namespace(name).metadata.labels or {})
            exists = True
        except ApiException as exc:
            if exc.status != 404:
                module.fail_json(msg=f"cannot read namespace {name}: {exc.reason}")
                return
            current, exists = {}, False
        missing = {k: v for k, v in wanted.items() if current.get(k) != v}
        changed = not exists or bool(missing)
        after = {**current, **wanted}
        if changed and not module.check_mode:
            if exists:
                core.patch_namespace(name, {"metadata": {"labels": missing}})
            else:
                core.create_namespace({"metadata": {"name": name, "labels": wanted}})
    except ApiException as exc:
        module.fail_json(msg=f"namespace {name}: {exc.reason}")
        return
    finally:
        api.close()
    result = {"changed": changed, "namespace": name, "created": not exists}
    if module._diff and changed:
        result["diff"] = {
            "before": {"namespace": name, "exists": exists, "labels": current},
            "after": {"namespace": name, "exists": True, "labels": after},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
