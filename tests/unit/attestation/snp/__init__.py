"""AMD SEV-SNP report verification against real vectors and a synthetic AMD chain."""
