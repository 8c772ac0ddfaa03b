#!/usr/bin/python
"""Ansible module: one platform chart's Helm release, driven through toolkit.provision.helm (no helm binary).

The values are computed by toolkit.provision.values from the environment's single configuration (platform spec)
and the catalog; nothing is passed from the playbook but the environment's name and the component. The module
renders the release server-side (dry run), compares it object by object with the release's current manifest,
and installs or upgrades only when they differ: `changed=false` when the release already matches. Check mode
stops after the comparison; diff mode returns the per-object unified diff (Secret data redacted).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: toolkit_helm
short_description: Install or upgrade one platform chart through the toolkit's Helm adapter
description:
  - Renders the chart of I(component) with the values of environment I(environment) (platform spec + catalog +
    override file) and installs or upgrades its Helm release when the rendered objects differ from the release.
  - Supports check mode and diff mode. Never rolls back; use C(toolkit upgrade rollback).
options:
  environment:
    description: The toolkit environment, resolved once by C(toolkit deploy) (its document).
    required: true
    type: dict
  component:
    description: Platform component whose chart is applied.
    required: true
    type: str
    choices: [kafka, elasticsearch, workers]
  version:
    description: Component version; default the version the environment's platform spec names.
    required: false
    type: str
author: toolkit
"""

RETURN = r"""
release:
  description: Helm release name.
  type: str
  returned: always
action:
  description: install, upgrade or none.
  type: str
  returned: always
revision:
  description: Release revision after the run (0 when not installed).
  type: int
  returned: always
objects:
  description: Objects created, updated or deleted (ref and action).
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "environment": {"type": "dict", "required": True},
            "component": {"type": "str", "required": True, "choices": ["kafka", "elasticsearch", "workers"]},
            "version": {"type": "str", "required": False, "default": None},
        },
        supports_check_mode=True,
    )
    try:
        from toolkit.config.environments import from_document
        from toolkit.provision.helm import HelmReleases
    except ImportError as exc:
        module.fail_json(msg=f"the toolkit is not importable by {__import__('sys').executable}: {exc}")
        return
    params = module.params
    try:
        environment = from_document(params["environment"])
        with HelmReleases(environment) as releases:
            values = releases.values(params["component"], params["version"])
            result = releases.apply(params["component"], values, check=module.check_mode)
    except Exception as exc:  # every toolkit error carries a message meant for a person
        module.fail_json(msg=str(exc), component=params["component"])
        return
    output = result.summary()
    if module._diff and result.diff.changes:
        output["diff"] = {"prepared": result.diff.text()}
    output["changed"] = result.changed
    module.exit_json(**output)


if __name__ == "__main__":
    main()
