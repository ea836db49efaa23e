"""TEE backends: verifiers (pure) and evidence issuers (which touch devices and files)."""
