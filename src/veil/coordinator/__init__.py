"""The coordinator: veil's control plane (manifest, attestation of marbles, PKI, secrets)."""
