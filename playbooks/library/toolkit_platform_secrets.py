#!/usr/bin/python
"""Ansible module: the platform's CA, certificates and credentials as Secrets, generated once.

What is made, and why, is `toolkit.provision.credentials` (derived from the environment's wiring): the CA in its own
namespace, server certificates with every SAN a client uses, one identity per workload, the Elasticsearch file realm.
Invariants: a Secret that exists is never rewritten; no secret value is ever returned or logged: the result names
Secrets only. Check mode reports what would be created; nothing is written.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: toolkit_platform_secrets
short_description: Generate the platform CA, certificates and credentials as Secrets, once
description:
  - Creates every Secret the platform charts reference that does not exist yet (toolkit.provision.credentials).
  - Existing Secrets are left untouched. Returns Secret names only, never their content.
  - Supports check mode.
options:
  environment:
    description: The toolkit environment, resolved once by C(toolkit deploy) (its document).
    required: true
    type: dict
author: toolkit
"""

RETURN = r"""
created:
  description: Secrets created (or that would be created in check mode), as namespace/name.
  type: list
  returned: always
present:
  description: Secrets that already existed, as namespace/name.
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"environment": {"type": "dict", "required": True}}, supports_check_mode=True)
    try:
        from kubernetes import config
        from kubernetes.client.rest import ApiException

        from toolkit.config.environments import from_document
        from toolkit.provision import credentials
        from toolkit.provision.helm import cluster_access

        environment = from_document(module.params["environment"])
        access = cluster_access(environment)
    except Exception as exc:
        module.fail_json(msg=str(exc))
        return
    api = config.new_client_from_config(config_file=access.kubeconfig, context=access.context)
    try:
        result = credentials.ensure(api, environment, check=module.check_mode)
    except ApiException as exc:
        module.fail_json(msg=f"secrets of environment {environment.name}: HTTP {exc.status} {exc.reason}")
        return
    finally:
        api.close()
    module.exit_json(changed=bool(result.created), created=result.created, present=sorted(result.present))


if __name__ == "__main__":
    main()
