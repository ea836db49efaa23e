"""NVIDIA Hopper SPDM evidence verification against real vectors."""
