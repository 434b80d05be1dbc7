"""The TypeScript SDK against a `flora-mcp --transport http` process that signs callers in with a real authorization
server: refused without a token, with a 401 that leads the SDK to the metadata and the authorization server; then
signed in by the SDK's own client-credentials provider, through to a technique call.
"""

from __future__ import annotations

import pytest

from tests.clients.clients_support import NODE_BIN, REPO, NodeTools, hosted_server, json_output
from tests.hosted.oauth_support import M2M, SCOPE, authorization_server, install_rig

pytestmark = pytest.mark.oauth

TS_CLIENT = REPO / "clients" / "oauth" / "ts_client.mjs"


def test_the_typescript_sdk_gets_a_401_it_can_start_from_then_signs_in_and_runs_a_technique(
        node_tools: NodeTools) -> None:
    install_rig()
    with authorization_server() as issuer_server, hosted_server(FLORA_OAUTH_ISSUER=issuer_server.issuer) as url:
        proc = node_tools.run([str(NODE_BIN / "node"), str(TS_CLIENT), "--url", url, "--issuer", issuer_server.issuer,
                               "--client-id", M2M[0], "--client-secret", M2M[1], "--scope", SCOPE,
                               "--tool", "qr-code-generator", "--arg", "content=from the TypeScript SDK"])
    report = json_output(proc)
    metadata = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert report["anonymous"]["connected"] is False
    assert report["challenge"] == {"status": 401, "resourceMetadataUrl": metadata, "scope": SCOPE, "error": None}
    assert report["discovery"] == {"authorizationServerUrl": issuer_server.issuer, "resource": url,
                                   "tokenEndpoint": f"{issuer_server.issuer}/token",
                                   "registrationEndpoint": f"{issuer_server.issuer}/reg"}
    assert "signedIn" not in report, report
    assert "qr-code-generator" in report["tools"]
    call = report["call"]
    assert call["isError"] is False and call["structuredContent"]["status"] == "completed"
    assert call["structuredContent"]["charged_cost"] == 0.01
