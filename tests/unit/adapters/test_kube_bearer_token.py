"""A kubeconfig that authenticates with a token (a ServiceAccount's, as the orchestrator Job's pod does in-cluster)
must send it: kubernetes 36.0.0's generated client looks for the token under another key than its own config loaders
write (kubernetes-client/python#2582), and without `api_client_for` bridging them every request goes out anonymous.
The cluster tier proves it against the real apiserver (tests/cluster/test_run_status_on_kube.py acts with the
ServiceAccount's own token)."""

from __future__ import annotations

from pathlib import Path

import yaml

from toolkit.targets.kube.client import api_client_for


def kubeconfig(tmp_path: Path, user: dict[str, object]) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_a_token_in_the_kubeconfig_is_sent_as_a_bearer_authorization_header(tmp_path: Path) -> None:
    api = api_client_for(kubeconfig(tmp_path, {"token": "abc.def"}), None)
    headers: dict[str, str] = {}
    api.update_params_for_auth(headers, [], ["BearerToken"])
    assert headers == {"authorization": "Bearer abc.def"}


def test_a_rotated_token_is_sent_after_each_refresh_of_the_loader(tmp_path: Path) -> None:
    """A token that expires (an exec plugin's, e.g. `aws eks get-token`) is re-read by the loader's refresh hook, which
    re-installs itself at every refresh: the new token must be sent every time, not only after the first refresh."""
    script = tmp_path / "get-token"
    counter = tmp_path / "count"
    counter.write_text("0")
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(($(cat {counter}) + 1)); echo $n > {counter}\n"
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",'
        '"status":{"token":"token-%s","expirationTimestamp":"2000-01-01T00:00:00Z"}}\' "$n"\n'
    )
    script.chmod(0o755)
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}}
    api = api_client_for(kubeconfig(tmp_path, exec_user), None)
    sent = []
    for _ in range(3):  # the credential is already expired: every use runs the plugin again
        headers: dict[str, str] = {}
        api.update_params_for_auth(headers, [], ["BearerToken"])
        sent.append(headers["authorization"])
    assert len(set(sent)) == 3 and all(h.startswith("Bearer token-") for h in sent), sent
