"""Collateral sources: offline directories and the online PCS/PCCS + AMD KDS client."""
