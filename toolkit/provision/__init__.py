"""Provisioning adapters: Helm releases of the platform's charts (`helm`), their values (`values`, pure), Ansible
playbook runs (`ansible`), the `toolkit deploy` operation (`deploy`) and the region stacks (`pulumi`).

Importing this package imports nothing heavy; each module imports its client library where it is used.
"""
